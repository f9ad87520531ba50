"""The fault campaign's quick run: a few kill -9 trials (anywhere, during a save, during the
removal of an old step), a SIGTERM, damage to the newest and to every checkpoint, random bit
flips and a user error, all through train.py and eval.py, with 0 failures (every user error
and the full disk: test_cli_errors.py, test_disk_full.py). The long
campaign is `python -m tools.fault_campaign` (benchmarks/RESULTS.md has its counts)."""

import subprocess
import sys

from tests import helpers


def test_the_quick_fault_campaign_finds_nothing(data_dir):
  res = subprocess.run([sys.executable, '-m', 'tools.fault_campaign', '--quick'],
                       cwd=helpers.REPO, capture_output=True, text=True, timeout=900)
  assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-3000:]
  assert '0 silent wrong restores, 0 lost saves, 0 tracebacks, 0 inexact resumes, 0 failed' \
      in res.stdout, res.stdout[-3000:]
