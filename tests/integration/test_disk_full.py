"""A checkpoint that does not fit on the disk: one error line, exit 2, the earlier checkpoints
kept (the fault campaign's disk-full runs on a 20 MB tmpfs ended with hundreds of lines of
Orbax and asyncio tracebacks and exit 1). A real small tmpfs where this machine allows
mounting one (root), else skipped with the reason."""

import os
import subprocess
import sys

import pytest

from tests import helpers

MODEL = ['--config.model.d_model=128', '--config.model.num_heads=2', '--config.model.d_ff=512',
         '--config.model.num_decoder_layers=2', '--config.seq_len=16', '--config.batch_size=4',
         '--config.eval_batch_size=4', '--config.eval_max_batches=1',
         '--config.num_train_steps=2', '--config.warmup_steps=1']


@pytest.fixture
def small_disk(tmp_path):
  mount = tmp_path / 'disk'
  mount.mkdir()
  res = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', str(mount)],
                       capture_output=True, text=True)
  if res.returncode != 0:
    pytest.skip(f'cannot mount a tmpfs here ({res.stderr.strip() or res.returncode}): '
                'the disk-full path is covered by test_checkpoint with a patched free space')
  try:
    yield mount
  finally:
    subprocess.run(['umount', str(mount)], capture_output=True)


def test_a_full_disk_is_one_error_line_and_exit_2(small_disk, data_dir):
  work = small_disk / 'w'
  res = subprocess.run([sys.executable, 'train.py', '--config=configs/lm_shakespeare_char.py',
                        f'--workdir={work}', *MODEL], cwd=helpers.REPO, capture_output=True,
                       text=True, timeout=300)
  assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-3000:]
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: Not enough disk space to save '
                                                 'checkpoint 2'), res.stderr[-3000:]
  assert 'Traceback' not in res.stdout + res.stderr
  assert not [n for n in os.listdir(work / 'checkpoints') if 'tmp' in n]


NO_CHECK = '''
import runpy, sys
from transformer import checkpoint
checkpoint.Checkpointer._check_space = lambda self, step, state: None
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path('train.py', run_name='__main__')
'''


def test_a_disk_that_fills_up_during_a_save_is_one_error_and_the_run_resumes(small_disk,
                                                                            data_dir, tmp_path):
  """The free-space check passed, then the disk filled up (another writer took the space:
  here the check is switched off and the third checkpoint does not fit): before, Orbax's
  background writes ended the run with 234 lines of tracebacks, exit 1 and the partial save
  left behind."""
  (tmp_path / 'no_check.py').write_text(NO_CHECK)
  work = small_disk / 'w'
  args = ['--config=configs/lm_shakespeare_char.py', f'--workdir={work}',
          '--config.model.d_model=64', '--config.model.num_heads=2', '--config.model.d_ff=256',
          '--config.model.num_decoder_layers=2', '--config.seq_len=16', '--config.batch_size=4',
          '--config.eval_batch_size=4', '--config.eval_max_batches=1',
          '--config.num_train_steps=4', '--config.checkpoint_every_steps=1',
          '--config.warmup_steps=1']
  res = subprocess.run([sys.executable, str(tmp_path / 'no_check.py'), *args], cwd=helpers.REPO,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=helpers.REPO))
  assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-3000:]
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(
      'error: The disk filled up while checkpoint 3 was being written'), res.stderr[-3000:]
  assert 'the checkpoints kept so far, [1, 2], stay as they are' in lines[0]
  assert sorted(os.listdir(work / 'checkpoints')) == ['1', '2']   # no partial save left
  # Space freed (the tmpfs made larger): the run resumes from step 2 and finishes.
  subprocess.run(['mount', '-o', 'remount,size=12m', str(small_disk)], check=True)
  res = subprocess.run([sys.executable, 'train.py', *args], cwd=helpers.REPO,
                       capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-3000:]
  assert 'Restored checkpoint at step 2' in res.stdout + res.stderr
  assert sorted(int(n) for n in os.listdir(work / 'checkpoints') if n.isdigit()) == [1, 2, 3, 4]
