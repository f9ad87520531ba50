"""The workdir describes its run: eval.py needs no repeated overrides, a resume cannot silently
change the model, user errors are one message with exit status 2, and launches are recorded."""

import json
import os

import pytest

from configs import lm_shakespeare_char, translate_multi30k
from tests import helpers
from transformer import engine, tasks, validation
from transformer import workdir as workdir_lib
from transformer.experiment_config import ConfigError

# Overrides a user would give train.py; eval.py must not need them again.
TRAIN_FLAGS = ['--config=configs/lm_shakespeare_char.py', '--config.model.d_model=24',
               '--config.model.num_heads=2', '--config.model.d_ff=40',
               '--config.model.num_decoder_layers=1', '--config.seq_len=12',
               '--config.batch_size=4', '--config.eval_batch_size=8',
               '--config.eval_max_batches=2', '--config.num_train_steps=2',
               '--config.warmup_steps=1', '--config.log_every_steps=1']


def tiny(**overrides):
  model = dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1)
  base = dict(seq_len=16, batch_size=4, eval_batch_size=8, eval_max_batches=2,
              log_every_steps=1, warmup_steps=1)
  return helpers.tiny_config(lm_shakespeare_char, model, **{**base, **overrides})


def test_config_json_round_trips_with_types():
  for module in (lm_shakespeare_char, translate_multi30k):
    c = module.get_config()
    loaded = workdir_lib.config_from_json(c.to_json_best_effort())
    assert json.loads(loaded.to_json_best_effort()) == json.loads(c.to_json_best_effort())
    validation.validate(loaded)
  loaded = workdir_lib.config_from_json(translate_multi30k.get_config().to_json_best_effort())
  assert isinstance(loaded.bucket_boundaries, tuple)
  loaded.model.num_heads = 8            # an unset model field keeps its type: ints only
  with pytest.raises(TypeError):
    loaded.model.num_heads = 'eight'


@pytest.mark.slow
def test_eval_py_reads_the_runs_config_without_overrides(tmp_path, data_dir):
  work = str(tmp_path)
  res = helpers.run_python(['train.py', *TRAIN_FLAGS, f'--workdir={work}'])
  assert res.returncode == 0, res.stderr[-3000:]
  # command.txt and train.log describe the launch.
  command = (tmp_path / 'command.txt').read_text()
  assert 'command: python train.py --config=configs/lm_shakespeare_char.py' in command
  assert '--config.model.d_model=24' in command
  assert 'commit: ' in command and 'hardware: ' in command and 'date: ' in command
  assert 'step 2/2' in (tmp_path / 'train.log').read_text()

  # No --config, no overrides: the checkpoint of the d_model=24 model restores.
  res = helpers.run_python(['eval.py', f'--workdir={work}',
                            '--config.sample.prompt=ROMEO:', '--config.sample.num_tokens=5'])
  assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
  record = helpers.records(work, 'validation')[-1]
  assert record['step'] == 2 and record['checkpoint'] == 'latest'
  assert 'eval validation step 2: loss ' in res.stdout   # one formatted line, not a dict
  assert "{'loss'" not in res.stdout


@pytest.mark.slow
def test_a_changed_architecture_is_refused_on_resume(tmp_path, data_dir):
  work = str(tmp_path)
  engine.train_and_evaluate(tiny(num_train_steps=2), work)
  config_json = (tmp_path / 'config.json').read_bytes()
  steps = sorted(os.listdir(tmp_path / 'checkpoints'))
  with pytest.raises(ConfigError) as e:
    engine.train_and_evaluate(tiny(num_train_steps=4, **{'model.d_model': 32}), work)
  message = str(e.value)
  assert 'model.d_model: 16 -> 32' in message
  assert 'new --workdir' in message and 'allow_config_change=True' in message
  assert 'delete' not in message.lower()
  assert (tmp_path / 'config.json').read_bytes() == config_json     # untouched
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == steps
  # Without config.json (a workdir moved while its last save was written), the copy of the
  # config in the newest checkpoint's meta is the reference.
  (tmp_path / 'config.json').unlink()
  with pytest.raises(ConfigError, match=r'(?s)meta/metadata.*model.d_model: 16 -> 32'):
    engine.train_and_evaluate(tiny(num_train_steps=4, **{'model.d_model': 32}), work)


@pytest.mark.slow
def test_a_changed_schedule_resumes_with_a_warning(tmp_path, data_dir, caplog):
  work = str(tmp_path)
  engine.train_and_evaluate(tiny(num_train_steps=2), work)
  with caplog.at_level('WARNING', logger='transformer'):
    out = engine.train_and_evaluate(tiny(num_train_steps=3, learning_rate=5e-4), work)
  assert out['step'] == 3
  assert 'learning_rate: 0.001 -> 0.0005' in caplog.text
  assert 'num_train_steps: 2 -> 3' in caplog.text
  assert json.loads((tmp_path / 'config.json').read_text())['learning_rate'] == 5e-4


@pytest.mark.parametrize('args,message', [
    (['train.py', '--config=configs/lm_shakespeare_char.py', '--config.model.num_heads=3'],
     'error: Invalid config:'),
    (['eval.py', '--config=configs/lm_shakespeare_char.py'], 'error: No checkpoint in'),
])
def test_user_errors_exit_2_with_the_message_only(tmp_path, args, message):
  res = helpers.run_python([*args, f'--workdir={tmp_path}'])
  assert res.returncode == 2, res.stderr[-3000:]
  assert res.stderr.startswith(message), res.stderr[-3000:]
  assert 'Traceback' not in res.stderr and 'Traceback' not in res.stdout


def test_semantic_warnings_name_what_will_happen():
  c = tiny(num_train_steps=100, warmup_steps=100, eval_every_steps=500,
           checkpoint_every_steps=1000)
  warnings = validation.semantic_warnings(c)
  assert len(warnings) == 3
  assert 'never reaches its peak' in warnings[0]
  assert 'evaluation runs only at the end' in warnings[1]
  assert 'checkpoint is written only at the end' in warnings[2]
  assert validation.semantic_warnings(tiny(num_train_steps=100, eval_every_steps=50,
                                           checkpoint_every_steps=50)) == []


@pytest.mark.slow
def test_describe_and_dry_run_report_the_real_model(tmp_path, data_dir):
  import jax
  c = tiny(model_preset='', **{'model.num_decoder_layers': 2})
  from transformer.engine import inspect
  with inspect.scratch_task(c, None) as task:
    d = inspect.describe(c, task)
    r = inspect.dry_run(c, task)
  exp = engine.Experiment(c, None)
  params = jax.tree.leaves(exp.unreplicate(exp.init_state()).params)
  assert d['parameters'] == sum(x.size for x in params)
  assert d['model_config'].num_decoder_layers == 2 and d['model_config'].d_model == 16
  assert d['train_flops_per_step'] > 0
  assert r['params_bytes_per_device'] == 4 * d['parameters']         # float32, one device
  assert r['opt_state_bytes_per_device'] >= 2 * r['params_bytes_per_device']   # Adam's mu, nu
  assert r['compile_seconds'] > 0 and r['step_seconds'] > 0 and r['compiled_shapes'] == 1
  res = helpers.run_python(['train.py', '--config=configs/lm_shakespeare_char.py',
                            '--print_config', f'--workdir={tmp_path / "w"}'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert '# model config (after presets)' in res.stdout and 'parameters: ' in res.stdout
  assert not (tmp_path / 'w').exists()   # nothing trained, nothing written


def test_a_checkpoint_of_another_model_names_the_parameters(tmp_path, data_dir):
  from transformer import checkpoint as ckpt_lib
  engine.train_and_evaluate(tiny(num_train_steps=1), str(tmp_path))
  other = engine.Experiment(tiny(**{'model.d_model': 24}), None)
  with pytest.raises(ckpt_lib.CheckpointError) as e:
    ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints')).restore(other.abstract_state)
  message = str(e.value)
  assert 'written by another model' in message
  assert 'params/decoder/final_norm/scale: (16,) in the checkpoint, (24,) in this model' in message
  assert 'delete' not in message.lower()


# ----------------------------------------------------------------------------- the workdir module

def test_checkpoint_steps_counts_only_folders_that_hold_a_checkpoint(tmp_path):
  d = tmp_path / 'checkpoints'
  for name in ('3', '7', '12'):
    (d / name / 'state').mkdir(parents=True)
  (d / '9').mkdir()                                     # a stray empty folder
  (d / '15.orbax-checkpoint-tmp' / 'state').mkdir(parents=True)   # a save in progress
  (d / '5.unreadable' / 'state').mkdir(parents=True)    # set aside
  assert workdir_lib.checkpoint_steps(str(d)) == [3, 7, 12]
  assert workdir_lib.has_checkpoints(str(tmp_path))
  assert not workdir_lib.has_checkpoints(str(tmp_path), 'best')
  with pytest.raises(ConfigError, match="checkpoint='newest' is not one of"):
    workdir_lib.checkpoint_dir(str(tmp_path), 'newest')


def test_restore_without_a_checkpoint_is_an_error_not_a_fresh_model(tmp_path):
  from transformer.errors import CheckpointError
  (tmp_path / 'checkpoints' / '4').mkdir(parents=True)   # a run that died before its first save
  for which in ('latest', 'avg', 'best'):
    with pytest.raises(CheckpointError, match='nothing to restore'):
      workdir_lib.restore(str(tmp_path), which=which)
  with pytest.raises(CheckpointError, match='nothing to restore'):
    workdir_lib.restore_params(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize('entry', ['eval.py', 'generate.py'])
def test_eval_and_generate_refuse_a_workdir_that_holds_no_checkpoint(entry, tmp_path, data_dir):
  """The bug: eval.py evaluated a randomly initialised model and exited 0 ('eval validation
  step 0: loss 4.5160 ...') when checkpoints/ held no step; generate.py generated from one."""
  work = tmp_path / 'w'
  (work / 'checkpoints').mkdir(parents=True)
  workdir_lib.write_config(tiny(), str(work))
  res = helpers.run_python([entry, f'--workdir={work}'], input='ROMEO:\n')
  assert res.returncode == 2, res.stdout + res.stderr
  assert 'No checkpoint in' in res.stderr and 'Train first' in res.stderr
  assert 'Traceback' not in res.stderr
  assert 'eval validation' not in res.stdout and '=== prompt' not in res.stdout


@pytest.mark.slow
def test_init_from_reads_verified_params_and_falls_back_from_a_corrupt_step(tmp_path, data_dir):
  """init_from went straight to Orbax: no fingerprint check, so a damaged array was fine-tuned
  from. Now it is the verified restore: the damaged newest step is skipped with a warning."""
  import numpy as np
  work = str(tmp_path / 'pre')
  engine.train_and_evaluate(tiny(num_train_steps=4, checkpoint_every_steps=2), work)
  good = workdir_lib.restore_params(work, step=2)
  newest = workdir_lib.restore_params(work)
  assert not all(np.array_equal(a, b) for a, b in zip(_leaves(good), _leaves(newest)))
  _flip_bits_of_the_data(tmp_path / 'pre' / 'checkpoints' / '4' / 'state')
  restored = workdir_lib.restore_params(work)
  assert all(np.array_equal(a, b) for a, b in zip(_leaves(good), _leaves(restored)))


def _leaves(tree):
  import jax
  return jax.tree.leaves(tree)


def _flip_bits_of_the_data(folder):
  """A few flipped bits in each of the arrays' data files (Orbax restores them without
  error); each file, as one may hold only bytes no array reads back."""
  for path in folder.glob('ocdbt.process_0/d/*'):
    data = bytearray(path.read_bytes())
    for k in (len(data) // 2, len(data) // 2 + 7, len(data) // 3):
      data[k] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize('task,field,old,new', [
    ('mlm', 'mlm.mask_rate', 0.15, 0.3),
    ('text_classification', 'vocab_from', 'ptb', 'tiny_shakespeare'),
    ('classification', 'validation_holdout', 5000, 0),
    ('translation', 'spm_model_type', 'bpe', 'unigram'),
])
def test_a_resume_may_not_change_a_task_s_own_data_fields(tmp_path, task, field, old, new):
  """RESUME_FIXED named task fields by hand and missed validation_holdout, vocab_from and the
  MLM mask rate; each task now declares its own (Task.resume_fixed)."""
  import ml_collections

  from transformer import config_schema, tasks
  saved = config_schema.get_config()
  saved.task = task
  top, _, sub = field.partition('.')
  saved[top] = ml_collections.ConfigDict({sub: old}) if sub else old
  (tmp_path / 'checkpoints' / '1' / 'state').mkdir(parents=True)
  workdir_lib.write_config(saved, str(tmp_path))
  now = workdir_lib.read_config(str(tmp_path))
  helpers.set_field(now, field, new)
  with pytest.raises(ConfigError, match=f'{field}: {old!r} -> {new!r}'):
    workdir_lib.check_resume(now, str(tmp_path), tasks.TASKS[task].resume_fixed)


@pytest.mark.slow
def test_print_config_of_a_translation_run_writes_nothing(tmp_path, data_dir):
  """--print_config built the task in the workdir, so it trained a SentencePiece model there."""
  work = tmp_path / 'w'
  res = helpers.run_python(['train.py', '--config=configs/translate_multi30k.py', '--print_config',
                            f'--workdir={work}', '--config.vocab_size=300',
                            '--config.spm_max_sentences=2000'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert 'parameters: ' in res.stdout and 'train FLOPs per step: ' in res.stdout
  assert '# translation task settings (defaults filled in)' in res.stdout
  assert '  tokens_per_batch: 4096' in res.stdout   # the multi30k config's, or the default
  assert "eos_rule': 'all'" in res.stdout             # decoding, with its defaults
  assert not work.exists()


def test_dry_run_compiles_every_batch_shape_before_it_times_the_steps(tmp_path, data_dir):
  """Translation batches come in length buckets, each shape its own compilation: the dry run
  timed three steps that each compiled (24-29 s reported for Multi30k's 3.4 s step)."""
  from configs import translate_multi30k
  from transformer.engine import inspect
  c = helpers.tiny_config(translate_multi30k, dict(d_model=16, num_heads=2, d_ff=32,
                                                   num_encoder_layers=1, num_decoder_layers=1),
                          vocab_size=300, spm_max_sentences=2000, model_preset='',
                          tokens_per_batch=512, batch_size=4)
  with inspect.scratch_task(c, None) as task:
    shapes = {tuple(sorted((k, v.shape) for k, v in task.data.train_batch(
        i, c.batch_size, c.seed).items())) for i in range(3)}
    r = inspect.dry_run(c, task)
  assert len(shapes) > 1   # else the test shows nothing
  assert r['compiled_shapes'] == len(shapes)
  assert 0 < r['step_seconds'] < r['compile_seconds'] / len(shapes)


def test_a_corrupt_config_json_gives_way_to_the_checkpoint_s_copy(tmp_path, data_dir):
  """A config.json truncated by a kill or a full disk stopped resume with a JSONDecodeError
  traceback (a missing one already fell back to the checkpoint's copy)."""
  work = str(tmp_path)
  engine.train_and_evaluate(tiny(num_train_steps=1), work)
  (tmp_path / 'config.json').write_text('{"task": "lm", "seq_')      # truncated
  with pytest.raises(ConfigError, match=r'(?s)meta/metadata.*model.d_model: 16 -> 32'):
    workdir_lib.check_resume(tiny(**{'model.d_model': 32}), work)
  assert workdir_lib.read_config(work).model.d_model == 16           # eval.py's config too
  (tmp_path / 'checkpoints' / '1').rename(tmp_path / 'elsewhere')
  with pytest.raises(ConfigError, match='config.json is not valid JSON: pass --config='):
    workdir_lib.read_config(work)
  workdir_lib.write_config(tiny(), work)                             # written atomically
  assert workdir_lib.read_config(work).model.d_model == 16
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


@pytest.mark.slow
def test_a_config_file_that_is_not_json_is_one_error_line(tmp_path):
  bad = tmp_path / 'bad.json'
  bad.write_text('{not json')
  for args in ([f'--config={bad}'], [f'--config={tmp_path / "missing.json"}']):
    res = helpers.run_python(['eval.py', f'--workdir={tmp_path}', *args])
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.startswith('error: --config=') and 'Traceback' not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_resume_with_another_optimizer_is_refused_with_the_true_reason(tmp_path, data_dir):
  """The fault campaign: optimizer adam -> adamw (or grad_clip_norm 1 -> 0) was announced as an
  allowed change, then refused as 'written by another model'."""
  from transformer.errors import CheckpointError
  work = str(tmp_path)
  engine.train_and_evaluate(tiny(num_train_steps=1), work)
  with pytest.raises(CheckpointError) as e:
    engine.train_and_evaluate(tiny(num_train_steps=2, optimizer='sgd'), work)   # was adamw
  message = str(e.value)
  assert 'holds the state of another optimizer' in message
  assert f'--config.init_from={work}' in message and 'another model' not in message


def test_logging_leaves_out_the_warnings_every_restore_gives():
  """Every restore printed Orbax's 'Metadata file does not exist: .../_CHECKPOINT_METADATA'."""
  import subprocess
  import sys
  probe = ('import logging; from transformer import logs; logs.setup_logging(); '
           "a = logging.getLogger('absl'); "
           "a.warning('Metadata file does not exist: /w/checkpoints/2/state/x'); "
           "a.warning('a real warning')")
  out = subprocess.run([sys.executable, '-c', probe], cwd=helpers.REPO, capture_output=True,
                       text=True, check=True).stdout
  assert 'a real warning' in out and 'Metadata file does not exist' not in out


def test_a_run_with_nothing_left_to_do_still_clears_a_kill_s_leftovers(tmp_path, data_dir):
  """The fault campaign: kill -9 while the last save retired an old step left
  checkpoints/deleted/<step> behind, and the resume (already at its last step, so it saved
  nothing) never cleared it."""
  from transformer import checkpoint as ckpt_lib
  work = tmp_path / 'w'
  engine.train_and_evaluate(tiny(num_train_steps=2), str(work))
  ckpt = work / 'checkpoints'
  (ckpt / ckpt_lib.DELETED_DIR / '1' / 'state').mkdir(parents=True)
  (ckpt / ('3' + ckpt_lib.TMP_SUFFIX + '1234')).mkdir()
  out = engine.train_and_evaluate(tiny(num_train_steps=2), str(work))
  assert out['step'] == 2
  assert os.listdir(ckpt / ckpt_lib.DELETED_DIR) == []
  assert not [n for n in os.listdir(ckpt) if ckpt_lib.TMP_SUFFIX in n]


def test_reads_abandoned_by_a_failed_restore_are_not_printed():
  """The fault campaign: after a damaged step's one warning, Orbax's abandoned reads printed
  'Event loop is closed' and TensorStore tracebacks (thousands of lines). Those signatures go
  to the DEBUG log once a restore ran; any other error is still printed."""
  import subprocess
  import sys
  probe = '''
import asyncio, sys, threading
from transformer import logs
logs.quiet_abandoned_io()
loop = asyncio.new_event_loop(); loop.close()
def closed_loop():
  loop.call_soon_threadsafe(print)
t = threading.Thread(target=closed_loop); t.start(); t.join()
try:
  loop.call_soon_threadsafe(print)
except RuntimeError as e:
  sys.excepthook(type(e), e, e.__traceback__)
async def read():
  raise Exception('Encountered error while reading array index: (slice(0, 2, 1),)')
c = read()
sys.unraisablehook(type('U', (), dict(exc_type=Exception, exc_value=Exception(
    'Encountered error while reading array index: ()'), exc_traceback=None, err_msg=None,
    object=c))())
c.close()
import logging
logging.basicConfig()
closed = RuntimeError('Event loop is closed')
logging.getLogger('asyncio').error('Task exception was never retrieved (abandoned)',
                                   exc_info=(RuntimeError, closed, None))
logging.getLogger('asyncio').error('Future exception was never retrieved (abandoned)',
                                   exc_info=(ValueError, ValueError(
    'DATA_LOSS: Error reading "x" [tensorstore_spec=x]'), None))
logging.getLogger('asyncio').error('a real asyncio error')
def other():
  raise ValueError('a real error in a thread')
t = threading.Thread(target=other); t.start(); t.join()
'''
  res = subprocess.run([sys.executable, '-c', probe], cwd=helpers.REPO, capture_output=True,
                       text=True)
  assert 'Event loop is closed' not in res.stderr
  assert 'Encountered error while reading array index' not in res.stderr
  assert 'never retrieved (abandoned)' not in res.stderr and 'DATA_LOSS' not in res.stderr
  assert 'ValueError: a real error in a thread' in res.stderr   # not every error is hidden
  assert 'a real asyncio error' in res.stderr


def test_a_task_field_the_config_leaves_out_can_still_be_overridden(tmp_path, data_dir):
  """configs/vit_mnist.py sets neither data_processes nor eval_flip; a run's config.json from
  before a field existed lacks it too. Both take --config.FIELD (the task's defaults are added
  first), and a misspelled field is still refused."""
  res = helpers.run_python(['train.py', '--config=configs/vit_mnist.py', '--print_config',
                            f'--workdir={tmp_path}/w', '--config.eval_flip=True',
                            '--config.data_processes=1'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert '  eval_flip: True' in res.stdout and '  data_processes: 1' in res.stdout
  typo = helpers.run_python(['train.py', '--config=configs/vit_mnist.py', '--print_config',
                             f'--workdir={tmp_path}/w', '--config.eval_flp=True'])
  assert typo.returncode == 2 and 'eval_flp' in typo.stderr and 'Traceback' not in typo.stderr

  from configs import vit_mnist
  old = json.loads(vit_mnist.get_config().to_json_best_effort())
  assert 'eval_flip' not in old
  loaded = tasks.with_task_fields(workdir_lib.config_from_json(json.dumps(old)))
  assert loaded.eval_flip is False and loaded.validation_holdout == 5000   # kept as set
  assert tasks.with_task_fields(tiny()).get('eval_flip') is None            # not the lm task's


def test_the_config_argument_stays_in_sys_argv_for_spawned_processes(tmp_path):
  """A spawned process (grain's workers) re-imports the entry point with the parent's
  sys.argv: taking --config out of it made the child load the default config and fail."""
  code = ('import sys; from tools import cli; '
          "sys.argv = ['train.py', '--config', 'configs/vit_mnist.py', '--config.seed=3']; "
          'cli.define_config_flag(sys.argv, default="configs/lm_shakespeare_char.py"); '
          'print(sys.argv); rest = cli._parse_flags(sys.argv); '
          'from absl import flags; print(flags.FLAGS.config.task, flags.FLAGS.config.seed, rest)')
  res = helpers.run_python(['-c', code])
  assert res.returncode == 0, res.stderr[-2000:]
  lines = res.stdout.strip().splitlines()
  assert lines[0] == "['train.py', '--config', 'configs/vit_mnist.py', '--config.seed=3']"
  assert lines[1] == "classification 3 ['train.py']"
