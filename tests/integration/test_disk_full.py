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
