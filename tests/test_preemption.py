"""Preemption of a multi-host job: SIGTERM to one process stops every process at the same step.

Two processes on localhost (jax.distributed, one CPU device each) train a tiny
LM; process 1 alone gets SIGTERM. Both must save the same step and exit 0, and
resuming both must continue exactly as a run that was never interrupted (the
same global batches on two devices in one process).
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests import helpers

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


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start_pair(workdir, steps):
  port = _free_port()
  procs = []
  for i in range(2):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f'localhost:{port}', JAX_NUM_PROCESSES='2',
               JAX_PROCESS_ID=str(i), XLA_FLAGS='--xla_force_host_platform_device_count=1')
    procs.append(subprocess.Popen(
        [sys.executable, 'train.py', *FLAGS, f'--config.num_train_steps={steps}',
         f'--workdir={workdir}'], cwd=helpers.REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True))
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
