"""The training engine end to end on tiny models and real data."""

import gzip
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import lm1b, lm_ptb, lm_shakespeare_char
from tests import helpers
from transformer import checkpoint as ckpt_lib
from transformer import engine, validation
from transformer import workdir as workdir_lib
from transformer.experiment_config import ConfigError
from transformer.data import DataError
from transformer.metric_writer import read_metrics

TINY_MODEL = dict(d_model=32, num_heads=2, d_ff=64, num_decoder_layers=1)
TINY = dict(seq_len=16, batch_size=4, eval_batch_size=8, eval_max_batches=2, log_every_steps=1,
            eval_every_steps=1000, checkpoint_every_steps=1000, warmup_steps=2)
TINY_FLAGS = ['--config.model.d_model=32', '--config.model.num_heads=2', '--config.model.d_ff=64',
              '--config.model.num_decoder_layers=1', '--config.seq_len=16', '--config.batch_size=4',
              '--config.eval_batch_size=8', '--config.eval_max_batches=2',
              '--config.log_every_steps=1']


def tiny(module=lm_shakespeare_char, **overrides):
  return helpers.tiny_config(module, TINY_MODEL, **{**TINY, **overrides})


@pytest.fixture
def lm1b_standin(tmp_path):
  """A tiny local stand-in for lm1b: real English sentences from Multi30k, one per line."""
  shared = os.environ['TRANSFORMER_DATA_DIR']
  with gzip.open(os.path.join(shared, 'multi30k', 'train.en.gz'), 'rt', encoding='utf-8') as f:
    lines = [next(f).strip() for _ in range(600)]
  d = tmp_path / 'data' / 'lm1b'
  d.mkdir(parents=True)
  (d / 'train.txt').write_text('\n'.join(lines[:500]) + '\n')
  (d / 'test.txt').write_text('\n'.join(lines[500:]) + '\n')
  return str(tmp_path / 'data')


@pytest.mark.slow
@pytest.mark.parametrize('module', [lm_shakespeare_char, lm_ptb])
def test_one_step_and_eval_write_metrics(module, tmp_path, data_dir):
  out = engine.train_and_evaluate(tiny(module, num_train_steps=1), str(tmp_path))
  assert out['step'] == 1 and np.isfinite(out['loss'])
  recs = read_metrics(str(tmp_path))
  assert {r['split'] for r in recs} == {'train', 'validation'}
  assert all(r['step'] == 1 for r in recs)
  assert os.listdir(tmp_path / 'tensorboard')
  assert ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints')).steps == [1]


@pytest.mark.slow
def test_lm1b_standin_trains_and_keeps_its_vocabulary(tmp_path, lm1b_standin):
  c = tiny(lm1b, num_train_steps=2, vocab_size=300, data_dir=lm1b_standin)
  c.model.dtype = 'float32'
  c.model.attention_impl = 'einsum'
  out = engine.train_and_evaluate(c, str(tmp_path))
  assert np.isfinite(out['loss'])
  spm = tmp_path / 'spm_lm1b.model'
  mtime = spm.stat().st_mtime_ns
  c.num_train_steps = 3
  engine.train_and_evaluate(c, str(tmp_path))   # resumes, reuses the vocabulary
  assert spm.stat().st_mtime_ns == mtime
  assert [r['step'] for r in helpers.records(str(tmp_path), 'train')] == [1, 2, 3]


@pytest.mark.slow
def test_few_steps_reduce_the_loss(tmp_path, data_dir):
  c = tiny(num_train_steps=30, learning_rate=3e-3, warmup_steps=5, schedule='constant')
  engine.train_and_evaluate(c, str(tmp_path))
  losses = [r['loss'] for r in helpers.records(str(tmp_path), 'train')]
  assert np.mean(losses[-5:]) < losses[0] - 0.5, losses


@pytest.mark.slow
def test_resume_gives_identical_metrics(tmp_path, data_dir):
  c = tiny(num_train_steps=8, checkpoint_every_steps=100, eval_every_steps=4)
  c.model.dropout_rate = 0.1   # exercise the dropout RNG across the resume
  full, split = str(tmp_path / 'full'), str(tmp_path / 'split')
  engine.train_and_evaluate(c, full)
  engine.train_and_evaluate(c, split, stop_at=3)   # interrupted after step 3
  assert ckpt_lib.Checkpointer(os.path.join(split, 'checkpoints')).steps == [3]
  engine.train_and_evaluate(c, split)
  timing = ('time', 'step_time_ms', 'tflops_per_device', 'mfu', 'peak_memory_gib')
  strip = lambda recs: [{k: v for k, v in r.items() if k not in timing  # noqa: E731
                         and not k.endswith('_per_sec')} for r in recs]
  assert strip(read_metrics(full)) == strip(read_metrics(split))


@pytest.mark.slow
def test_grad_accumulation_matches_one_big_batch(data_dir):
  c1 = tiny(num_train_steps=1)
  c2 = tiny(num_train_steps=1, grad_accum_steps=2)
  e1, e2 = engine.Experiment(c1, None), engine.Experiment(c2, None)
  batch = e1.task.data.train_batch(0, c1.batch_size, c1.seed)
  s1, m1 = e1.train_step(e1.init_state(), e1.put_batch(batch))
  s2, m2 = e2.train_step(e2.init_state(), e2.put_batch(batch))
  np.testing.assert_allclose(m1['objective'], m2['objective'], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_checkpoint_averaging_is_the_mean_of_params(tmp_path, data_dir):
  c = tiny(num_train_steps=3, checkpoint_every_steps=1, keep_checkpoints=5)
  engine.train_and_evaluate(c, str(tmp_path))
  exp = engine.Experiment(c, str(tmp_path))
  ckpt = ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints'))
  states = [ckpt.restore(exp.abstract_state, s)[0] for s in (2, 3)]
  step, steps = workdir_lib.average_checkpoints(str(tmp_path), exp.abstract_state, num=2)
  assert (step, steps) == (3, [2, 3])
  avg, meta = ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints_avg')).restore(exp.abstract_state)
  assert meta['averaged_steps'] == [2, 3]
  for a, p, q in zip(jax.tree.leaves(avg.params), jax.tree.leaves(states[0].params),
                     jax.tree.leaves(states[1].params)):
    np.testing.assert_allclose(a, (np.asarray(p, np.float64) + q) / 2, rtol=1e-6, atol=1e-7)
  assert any(not np.allclose(p, q) for p, q in zip(jax.tree.leaves(states[0].params),
                                                   jax.tree.leaves(states[1].params)))


@pytest.mark.parametrize('field,value,message', [
    ('model.num_heads', 3, 'num_heads=3 must divide d_model=32'),
    ('learning_rate', -1.0, 'learning_rate=-1.0 must be > 0'),
    ('dataset', 'wikitext', "dataset='wikitext' is not a 'lm' dataset"),
    ('optimizer', 'adagrad', "optimizer='adagrad' is not one of"),
    ('schedule', 'step', "schedule='step' is not one of"),
    ('grad_accum_steps', 3, 'grad_accum_steps=3 must divide batch_size=4'),
    ('matmul_precision', 'fp32', "matmul_precision='fp32' is not one of"),
])
def test_invalid_config_names_the_field(field, value, message):
  c = tiny()
  helpers.set_field(c, field, value)
  with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
    validation.validate(c)


@pytest.mark.parametrize('precision', ['default', 'highest'])
def test_matmul_precision_holds_while_the_train_step_is_traced(precision, data_dir):
  """config.matmul_precision reaches every matrix product of the compiled step (on a GPU,
  'default' lets float32 products run in TF32; 'highest' keeps them float32)."""
  c = tiny(matmul_precision=precision)
  exp = engine.Experiment(c, None)
  batch = exp.put_batch(exp.task.data.train_batch(0, c.batch_size, c.seed))
  with exp.context():
    text = exp.train_step.lower(exp.init_state(), batch).as_text()
  dots = [line for line in text.splitlines() if 'dot_general' in line]
  if precision == 'default':   # the process's own setting (tests/conftest.py: 'highest' on a GPU)
    precision = jax.config.jax_default_matmul_precision or 'default'
  want = f'precision = [{precision.upper()}, {precision.upper()}]'
  assert dots and all(want in line for line in dots), dots[:2]


def test_missing_data_dir_is_a_clear_error(tmp_path):
  c = tiny(data_dir=str(tmp_path / 'nowhere'))
  with pytest.raises(DataError, match='nowhere'):
    engine.Experiment(c, None)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(DataError, match='tiny_shakespeare'):
    engine.Experiment(tiny(data_dir=str(empty)), None)


# Orbax's reads abandoned by the failed restore report on background threads; pytest's own
# unraisable hook (in place during a test) sees them, where the commands' hooks would not.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, data_dir):
  c = tiny(num_train_steps=1)
  engine.train_and_evaluate(c, str(tmp_path))
  state_dir = tmp_path / 'checkpoints' / '1' / 'state'
  for root, _, files in os.walk(state_dir):
    for f in files:
      if 'manifest' in f or f.endswith('.zarray') or 'ocdbt' in root or f.startswith('d'):
        with open(os.path.join(root, f), 'wb') as fh:
          fh.write(b'garbage')
  with pytest.raises(ckpt_lib.CheckpointError, match='cannot be restored'):
    engine.train_and_evaluate(tiny(num_train_steps=2), str(tmp_path))


# -- subprocess tests: the real commands, signals, several devices ---------------------------

def _popen(args, env_extra=None):
  env = dict(os.environ, **(env_extra or {}))
  return subprocess.Popen([sys.executable, *args], cwd=helpers.REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(workdir, proc, timeout=180):
  ckdir = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.isdir(ckdir) and any(n.isdigit() for n in os.listdir(ckdir)):
      return
    if proc.poll() is not None:
      raise AssertionError(f'training exited early:\n{proc.stdout.read()}')
    time.sleep(0.2)
  raise AssertionError('no checkpoint appeared')


@pytest.mark.slow
def test_kill_9_then_resume_completes(tmp_path, data_dir):
  workdir = str(tmp_path)
  args = ['train.py', '--config=configs/lm_shakespeare_char.py', f'--workdir={workdir}',
          *TINY_FLAGS, '--config.num_train_steps=100000', '--config.checkpoint_every_steps=3',
          '--config.eval_every_steps=100000']
  proc = _popen(args)
  _wait_for_checkpoint(workdir, proc)
  time.sleep(1.0)  # land the kill at an arbitrary point, possibly mid-save
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  steps = ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints')).steps
  assert steps, 'every complete checkpoint must survive a kill'
  final = steps[-1] + 4
  done = helpers.run_python([a if 'num_train_steps' not in a
                             else f'--config.num_train_steps={final}' for a in args])
  assert done.returncode == 0, done.stdout + done.stderr
  assert f'Restored checkpoint at step {steps[-1]}' in done.stdout
  assert ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints')).latest_step() == final
  keys = [(r['step'], r['split']) for r in read_metrics(workdir)]
  assert len(keys) == len(set(keys)), 'the redone steps are recorded once'


@pytest.mark.slow
@pytest.mark.parametrize('delay', [0.3, 1.0])   # in the imports; building the data and model
def test_sigterm_during_start_up_stops_cleanly_with_nothing_trained(tmp_path, data_dir, delay):
  """The fault campaign: SIGTERM in the first 5-8 s (imports, data, restore) ended the process
  with status 143 and no message."""
  workdir = str(tmp_path / 'w')
  proc = _popen(['train.py', '--config=configs/lm_shakespeare_char.py', f'--workdir={workdir}',
                 *TINY_FLAGS, '--config.num_train_steps=100000'])
  time.sleep(delay)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  if proc.returncode == 0 and 'step 1/' in out:
    pytest.skip(f'start-up took less than {delay} s here: the signal came after it')
  assert proc.returncode == 0, out
  assert 'Stopped by a signal during start-up, before step 1: nothing was trained' in out
  assert not workdir_lib.has_checkpoints(workdir)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, data_dir):
  workdir = str(tmp_path)
  proc = _popen(['train.py', '--config=configs/lm_shakespeare_char.py', f'--workdir={workdir}',
                 *TINY_FLAGS, '--config.num_train_steps=100000',
                 '--config.checkpoint_every_steps=5', '--config.eval_every_steps=100000'])
  _wait_for_checkpoint(workdir, proc)
  time.sleep(0.5)
  proc.send_signal(signal.SIGTERM)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 0, out
  last_logged = max(r['step'] for r in helpers.records(workdir, 'train'))
  steps = ckpt_lib.Checkpointer(os.path.join(workdir, 'checkpoints')).steps
  assert steps[-1] == last_logged, out   # the checkpoint holds the last step trained
  assert 'checkpoint saved' in out


@pytest.mark.slow
def test_eval_py_restores_evaluates_and_samples(tmp_path, data_dir):
  workdir = str(tmp_path)
  flags = ['--config=configs/lm_shakespeare_char.py', f'--workdir={workdir}', *TINY_FLAGS,
           '--config.num_train_steps=2']
  assert helpers.run_python(['train.py', *flags]).returncode == 0
  res = helpers.run_python(['eval.py', *flags, '--config.sample.num_tokens=10',
                            '--config.sample.top_k=5'])
  assert res.returncode == 0, res.stdout + res.stderr
  evals = [r for r in read_metrics(workdir) if r.get('checkpoint') == 'latest']
  assert len(evals) == 1 and evals[0]['step'] == 2 and np.isfinite(evals[0]['loss'])
  samples = open(os.path.join(workdir, 'samples.txt')).read()
  assert 'step 2' in samples


@pytest.mark.slow
def test_train_step_on_two_devices_matches_one(tmp_path, data_dir):
  flags = ['--config=configs/lm_shakespeare_char.py', *TINY_FLAGS, '--config.num_train_steps=3']
  one = helpers.run_python(['train.py', *flags, f'--workdir={tmp_path / "one"}'])
  two = helpers.run_python(['train.py', *flags, f'--workdir={tmp_path / "two"}'],
                           env_extra={'XLA_FLAGS': '--xla_force_host_platform_device_count=2'})
  assert one.returncode == 0 and two.returncode == 0, two.stdout + two.stderr
  assert "'data': 2" in two.stdout
  l1 = [r['loss'] for r in helpers.records(str(tmp_path / 'one'), 'train')]
  l2 = [r['loss'] for r in helpers.records(str(tmp_path / 'two'), 'train')]
  np.testing.assert_allclose(l1, l2, rtol=1e-5)


# ----------------------------------------------------------------------------- engine concerns

def test_parameter_init_and_the_step_keys_are_different_halves_of_the_seed(data_dir):
  """The init key and the dropout/mask stream were the same PRNGKey(seed)."""
  c = tiny(seed=7)
  exp = engine.Experiment(c, None)
  state = exp.init_state()
  seed_key = jax.random.PRNGKey(7)
  init_key, step_key = jax.random.split(seed_key)
  assert np.array_equal(np.asarray(state.rng), np.asarray(step_key))
  assert not np.array_equal(np.asarray(state.rng), np.asarray(seed_key))
  def init(key):
    variables = exp.task.model(train=False).init({'params': key}, *exp.task.init_inputs())
    return [np.asarray(getattr(x, 'value', x)) for x in jax.tree.leaves(variables['params'])]
  params = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  for a, b in zip(params, init(init_key)):     # jit vs eager: within an ulp
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  kernel = max(range(len(params)), key=lambda i: params[i].size)
  assert not np.allclose(params[kernel], init(seed_key)[kernel])


@pytest.mark.slow
def test_evaluators_run_during_training_and_the_best_checkpoint_is_kept(tmp_path, data_dir):
  from transformer import inference
  work = str(tmp_path)
  c = tiny(num_train_steps=6, eval_every_steps=2, extra_eval_every_steps=3,
           checkpoint_every_steps=6, keep_checkpoints=1, best_metric='loss', learning_rate=0.05,
           warmup_steps=1, schedule='constant', **{'sample.prompt': 'ROMEO:',
                                                   'sample.num_tokens': 5})
  engine.train_and_evaluate(c, work)
  evals = helpers.records(work, 'validation')
  assert [r['step'] for r in evals] == [2, 4, 6]   # loss every 2; LM samples are no metric
  samples = open(os.path.join(work, 'samples.txt')).read()
  assert 'step 3' in samples and 'step 6' in samples and 'step 2' not in samples
  losses = {r['step']: r['loss'] for r in evals}
  best_step = min(losses, key=losses.get)
  best = workdir_lib.checkpoint_steps(workdir_lib.checkpoint_dir(work, 'best'))
  assert best == [best_step]
  meta = ckpt_lib.read_meta(workdir_lib.checkpoint_dir(work, 'best'), best_step)
  assert meta['best_metric'] == 'loss' and meta['best_value'] == pytest.approx(losses[best_step])
  exp, state = inference.load_trained(c, work, checkpoint='best')
  assert int(state.step) == best_step
  again = exp.evaluate(state.params, c.eval_split, c.eval_max_batches)
  assert again['loss'] == pytest.approx(losses[best_step], rel=1e-5)


def test_a_best_metric_the_evaluation_lacks_is_refused_before_training(tmp_path, data_dir):
  with pytest.raises(ConfigError, match="best_metric='bleu' is not a metric"):
    engine.train_and_evaluate(tiny(num_train_steps=2, best_metric='bleu'), str(tmp_path))
  assert not workdir_lib.has_checkpoints(str(tmp_path))


def test_the_loop_closes_the_data_however_it_ends(tmp_path, data_dir, monkeypatch):
  """Image data's worker threads and processes were never stopped; the loop's finally closes
  the data, also when training stops with an error."""
  from transformer.data import lm as lm_data
  closed = []
  monkeypatch.setattr(lm_data.StreamLMData, 'close', lambda self: closed.append(1),
                      raising=False)
  engine.train_and_evaluate(tiny(num_train_steps=1), str(tmp_path / 'a'))
  assert closed == [1]
  with pytest.raises(ConfigError):
    engine.train_and_evaluate(tiny(num_train_steps=2, best_metric='bleu'), str(tmp_path / 'b'))
  assert closed == [1, 1]


def test_a_resumed_run_records_each_step_once(tmp_path, data_dir):
  """The fault campaign: after a kill and a resume, metrics.jsonl held the redone steps twice
  (45 of 82 trials); eval.py's own records stay."""
  import shutil
  work = str(tmp_path)
  engine.train_and_evaluate(tiny(num_train_steps=4, checkpoint_every_steps=2,
                                 eval_every_steps=2), work)
  shutil.rmtree(tmp_path / 'checkpoints' / '4')   # as if killed after step 4, before its save
  with open(tmp_path / 'metrics.jsonl', 'a') as f:  # an eval.py record of checkpoint 4
    f.write('{"step": 4, "split": "validation", "loss": 1.0, "checkpoint": "latest"}\n')
  engine.train_and_evaluate(tiny(num_train_steps=4, checkpoint_every_steps=2,
                                 eval_every_steps=2), work)
  records = read_metrics(work)
  trained = [(r['step'], r['split']) for r in records if 'checkpoint' not in r]
  assert sorted(trained) == sorted(set(trained))
  assert [s for s, split in trained if split == 'train'] == [1, 2, 3, 4]
  assert sum(1 for r in records if r.get('checkpoint') == 'latest') == 1
