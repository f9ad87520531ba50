"""Every command's user errors are one line on stderr and exit status 2: no traceback, no page
of flag help (the fault campaign found 15 config and command-line cases ending in a traceback
or exit 1, and 16 that printed flag help before the message or exited 1)."""

import subprocess
import sys

import pytest

from tests import helpers
from tools import fault_campaign

CASES = fault_campaign.USER_ERRORS   # the fault campaign's cases (tools/fault_campaign.py)


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_user_error_is_one_line_and_exit_status_2(case, tmp_path):
  fault_campaign.make_error_files(str(tmp_path))
  args, message = fault_campaign.user_error_command(case, str(tmp_path))
  res = subprocess.run([sys.executable, *args], cwd=helpers.REPO, capture_output=True,
                       text=True, timeout=120)
  assert fault_campaign.one_line_error(res.returncode, res.stdout, res.stderr, message) is None, (
      res.returncode, res.stdout[-2000:], res.stderr[-2000:])
  assert '--helpfull' not in res.stderr


def test_eval_py_checks_the_split_and_the_prompt_before_evaluating(tmp_path, data_dir):
  """eval.py's unknown eval_split ended in a traceback (train.py handled the same typo), and a
  prompt with characters outside the vocabulary failed only after the whole evaluation."""
  from configs import lm_shakespeare_char
  from transformer import engine
  from transformer.metric_writer import read_metrics
  work = str(tmp_path / 'w')
  engine.train_and_evaluate(helpers.tiny_config(
      lm_shakespeare_char, dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1),
      seq_len=16, batch_size=4, eval_batch_size=8, eval_max_batches=1, num_train_steps=1,
      warmup_steps=1), work)
  before = len(read_metrics(work))
  for flag, message in (('--config.eval_split=valdation', "eval_split='valdation'"),
                        ('--config.sample.prompt=ROMEO: \u00e9t\u00e9',
                         "config.sample.prompt: Character '\u00e9' is not in the vocabulary")):
    res = subprocess.run([sys.executable, 'eval.py', f'--workdir={work}', flag],
                         cwd=helpers.REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr[-2000:]
  assert len(read_metrics(work)) == before   # nothing was evaluated
