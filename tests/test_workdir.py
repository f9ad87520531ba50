"""The workdir describes its run: eval.py needs no repeated overrides, a resume cannot silently
change the model, user errors are one message with exit status 2, and launches are recorded."""

import json
import os

import pytest

from configs import lm_shakespeare_char, translate_multi30k
from tests import helpers
from tools import cli
from transformer import train_lib, validation
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
    loaded = cli.config_from_json(c.to_json_best_effort())
    assert json.loads(loaded.to_json_best_effort()) == json.loads(c.to_json_best_effort())
    validation.validate(loaded)
  loaded = cli.config_from_json(translate_multi30k.get_config().to_json_best_effort())
  assert isinstance(loaded.bucket_boundaries, tuple)
  loaded.model.num_heads = 8            # an unset model field keeps its type: ints only
  with pytest.raises(TypeError):
    loaded.model.num_heads = 'eight'


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


def test_a_changed_architecture_is_refused_on_resume(tmp_path, data_dir):
  work = str(tmp_path)
  train_lib.train_and_evaluate(tiny(num_train_steps=2), work)
  config_json = (tmp_path / 'config.json').read_bytes()
  steps = sorted(os.listdir(tmp_path / 'checkpoints'))
  with pytest.raises(ConfigError) as e:
    train_lib.train_and_evaluate(tiny(num_train_steps=4, **{'model.d_model': 32}), work)
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
    train_lib.train_and_evaluate(tiny(num_train_steps=4, **{'model.d_model': 32}), work)


def test_a_changed_schedule_resumes_with_a_warning(tmp_path, data_dir, caplog):
  work = str(tmp_path)
  train_lib.train_and_evaluate(tiny(num_train_steps=2), work)
  with caplog.at_level('WARNING', logger='transformer'):
    out = train_lib.train_and_evaluate(tiny(num_train_steps=3, learning_rate=5e-4), work)
  assert out['step'] == 3
  assert 'learning_rate: 0.001 -> 0.0005' in caplog.text
  assert 'num_train_steps: 2 -> 3' in caplog.text
  assert json.loads((tmp_path / 'config.json').read_text())['learning_rate'] == 5e-4


@pytest.mark.parametrize('args,message', [
    (['train.py', '--config=configs/lm_shakespeare_char.py', '--config.model.num_heads=3'],
     'error: Invalid config:'),
    (['eval.py', '--config=configs/lm_shakespeare_char.py'], 'error: No checkpoints in'),
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


def test_describe_and_dry_run_report_the_real_model(tmp_path, data_dir):
  import jax
  c = tiny(model_preset='', **{'model.num_decoder_layers': 2})
  d = train_lib.describe(c, None)
  exp = train_lib.Experiment(c, None)
  params = jax.tree.leaves(exp.unreplicate(exp.init_state()).params)
  assert d['parameters'] == sum(x.size for x in params)
  assert d['model_config'].num_decoder_layers == 2 and d['model_config'].d_model == 16
  assert d['train_flops_per_step'] > 0
  r = train_lib.dry_run(c, None)
  assert r['params_bytes_per_device'] == 4 * d['parameters']         # float32, one device
  assert r['opt_state_bytes_per_device'] >= 2 * r['params_bytes_per_device']   # Adam's mu, nu
  assert r['compile_seconds'] > 0 and r['step_seconds'] > 0
  res = helpers.run_python(['train.py', '--config=configs/lm_shakespeare_char.py',
                            '--print_config', f'--workdir={tmp_path / "w"}'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert '# model config (after presets)' in res.stdout and 'parameters: ' in res.stdout
  assert not (tmp_path / 'w').exists()   # nothing trained, nothing written


def test_a_checkpoint_of_another_model_names_the_parameters(tmp_path, data_dir):
  from transformer import checkpoint as ckpt_lib
  train_lib.train_and_evaluate(tiny(num_train_steps=1), str(tmp_path))
  other = train_lib.Experiment(tiny(**{'model.d_model': 24}), None)
  with pytest.raises(ckpt_lib.CheckpointError) as e:
    ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints')).restore(other.abstract_state)
  message = str(e.value)
  assert 'written by another model' in message
  assert 'params/decoder/final_norm/scale: (16,) in the checkpoint, (24,) in this model' in message
  assert 'delete' not in message.lower()
