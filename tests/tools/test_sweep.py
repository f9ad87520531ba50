"""Sweeps: building trial lists, running them in workdirs, resuming, and the summary table."""

import csv
import json
import os
import textwrap

import pytest

from tests import helpers
from tools import sweep
from transformer import sweep_space

TINY = ['--config.model.d_model=16', '--config.model.num_heads=2', '--config.model.d_ff=32',
        '--config.model.num_decoder_layers=1', '--config.seq_len=8', '--config.batch_size=2',
        '--config.eval_batch_size=4', '--config.eval_max_batches=1', '--config.log_every_steps=1',
        '--config.eval_every_steps=1000', '--config.checkpoint_every_steps=1000',
        '--config.warmup_steps=1', '--config.num_train_steps=2']


def test_product_zip_chain():
  grid = sweep_space.product(sweep_space.axis('a', [1, 2]), sweep_space.axis('b.c', ['x', 'y', 'z']))
  assert grid == [{'a': a, 'b.c': b} for a in (1, 2) for b in 'xyz']
  assert sweep_space.zipped(sweep_space.axis('a', [1, 2]), sweep_space.axis('b', [3, 4])) == [
      {'a': 1, 'b': 3}, {'a': 2, 'b': 4}]
  assert sweep_space.chain(sweep_space.axis('a', [1]), sweep_space.axis('b', [2])) == [{'a': 1}, {'b': 2}]
  with pytest.raises(ValueError, match='equal lengths'):
    sweep_space.zipped(sweep_space.axis('a', [1, 2]), sweep_space.axis('b', [3]))
  with pytest.raises(ValueError, match='set twice'):
    sweep_space.product(sweep_space.axis('a', [1]), sweep_space.axis('a', [2]))


def test_trial_names_are_unique_and_safe():
  trials = sweep_space.product(sweep_space.axis('model.positional', ['learned', 'sinusoidal']),
                         sweep_space.axis('learning_rate', [1e-3, 3e-3]))
  names = [sweep.trial_name(i, t) for i, t in enumerate(trials)]
  assert len(set(names)) == 4 and all('/' not in n and ' ' not in n for n in names)
  assert names[1] == '001_model.positional=learned_learning_rate=0.003'


def _write_sweep(tmp_path, values):
  path = tmp_path / 'my_sweep.py'
  path.write_text(textwrap.dedent(f"""
      from transformer import sweep_space
      BASE = 'configs/lm_shakespeare_char.py'
      def get_sweep():
        return sweep_space.axis('learning_rate', {values!r})
      """))
  return str(path)


def test_commands_for_a_scheduler(tmp_path):
  trials = sweep.plan(_write_sweep(tmp_path, [0.1, 0.2]), str(tmp_path / 'p'), ['--config.seed=3'])
  assert len(trials) == 2
  cmd = trials[1]['command']
  assert cmd[1].endswith('train.py') and '--config.learning_rate=0.2' in cmd
  assert '--config.seed=3' in cmd and f'--workdir={trials[1]["workdir"]}' in cmd
  with pytest.raises(ValueError, match='--config.FIELD=VALUE'):
    sweep.plan(_write_sweep(tmp_path, [0.1]), str(tmp_path / 'p'), ['--seed=3'])


@pytest.mark.slow
def test_sweep_runs_resumes_and_summarizes(tmp_path, data_dir):
  # The third trial's value is invalid, so that trial fails with a config error.
  path = _write_sweep(tmp_path, [1e-3, 3e-3, -1.0])
  parent = str(tmp_path / 'sweep')
  records = sweep.run(path, parent, TINY, log=lambda *_: None)
  assert [r['status'] for r in records] == ['done', 'done', 'failed']
  trials = sweep.plan(path, parent, TINY)
  log = open(os.path.join(trials[2]['workdir'], 'train.log')).read()
  assert 'learning_rate' in log                            # the config error names the field

  # Resuming: finished trials are skipped, their metrics untouched.
  mtime = os.path.getmtime(os.path.join(trials[0]['workdir'], 'metrics.jsonl'))
  again = sweep.run(path, parent, TINY, log=lambda *_: None)
  assert [r['status'] for r in again] == ['done', 'done', 'failed']
  assert os.path.getmtime(os.path.join(trials[0]['workdir'], 'metrics.jsonl')) == mtime

  # An interrupted trial (left 'running') shows as unfinished, not dropped.
  rec = sweep.read_trial(trials[1]['workdir'])
  rec['status'] = 'running'
  with open(os.path.join(trials[1]['workdir'], 'trial.json'), 'w') as f:
    json.dump(rec, f)

  md = sweep.summarize(parent, metric='validation/loss')
  rows = list(csv.reader(open(os.path.join(parent, 'summary.csv'))))
  header, body = rows[0], rows[1:]
  assert header[:4] == ['trial', 'status', 'step', 'learning_rate']
  assert [r[1] for r in body] == ['done', 'unfinished', 'failed']
  assert body[0][3] == '0.001' and body[2][3] == '-1.0'
  # The metric column holds each trial's own last validation loss.
  col = header.index('validation/loss')
  last = helpers.records(trials[0]['workdir'], 'validation')[-1]
  assert float(body[0][col]) == pytest.approx(last['loss'], rel=1e-3)
  assert body[2][col] == ''                                # the failed trial has no metrics
  assert md.splitlines()[0].startswith('| trial | status | step | learning_rate')
  with pytest.raises(ValueError, match='metrics found'):
    sweep.summarize(parent, metric='validation/nonexistent')


def test_summary_sorts_best_first(tmp_path):
  rows = [{'trial': n, 'status': s, 'overrides': {}, 'metrics': m} for n, s, m in [
      ('a', 'done', {'v/loss': 2.0}), ('b', 'failed', {}), ('c', 'done', {'v/loss': 1.0}),
      ('d', 'not started', {})]]
  assert [r['trial'] for r in sweep.sort_rows(rows, 'v/loss')] == ['c', 'a', 'b', 'd']
  assert [r['trial'] for r in sweep.sort_rows(rows, 'v/loss', True)] == ['a', 'c', 'b', 'd']


def test_group_statistics_over_seeds():
  rows = [{'trial': str(i), 'status': s, 'overrides': o, 'metrics': m} for i, (s, o, m) in
          enumerate([('done', {'lr': 0.1}, {'d/acc': 0.80}),
                     ('done', {'lr': 0.1, 'seed': 1}, {'d/acc': 0.84}),
                     ('done', {'lr': 0.1, 'seed': 2}, {'d/acc': 0.85}),
                     ('failed', {'lr': 0.1, 'seed': 3}, {'d/acc': 0.10}),   # not counted
                     ('done', {'lr': 0.3}, {'d/acc': 0.70})])]
  tab = sweep.group_table(rows, 'd/acc', over='seed')
  assert tab[0] == ['lr', 'n', 'd/acc mean', 'd/acc std', 'd/acc min', 'd/acc max']
  values = [0.80, 0.84, 0.85]
  mean = sum(values) / 3
  std = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5   # sample standard deviation
  assert tab[1] == ['0.1', '3', f'{mean:.4g}', f'{std:.2g}', '0.8', '0.85']
  assert tab[2] == ['0.3', '1', '0.7', '', '0.7', '0.7']
