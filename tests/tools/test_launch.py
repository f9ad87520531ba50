"""tools/launch.py: settings and their errors, device slots, and jobs through submitit's
local and debug executors (the SLURM engine: tests/integration/test_slurm.py)."""

import os
import sys

import pytest

from tools import launch

# A job that records what it was given: its devices, its CPU affinity, its task.
PROBE = ('import json, os, sys; json.dump({"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), '
         '"cores": sorted(os.sched_getaffinity(0))}, open(sys.argv[1], "w"))')


def test_settings_from_flags_and_their_errors(monkeypatch):
  s = launch.settings_from({'engine': 'local', 'parallel': '2', 'mem_gb': '3.5',
                            'sbatch': 'qos=high,account=lab'})
  assert (s.engine, s.parallel, s.mem_gb) == ('local', 2, 3.5)
  assert s.sbatch == {'qos': 'high', 'account': 'lab'}
  with pytest.raises(launch.LaunchError, match="unknown engine 'kubernetes'"):
    launch.settings_from({'engine': 'kubernetes'})
  with pytest.raises(launch.LaunchError, match="unknown launch setting 'gpus'"):
    launch.settings_from({'gpus': 2})
  with pytest.raises(launch.LaunchError, match="parallel='abc' is not an integer"):
    launch.settings_from({'parallel': 'abc'})
  with pytest.raises(launch.LaunchError, match='need --engine=slurm'):
    launch.settings_from({'nodes': 2})
  monkeypatch.setenv('PATH', '/nonexistent')      # no sbatch anywhere
  with pytest.raises(launch.LaunchError, match='no SLURM commands'):
    launch.settings_from({'engine': 'slurm'})


def test_device_slots_are_disjoint():
  gpu = launch.device_slots(2, gpus=['0', '1', '2', '3'])
  assert [s['env']['CUDA_VISIBLE_DEVICES'] for s in gpu] == ['0,1', '2,3']
  cpu = launch.device_slots(3, gpus=[], cores=range(7))
  assert [s['cores'] for s in cpu] == [(0, 1), (2, 3), (4, 5)]   # the odd core is left idle
  assert all(s['env'] == {} for s in cpu)
  with pytest.raises(launch.LaunchError, match='one GPU each'):
    launch.device_slots(3, gpus=['0', '1'])
  with pytest.raises(launch.LaunchError, match='one core each'):
    launch.device_slots(3, gpus=[], cores=[0, 1])


def test_visible_gpus_reads_cuda_visible_devices(monkeypatch):
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '4,5,7')
  assert launch.visible_gpus() == ['4', '5', '7']
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '-1')
  assert launch.visible_gpus() == []


def _probe_jobs(tmp_path, settings, n):
  launcher = launch.Launcher(settings, str(tmp_path / 'submitit'), log=lambda *_: None)
  items = [(f'job{i}', [sys.executable, '-c', PROBE, str(tmp_path / f'out{i}.json')],
            str(tmp_path / f'job{i}')) for i in range(n)]
  return launcher, launcher.run_all(items, poll_s=0.1)


def test_parallel_local_jobs_get_disjoint_devices(tmp_path, monkeypatch):
  """Two jobs at once through submitit's local executor, on a host with 4 (faked) GPUs:
  each sees its own two; on a CPU host each is pinned to its own cores."""
  import json
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1,2,3')
  _, records = _probe_jobs(tmp_path, launch.settings_from({'parallel': 2}), 2)
  assert [r['status'] for r in records.values()] == ['done', 'done']
  seen = [json.load(open(tmp_path / f'out{i}.json'))['cuda'] for i in range(2)]
  assert seen == ['0,1', '2,3']

  monkeypatch.delenv('CUDA_VISIBLE_DEVICES')
  monkeypatch.setattr(launch, 'visible_gpus', lambda: [])
  cores = sorted(os.sched_getaffinity(0))
  if len(cores) < 2:
    pytest.skip('one core: nothing to split')
  _, records = _probe_jobs(tmp_path, launch.settings_from({'parallel': 2}), 2)
  got = [json.load(open(tmp_path / f'out{i}.json'))['cores'] for i in range(2)]
  assert got[0] and got[1] and not set(got[0]) & set(got[1])
  assert sorted(got[0] + got[1]) == cores[:len(got[0]) + len(got[1])]


def test_failed_jobs_are_retried_then_reported_with_their_error(tmp_path):
  """A job that fails is resubmitted `retries` times, then stays failed with its error's one
  line; one that exits with status 2 (a user error) is not retried."""
  counter = tmp_path / 'attempts'
  script = (f'import sys; f = open({str(counter)!r}, "a"); f.write("x"); f.close(); '
            'print("step 1 fine"); print("ValueError: the loss is nan at step 3", '
            'file=sys.stderr); sys.exit(int(sys.argv[1]))')
  settings = launch.settings_from({'engine': 'debug', 'retries': 2})
  launcher = launch.Launcher(settings, str(tmp_path / 'submitit'), log=lambda *_: None)
  records = launcher.run_all([('flaky', [sys.executable, '-c', script, '1'],
                               str(tmp_path / 'a'))], poll_s=0.1)
  record = records[str(tmp_path / 'a')]
  assert record['status'] == 'failed' and record['returncode'] == 1
  assert record['error'] == 'ValueError: the loss is nan at step 3'
  assert counter.read_text() == 'xxx' and record['attempts'] == 3   # 1 + 2 retries
  counter.unlink()
  records = launcher.run_all([('bad', [sys.executable, '-c', script, '2'],
                               str(tmp_path / 'b'))], poll_s=0.1)
  assert records[str(tmp_path / 'b')]['returncode'] == 2 and counter.read_text() == 'x'


def test_error_line_prefers_the_programs_own_message(tmp_path):
  log = tmp_path / 'console.log'
  log.write_text('Traceback (most recent call last):\n  File "x"\nKeyError: 3\n'
                 'error: unknown config field: learning_rat\nsome teardown noise\n')
  assert launch.error_line(str(log)) == 'error: unknown config field: learning_rat'
  log.write_text('just the last line\n\n')
  assert launch.error_line(str(log)) == 'just the last line'


def test_launch_command_line_errors(capsys):
  assert launch.main(['--engine=local']) == 2                        # no -- command
  assert launch.main(['--engine=nope', '--', 'train.py', '--workdir=/tmp/x']) == 2
  assert "unknown engine 'nope'" in capsys.readouterr().err
  assert launch.main(['--', 'train.py', '--config=c.py']) == 2       # no --workdir
  assert 'needs --workdir' in capsys.readouterr().err
