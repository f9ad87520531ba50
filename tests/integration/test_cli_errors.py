"""Every command's user errors are one line on stderr and exit status 2: no traceback, no page
of flag help (the fault campaign found 15 config and command-line cases ending in a traceback
or exit 1, and 16 that printed flag help before the message or exited 1)."""

import subprocess
import sys

import pytest

from tests import helpers

CASES = {
    'misspelled field': (['train.py', '--config.batchsize=3'],
                         'unknown config field: \'batchsize\' Did you mean "batch_size"'),
    'value of the wrong type': (['train.py', '--config.batch_size=abc'],
                                "--config.batch_size=abc: invalid literal for int()"),
    'missing config file': (['train.py', '--config=configs/no_such_config.py'],
                            'the config could not be loaded'),
    'config file with a syntax error': (['train.py', '--config={tmp}/syntax.py'],
                                        'SyntaxError: invalid syntax'),
    'config file without get_config': (['train.py', '--config={tmp}/empty.py'],
                                       'the config file has no get_config() function'),
    'get_config raises': (['train.py', '--config={tmp}/raises.py'], 'RuntimeError: boom'),
    'unknown flag': (['train.py', '--bogus=1'], "Unknown command line flag 'bogus'"),
    'usage error (no --workdir)': (['eval.py'], '--workdir is required'),
    'generate.py --num_tokens=0': (['generate.py', '--workdir={tmp}', '--num_tokens=0'],
                                   '--num_tokens=0 must be a positive integer'),
    '--workdir is a file': (['train.py', '--workdir={tmp}/empty.py'],
                            'is a file, not a directory'),
    'train.lock is a directory': (['train.py', '--workdir={tmp}/locked'],
                                  'cannot take the lock'),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_a_user_error_is_one_line_and_exit_status_2(case, tmp_path):
  (tmp_path / 'syntax.py').write_text('def get_config(:\n')
  (tmp_path / 'empty.py').write_text('x = 1\n')
  (tmp_path / 'raises.py').write_text("def get_config():\n  raise RuntimeError('boom')\n")
  (tmp_path / 'locked' / 'train.lock').mkdir(parents=True)
  args, message = CASES[case]
  args = [a.format(tmp=tmp_path) for a in args]
  if args[0] == 'train.py' and not any(a.startswith('--workdir') for a in args):
    args.append(f'--workdir={tmp_path / "w"}')
  res = subprocess.run([sys.executable, *args], cwd=helpers.REPO, capture_output=True,
                       text=True, timeout=120)
  assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), res.stderr[-2000:]
  assert message in lines[0]
  assert 'Traceback' not in res.stdout + res.stderr and '--helpfull' not in res.stderr


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
