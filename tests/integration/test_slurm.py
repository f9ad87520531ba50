"""The SLURM tier: a real single-node SLURM cluster on this machine (tests/slurm_cluster.py:
Debian's slurm-wlm and munge, installed when missing where this runs as root with apt-get,
as in CI; skipped elsewhere with the command that installs them).

- a sweep through the SLURM engine gives, trial by trial, the same final metrics as the same
  sweep through the local engine, and a trial whose run fails is reported failed with its
  one-line error while the others finish;
- a trial requeued mid-run (`scontrol requeue`, or the signal before the time limit through
  submitit's checkpoint-and-requeue) resumes from the checkpoint its SIGTERM saved and ends
  with the same metrics as an uninterrupted run;
- a 2-task job trains across two processes joined by jax.distributed from SLURM's
  environment, and matches one process on 2 forced CPU devices.
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tests import helpers, slurm_cluster
from tools import launch, sweep

TINY = ['--config.model.d_model=16', '--config.model.num_heads=2', '--config.model.d_ff=32',
        '--config.model.num_decoder_layers=1', '--config.model.dropout_rate=0.0',
        '--config.seq_len=16', '--config.batch_size=4', '--config.eval_batch_size=4',
        '--config.eval_max_batches=2', '--config.log_every_steps=10', '--config.warmup_steps=2',
        '--config.schedule=constant']


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
  root = tmp_path_factory.mktemp('slurm')
  try:
    c = slurm_cluster.Cluster(str(root)).start()
  except slurm_cluster.Unavailable as e:
    if 'install' in str(e) and os.geteuid() != 0:
      pytest.skip(str(e))
    raise
  old = os.environ.get('SLURM_CONF')
  os.environ['SLURM_CONF'] = c.conf     # submitit's sbatch/squeue/scancel read it
  try:
    yield c
  finally:
    c.stop()
    if old is None:
      os.environ.pop('SLURM_CONF', None)
    else:
      os.environ['SLURM_CONF'] = old


def _finals(workdir):
  out = {}
  for split in ('train', 'validation'):
    records = helpers.records(workdir, split)
    out[split] = (records[-1]['step'], records[-1]['loss'])
  return out


@pytest.mark.slow
def test_sweep_on_slurm_matches_local_and_reports_the_failed_trial(cluster, tmp_path, data_dir):
  path = tmp_path / 'four.py'
  path.write_text(textwrap.dedent("""
      from transformer import sweep_space as sweep
      BASE = 'configs/lm_shakespeare_char.py'
      def get_sweep():
        return sweep.chain(sweep.product(sweep.axis('learning_rate', [1e-3, 3e-3]),
                                         sweep.axis('seed', [0, 1])),
                           [{'init_from': '/nonexistent/run'}])
      """))
  flags = TINY + ['--config.num_train_steps=20', '--config.eval_every_steps=20']
  results = {}
  for engine in ('slurm', 'local'):
    parent = str(tmp_path / engine)
    records = sweep.run(str(path), parent, flags, log=lambda *_: None,
                        settings={'engine': engine, 'parallel': 2, 'time_min': 10})
    assert [r['status'] for r in records] == ['done'] * 4 + ['failed'], records
    assert all(r['engine'] == engine for r in records)
    failed = records[4]
    assert failed['returncode'] == 2 and failed['attempts'] == 1
    assert failed['error'].startswith('error: ') and '/nonexistent/run' in failed['error']
    results[engine] = [_finals(t['workdir']) for t in sweep.collect(parent)[:4]]
    if engine == 'slurm':
      assert all(r['job_id'].isdigit() for r in records)
      table = sweep.status(parent)
      assert [row[1] for row in table[1:]] == ['done'] * 4 + ['failed']
  for slurm_run, local_run in zip(results['slurm'], results['local']):
    for split in ('train', 'validation'):
      assert slurm_run[split][0] == local_run[split][0] == 20
      assert slurm_run[split][1] == pytest.approx(local_run[split][1], rel=1e-6)


REQUEUE_STEPS = 1500
REQUEUE_CMD = [sys.executable, os.path.join(helpers.REPO, 'train.py'),
               '--config=configs/lm_shakespeare_char.py', *TINY,
               f'--config.num_train_steps={REQUEUE_STEPS}', '--config.eval_every_steps=100000',
               '--config.checkpoint_every_steps=100000']


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, require_data):
  """The final metrics of the requeue tests' run, never interrupted."""
  require_data()
  work = str(tmp_path_factory.mktemp('uninterrupted'))
  res = helpers.run_python(REQUEUE_CMD[1:] + [f'--workdir={work}'])
  assert res.returncode == 0, res.stderr[-3000:]
  return _finals(work)


@pytest.mark.slow
@pytest.mark.parametrize('interruption', ['scontrol requeue', 'time-limit signal'])
def test_interrupted_trial_is_requeued_and_resumes_to_the_same_metrics(
    cluster, tmp_path, uninterrupted, interruption):
  """`scontrol requeue` (SLURM stops and requeues the job), or the signal SLURM sends
  --signal_delay_s before the time limit (USR2, sent here by hand; submitit then asks the
  job to checkpoint and requeues it): either way train.py saves on its SIGTERM, and the
  requeued job resumes from that checkpoint to the same metrics as a run never stopped."""
  work = str(tmp_path / 'requeued')
  settings = launch.settings_from({'engine': 'slurm', 'time_min': 10})
  launcher = launch.Launcher(settings, str(tmp_path / 'submitit'), log=lambda *_: None)
  job = str(launcher.submit(REQUEUE_CMD + [f'--workdir={work}'], work, 0).job_id)
  deadline = time.time() + 240
  while time.time() < deadline:       # wait until it has trained a little, not finished
    if os.path.exists(os.path.join(work, 'metrics.jsonl')) and helpers.records(work, 'train'):
      break
    time.sleep(0.1)
  if interruption == 'scontrol requeue':
    p = cluster.run('scontrol', 'requeue', job)
  else:
    p = cluster.run('scancel', '--signal=USR2', job)
  assert p.returncode == 0, p.stderr
  # SLURM holds a requeued job for 120 s before it may start again (once it has finished
  # stopping): let it start a few seconds after it is pending. (At once, slurmd can still
  # hold the old start's credential as revoked, and kills the new start: seen under load.)
  pending_since = None
  while time.time() < deadline + 120:
    if launch.read_record(work).get('status') in launch.TERMINAL:
      break
    state = cluster.run('squeue', '-h', '-j', job, '-o', '%T %r').stdout.split()
    if state[:2] == ['PENDING', 'BeginTime']:
      pending_since = pending_since or time.time()
      if time.time() - pending_since > 3:
        cluster.run('scontrol', 'update', f'JobId={job}', 'StartTime=now')
    time.sleep(0.3)
  record = launch.read_record(work)
  log = open(os.path.join(work, 'train.log')).read()
  assert record['status'] == 'done' and record['attempts'] == 2, (record, log[-3000:])
  stopped = [line for line in log.splitlines() if 'after a signal; checkpoint saved' in line]
  assert len(stopped) == 1, log[-3000:]
  assert f'step {REQUEUE_STEPS}/' not in log.split(stopped[0])[0]     # it stopped mid-run
  assert 'Restored checkpoint at step' in log.split(stopped[0])[1]
  got = _finals(work)
  assert got['train'][0] == uninterrupted['train'][0] == REQUEUE_STEPS
  assert got['validation'][1] == pytest.approx(uninterrupted['validation'][1], rel=1e-6)
  assert got['train'][1] == pytest.approx(uninterrupted['train'][1], rel=1e-6)


@pytest.mark.slow
def test_two_task_job_matches_one_process_on_two_devices(cluster, tmp_path, data_dir,
                                                         monkeypatch):
  flags = ['--config=configs/lm_shakespeare_char.py', *TINY, '--config.num_train_steps=10',
           '--config.eval_every_steps=10']
  two = str(tmp_path / 'two_tasks')
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=1')
  code = launch.main(['--engine=slurm', '--tasks_per_node=2', '--time_min=10', '--',
                      'train.py', *flags, f'--workdir={two}'])
  log = open(os.path.join(two, 'train.log')).read()
  assert code == 0, log[-3000:]
  assert 'Process 0 of 2, 1 local / 2 global devices' in open(os.path.join(two,
                                                                          'console.log')).read()
  assert 'Process 1 of 2' in open(os.path.join(two, 'console.task1.log')).read()

  one = str(tmp_path / 'one_process')
  res = helpers.run_python(['train.py', *flags, f'--workdir={one}'],
                           env_extra={'XLA_FLAGS': '--xla_force_host_platform_device_count=2'})
  assert res.returncode == 0, res.stderr[-3000:]
  for split in ('train', 'validation'):
    a, b = helpers.records(two, split), helpers.records(one, split)
    assert [r['step'] for r in a] == [r['step'] for r in b]
    for x, y in zip(a, b):
      assert x['loss'] == pytest.approx(y['loss'], rel=1e-5), (split, x, y)


def test_no_slurm_commands_is_one_clear_error(tmp_path):
  """Where sbatch does not exist, --engine=slurm says so before anything runs."""
  env = dict(os.environ, PATH=os.path.dirname(sys.executable))
  p = subprocess.run([sys.executable, '-m', 'tools.launch', '--engine=slurm', '--', 'train.py',
                      f'--workdir={tmp_path}'], cwd=helpers.REPO, env=env, capture_output=True,
                     text=True, timeout=120)
  assert p.returncode == 2 and p.stderr.count('\n') == 1
  assert 'no SLURM commands' in p.stderr
