"""What keeps a long run alive and observable: bad steps, one run per workdir, eval splits checked
up front, strict JSON metrics, throughput figures and a profiler window."""

import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lm_shakespeare_char
from tests import helpers
from transformer import checkpoint as ckpt_lib
from transformer import engine, errors
from transformer import workdir as workdir_lib
from transformer.data import DataError
from transformer.data import lm as lm_data
from transformer.metric_writer import MetricWriter
from transformer.tasks import lm as lm_task

TINY_MODEL = dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1)
TINY = dict(seq_len=16, batch_size=4, eval_batch_size=8, eval_max_batches=2, log_every_steps=1,
            eval_every_steps=1000, checkpoint_every_steps=1000, warmup_steps=2)


def tiny(**overrides):
  return helpers.tiny_config(lm_shakespeare_char, TINY_MODEL, **{**TINY, **overrides})


@pytest.fixture
def poison(monkeypatch):
  """Makes the loss NaN on the training steps (0-based batch index) put in the returned set."""
  bad: set[int] = set()
  original_batch = lm_data.StreamLMData.train_batch
  original_loss = lm_task.LMTask.loss_sums

  def train_batch(self, step, batch_size, seed, shard=(0, 1)):
    batch = original_batch(self, step, batch_size, seed, shard)
    rows = len(batch['inputs'])
    return dict(batch, poison=np.full((rows,), step in bad, np.float32))

  def loss_sums(self, params, batch, rng, train):
    sums = original_loss(self, params, batch, rng, train)
    if 'poison' in batch:
      sums['objective'] = sums['objective'] * jnp.where(batch['poison'][0] > 0, jnp.nan, 1.0)
    return sums

  monkeypatch.setattr(lm_data.StreamLMData, 'train_batch', train_batch)
  monkeypatch.setattr(lm_task.LMTask, 'loss_sums', loss_sums)
  return bad


def test_a_nan_step_is_skipped_and_training_goes_on(poison, tmp_path, data_dir):
  poison.update({2})                       # the third step's loss is NaN
  exp = engine.Experiment(tiny(), None)
  state = exp.init_state()
  snapshots, bad = [], []
  with exp.context():
    for step in range(4):
      batch = exp.task.data.train_batch(step, 4, 0)
      before = jax.device_get((state.params, state.opt_state))
      state, metrics = exp.train_step(state, exp.put_batch(batch))
      snapshots.append((before, jax.device_get((state.params, state.opt_state))))
      bad.append(int(metrics['bad_step']))
  assert bad == [0, 0, 1, 0] and int(state.step) == 4
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),  # noqa: E731
                                                                 jax.tree.leaves(b)))
  assert same(*snapshots[2])                   # the NaN step left params and Adam's moments
  assert not same(*snapshots[3])               # the next step trains again
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(snapshots[3][1]))

  # The loop logs it and keeps going; a window of only bad steps has no loss (null, not NaN).
  out = engine.train_and_evaluate(tiny(num_train_steps=5), str(tmp_path))
  assert out['step'] == 5 and np.isfinite(out['loss'])
  train = helpers.records(str(tmp_path), 'train')
  assert [r['bad_steps'] for r in train] == [0, 0, 1, 0, 0]
  assert train[2]['loss'] is None
  assert all(np.isfinite(r['loss']) for i, r in enumerate(train) if i != 2)


def test_bad_steps_in_a_row_stop_training_and_keep_the_last_checkpoint(poison, tmp_path,
                                                                       data_dir):
  poison.update({4, 5, 6, 7, 8})
  c = tiny(num_train_steps=10, checkpoint_every_steps=2, max_bad_steps=3)
  with pytest.raises(errors.TrainingError, match=r'3 bad steps in a row \(steps 5-7; '
                     r'max_bad_steps=3\): the loss or gradient norm is not finite\. The last '
                     r"update applied was step 4's"):
    engine.train_and_evaluate(c, str(tmp_path))
  ckpt = ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints'))
  assert ckpt.steps == [2, 4, 6]   # written before or during the bad run, all finite
  state, _ = ckpt.restore(engine.Experiment(c, None).abstract_state)
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))
  assert all(isinstance(json.loads(line), dict)     # strict JSON throughout
             for line in open(tmp_path / 'metrics.jsonl'))


def test_an_update_that_overflows_is_the_bad_step_not_the_steps_after_it(tmp_path, data_dir):
  """A finite loss and gradient whose update overflows a parameter: before, the update was
  applied and the steps after it were reported as non-finite (the campaign's 'steps 2-4' for
  a NaN that entered through step 1's update)."""
  import optax
  exp = engine.Experiment(tiny(), None)
  inner = exp.optimizer

  def update(grads, opt_state, params):   # the second update (step 2) overflows
    count = jax.tree.leaves(opt_state)[0]   # Adam's step count before this update: 1 at step 2
    updates, opt_state = inner.update(grads, opt_state, params)
    big = jnp.where(count == 1, jnp.inf, 0.0)   # from finite gradients, as an overflow gives
    return jax.tree.map(lambda u: u + big, updates), opt_state

  exp.optimizer = optax.GradientTransformation(inner.init, update)   # traced at the first call
  state = exp.init_state()
  flags, params = [], []
  with exp.context():
    for step in range(2):
      batch = exp.task.data.train_batch(step, 4, 0)
      before = jax.device_get(state.params)
      state, metrics = exp.train_step(state, exp.put_batch(batch))
      flags.append(int(metrics['bad_step']))
      params.append((before, jax.device_get(state.params)))
  assert flags == [0, 2]   # step 2: loss and gradients finite, the update would overflow
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params[1][0]),
                                                   jax.tree.leaves(params[1][1])))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_metrics_jsonl_is_strict_json(tmp_path):
  w = MetricWriter(str(tmp_path), enabled=True)
  w.write(1, 'train', {'loss': float('nan'), 'grad_norm': np.float32('inf'),
                       'ok': np.float32(1.5), 'list': [1.0, float('-inf')]})
  w.close()
  text = (tmp_path / 'metrics.jsonl').read_text()
  assert 'NaN' not in text and 'Infinity' not in text
  record = json.loads(text, parse_constant=lambda c: pytest.fail(f'non-strict JSON: {c}'))
  assert record['loss'] is None and record['grad_norm'] is None and record['ok'] == 1.5
  assert record['list'] == [1.0, None]


def test_log_records_throughput_and_profile_window(tmp_path, data_dir):
  out = engine.train_and_evaluate(tiny(num_train_steps=6, profile_steps=(2, 4)),
                                     str(tmp_path))
  assert out['step'] == 6
  train = helpers.records(str(tmp_path), 'train')
  last = train[-1]
  assert last['step_time_ms'] == pytest.approx(1000 / last['steps_per_sec'])
  assert last['tokens_per_sec'] > 0 and last['tflops_per_device'] > 0
  assert 'mfu' not in last   # no known peak for a CPU
  traces = [f for root, _, files in os.walk(tmp_path / 'profile') for f in files]
  assert any(f.endswith(('.xplane.pb', '.trace.json.gz')) for f in traces), traces


def test_a_second_training_on_a_workdir_stops_at_once(tmp_path, data_dir):
  lock = workdir_lib.Lock(str(tmp_path))
  try:
    with pytest.raises(errors.TrainingError, match=rf'in use by another training process '
                                                      rf'\(pid {os.getpid()} '):
      engine.train_and_evaluate(tiny(num_train_steps=1), str(tmp_path))
    assert not (tmp_path / 'checkpoints').exists()   # it stopped before touching anything
  finally:
    lock.release()
  # Released (as on exit or a crash): the workdir is free again.
  assert engine.train_and_evaluate(tiny(num_train_steps=1), str(tmp_path))['step'] == 1


def test_the_lock_is_released_when_its_process_dies(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time; sys.path.insert(0, sys.argv[1]); '
       'from transformer import workdir as workdir_lib; lock = workdir_lib.Lock(sys.argv[2]); '
       'print("locked", flush=True); time.sleep(60)', helpers.REPO, str(tmp_path)],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'locked'
    with pytest.raises(errors.TrainingError, match=f'pid {holder.pid} '):
      workdir_lib.Lock(str(tmp_path))
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
  workdir_lib.Lock(str(tmp_path)).release()   # no stale lock after kill -9


@pytest.mark.parametrize('split,message', [
    ('valdation', "eval_split='valdation' cannot be read: .*no split 'valdation'"),
])
def test_a_bad_eval_split_fails_before_the_first_step(tmp_path, data_dir, split, message):
  with pytest.raises(DataError, match=message):
    engine.train_and_evaluate(tiny(num_train_steps=2, eval_split=split), str(tmp_path))
  assert not (tmp_path / 'checkpoints').exists()
  assert not (tmp_path / 'metrics.jsonl').exists()


def test_a_failing_evaluation_keeps_the_checkpoint_of_its_step(monkeypatch, tmp_path, data_dir):
  def broken(self, params, split, max_batches=-1):
    raise RuntimeError('evaluation broke')
  monkeypatch.setattr(engine.Experiment, 'evaluate', broken)
  c = tiny(num_train_steps=4, eval_every_steps=2, checkpoint_every_steps=1000)
  with pytest.raises(RuntimeError, match='evaluation broke'):
    engine.train_and_evaluate(c, str(tmp_path))
  assert ckpt_lib.Checkpointer(str(tmp_path / 'checkpoints')).steps == [2]
