"""Multi-host jobs, as two processes on localhost (jax.distributed, one CPU device each).

- Preemption: process 1 alone gets SIGTERM while both train a tiny LM. Both
  must save the same step and exit 0, and resuming both must continue exactly
  as a run that was never interrupted (the same global batches on two devices
  in one process).
- eval.py's decoding: each process decodes its share of the split's batches;
  the gathered translations and BLEU equal those of one process.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests import helpers
from transformer import engine

SYNC = 5   # config.preemption_sync_every_steps
FLAGS = ['--config=configs/lm_shakespeare_char.py', '--config.model.d_model=16',
         '--config.model.num_heads=2', '--config.model.d_ff=32',
         '--config.model.num_decoder_layers=1', '--config.model.dropout_rate=0.0',
         '--config.seq_len=16', '--config.batch_size=4', '--config.eval_batch_size=4',
         '--config.eval_max_batches=1', '--config.log_every_steps=1', '--config.warmup_steps=2',
         '--config.eval_every_steps=100000', '--config.checkpoint_every_steps=100000',
         f'--config.preemption_sync_every_steps={SYNC}',
         # A learning rate that does not depend on num_train_steps (cosine does), so that
         # runs of different lengths take the same steps.
         '--config.schedule=constant']


def _start_pair(workdir, steps=None, args=None):
  """Two processes of one job: train.py with FLAGS for `steps`, or `args` (a script and flags)."""
  args = args or ['train.py', *FLAGS, f'--config.num_train_steps={steps}']
  port = helpers.free_port()
  procs = []
  for i in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i), XLA_FLAGS='--xla_force_host_platform_device_count=1')
    procs.append(subprocess.Popen(
        [sys.executable, *args, f'--workdir={workdir}'], cwd=helpers.REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  return procs


def _finish(procs, timeout=300):
  outs = [p.communicate(timeout=timeout)[0] for p in procs]
  return [p.returncode for p in procs], outs


def _losses(workdir):
  return {r['step']: r['loss'] for r in helpers.records(workdir, 'train')}


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path, data_dir):
  work = str(tmp_path / 'two')
  procs = _start_pair(work, steps=100000)
  try:
    deadline = time.time() + 240
    while not any(s >= 3 for s in _losses(work)) and time.time() < deadline:
      assert all(p.poll() is None for p in procs), _finish(procs)[1]
      time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)              # one process only
    codes, outs = _finish(procs)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert codes == [0, 0], outs
  steps = sorted(int(n) for n in os.listdir(os.path.join(work, 'checkpoints')) if n.isdigit())
  assert len(steps) == 1 and steps[0] % SYNC == 0, steps   # one step, agreed at a sync point
  stopped = steps[0]
  assert f'Stopped at step {stopped} after a signal' in outs[0] + outs[1]

  # Resume both to two steps past the stop; compare with a run never interrupted.
  codes, outs = _finish(_start_pair(work, steps=stopped + 2))
  assert codes == [0, 0], outs
  ref = str(tmp_path / 'reference')
  res = helpers.run_python(['train.py', *FLAGS, f'--config.num_train_steps={stopped + 2}',
                            f'--workdir={ref}'],
                           env_extra={'XLA_FLAGS': '--xla_force_host_platform_device_count=2'})
  assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
  resumed, reference = _losses(work), _losses(ref)
  for step in (stopped + 1, stopped + 2):
    assert resumed[step] == pytest.approx(reference[step], rel=1e-5), (step, resumed, reference)


@pytest.mark.slow
def test_eval_py_decodes_a_share_on_each_process_and_gathers_them(tmp_path, data_dir):
  from tests.tasks import test_translation
  work = str(tmp_path)
  overrides = {'decoding.max_eval_sentences': 24,   # 6 batches of 4: 3 per process
               **test_translation.M30K_TEST}
  engine.train_and_evaluate(test_translation.tiny(num_train_steps=3, **overrides), work)
  args = ['eval.py', '--config=configs/translate_multi30k.py',
          *test_translation.flags(**overrides)]
  one = helpers.run_python([*args, f'--workdir={work}'])
  assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
  path = tmp_path / 'translations_test_2016_flickr_step3.txt'
  single, single_eval = path.read_text(), helpers.records(work, 'test_2016_flickr')[-1]
  path.unlink()

  codes, outs = _finish(_start_pair(work, args=args))
  assert codes == [0, 0], outs
  assert 'process 0 of 2 decoded 3 of 6 batches' in outs[0]
  assert path.read_text() == single and len(single.splitlines()) == 24
  both = helpers.records(work, 'test_2016_flickr')[-1]
  for key in ('bleu', 'tokenized_bleu', 'bleu_sentences', 'loss'):
    assert both[key] == pytest.approx(single_eval[key], rel=1e-6), key
