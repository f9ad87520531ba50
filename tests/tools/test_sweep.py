"""Sweeps: building trial lists, running them in workdirs, resuming, and the summary table."""

import csv
import json
import os
import sys
import textwrap

import pytest

from tests import helpers
from tools import sweep
from transformer import sweep_space
from transformer.errors import ConfigError

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
  with pytest.raises(ConfigError, match='--config.FIELD=VALUE'):
    sweep.plan(_write_sweep(tmp_path, [0.1]), str(tmp_path / 'p'), ['--seed=3'])


def test_invalid_trials_are_refused_before_anything_runs(tmp_path):
  """Every trial's config is built as train.py would and validated first: one message names
  each bad trial and its field, and nothing is run."""
  path = tmp_path / 'bad_sweep.py'
  path.write_text(textwrap.dedent("""
      from transformer import sweep_space
      BASE = 'configs/lm_shakespeare_char.py'
      def get_sweep():
        return [{'learning_rate': 1e-3}, {'learing_rate': 1e-3}, {'learning_rate': 'fast'},
                {'learning_rate': -1.0}]
      """))
  parent = tmp_path / 'p'
  with pytest.raises(ConfigError) as e:
    sweep.run(str(path), str(parent), TINY, log=lambda *_: None, settings={'engine': 'debug'})
  msg = str(e.value)
  assert '3 trial(s) of the sweep are invalid' in msg and 'nothing was run' in msg
  assert 'trial 001_learing_rate=0.001' in msg and 'learing_rate' in msg
  assert 'trial 002_learning_rate=fast' in msg and 'fast' in msg
  assert 'trial 003_learning_rate=-1' in msg and 'learning_rate' in msg
  assert not any((parent / d / 'console.log').exists() for d in os.listdir(parent)
                 if (parent / d).is_dir())


@pytest.mark.slow
def test_sweep_runs_resumes_and_summarizes(tmp_path, data_dir):
  # The third trial starts from a checkpoint that does not exist: it fails when it starts.
  path = tmp_path / 'my_sweep.py'
  path.write_text(textwrap.dedent("""
      from transformer import sweep_space
      BASE = 'configs/lm_shakespeare_char.py'
      def get_sweep():
        return [{'learning_rate': 1e-3}, {'learning_rate': 3e-3},
                {'learning_rate': 1e-3, 'init_from': '/nonexistent/run'}]
      """))
  path = str(path)
  parent = str(tmp_path / 'sweep')
  records = sweep.run(path, parent, TINY, log=lambda *_: None)   # local, --parallel=1
  assert [r['status'] for r in records] == ['done', 'done', 'failed']
  assert records[2]['returncode'] == 2 and '/nonexistent/run' in records[2]['error']
  assert records[2]['attempts'] == 1                     # a user error is not retried
  trials = sweep.plan(path, parent, TINY)

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
  assert body[0][3] == '0.001' and body[2][3] == '0.001'
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


def test_a_search_ranks_by_its_own_metric_and_direction(tmp_path):
  """A maximized metric (accuracy) ranks highest first in tools.sweep and tools.report
  (a recorded search once named its worst trial best)."""
  assert sweep.ranking(str(tmp_path)) == (None, False)   # a grid sweep: as given
  (tmp_path / 'search.json').write_text(json.dumps(
      {'metric': 'validation/accuracy', 'direction': 'maximize'}))
  assert sweep.ranking(str(tmp_path)) == ('validation/accuracy', True)
  assert sweep.ranking(str(tmp_path), 'validation/loss') == ('validation/loss', True)
  (tmp_path / 'search.json').write_text(json.dumps(
      {'metric': 'validation/loss', 'direction': 'minimize'}))
  assert sweep.ranking(str(tmp_path)) == ('validation/loss', False)


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


def _events(workdir):
  """Every TensorBoard event in WORKDIR/tensorboard (the TFRecord files read by hand)."""
  import struct
  from tensorboardX.proto import event_pb2
  out = []
  tb = os.path.join(workdir, 'tensorboard')
  for name in sorted(os.listdir(tb)):
    data = open(os.path.join(tb, name), 'rb').read()
    i = 0
    while i < len(data):
      (n,) = struct.unpack('<Q', data[i:i + 8])
      out.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
      i += 12 + n + 4
  return out


SEARCH_STEPS = 60


@pytest.mark.slow
def test_search_prunes_resumes_and_records(tmp_path, data_dir):
  """A random search of 5 trials on this machine, with the median pruner: the
  study's states match the trials' records, pruned trials stopped at an evaluation with a
  checkpoint there, finished ones told their last metric; HParams in each trial's
  TensorBoard run; --resume_pruned finishes the pruned ones."""
  import optuna
  path = tmp_path / 'search.py'
  path.write_text(textwrap.dedent("""
      from transformer import sweep_space as sweep
      BASE = 'configs/lm_shakespeare_char.py'
      def get_search():
        return sweep.search({'learning_rate': sweep.choice([1e-2, 1e-6]),
                             'model.dropout_rate': sweep.uniform(0.0, 0.1)},
                            sampler='random', pruner='median', max_trials=5, startup_trials=1,
                            seed=3)
      """))
  flags = [f for f in TINY if 'eval_every' not in f and 'num_train_steps' not in f] + [
      '--config.eval_every_steps=20', f'--config.num_train_steps={SEARCH_STEPS}']
  parent = str(tmp_path / 's')
  # One at a time: with two, which trial finishes first (and so what the median is when a
  # later trial reports) would depend on timing.
  assert sweep.main(['run', f'--sweep={path}', f'--parent={parent}', *flags]) == 0
  study = optuna.load_study(study_name='search', storage=__import__(
      'tools.search', fromlist=['storage']).storage(parent))
  trials = {t.number: t for t in study.get_trials()}
  assert sorted(trials) == [0, 1, 2, 3, 4]
  rows = sweep.collect(parent)
  assert len(rows) == 5
  states = {'done': optuna.trial.TrialState.COMPLETE, 'pruned': optuna.trial.TrialState.PRUNED}
  statuses = []
  for row in rows:
    record = sweep.read_trial(row['workdir'])
    trial = trials[record['number']]
    statuses.append(record['status'])
    assert trial.state == states[record['status']], (record, trial)
    assert trial.params == record['overrides']
    evals = helpers.records(row['workdir'], 'validation')
    ckpts = sorted(int(d) for d in os.listdir(os.path.join(row['workdir'], 'checkpoints'))
                   if d.isdigit())
    if record['status'] == 'pruned':
      pruned = json.load(open(os.path.join(row['workdir'], 'pruned.json')))
      assert pruned['step'] < SEARCH_STEPS and evals[-1]['step'] == pruned['step']
      assert ckpts[-1] == pruned['step']
      assert trial.intermediate_values[pruned['step']] == pytest.approx(evals[-1]['loss'])
    else:
      assert evals[-1]['step'] == SEARCH_STEPS and ckpts[-1] == SEARCH_STEPS
      assert trial.value == pytest.approx(evals[-1]['loss'])
    plugins = [v.metadata.plugin_data.plugin_name for e in _events(row['workdir'])
               for v in e.summary.value]
    assert 'hparams' in plugins
  assert 'pruned' in statuses and 'done' in statuses, statuses
  md = open(os.path.join(parent, 'summary.md')).read()
  assert 'Best: ' in md and '--report_trial' not in md
  assert os.path.exists(os.path.join(parent, 'plots', 'validation_loss_curves.png'))

  # Finishing the pruned trials: they resume from their checkpoints to the end.
  assert sweep.main(['run', f'--sweep={path}', f'--parent={parent}', '--resume_pruned',
                     *flags]) == 0
  for row in sweep.collect(parent):
    assert sweep.read_trial(row['workdir'])['status'] == 'done'
    assert helpers.records(row['workdir'], 'validation')[-1]['step'] == SEARCH_STEPS
  assert len(optuna.load_study(study_name='search', storage=__import__(
      'tools.search', fromlist=['storage']).storage(parent)).get_trials()) == 5


def test_search_files_and_directories_that_cannot_work(tmp_path, capsys):
  """An empty range, a directory made by another sweep file, an unknown engine: one
  message each, exit status 2."""
  with pytest.raises(ValueError, match='empty range'):
    sweep_space.uniform(1.0, 1.0)
  with pytest.raises(ValueError, match='pruner'):
    sweep_space.search({'a': sweep_space.choice([1])}, pruner='asha')
  empty = tmp_path / 'empty.py'
  empty.write_text(textwrap.dedent("""
      from transformer import sweep_space as sweep
      BASE = 'configs/lm_shakespeare_char.py'
      def get_search():
        return sweep.search({'learning_rate': sweep.loguniform(1e-2, 1e-4)})
      """))
  assert sweep.main(['run', f'--sweep={empty}', f'--parent={tmp_path / "e"}']) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'empty range [0.01, 0.0001]' in err

  first = _write_sweep(tmp_path, [0.1, 0.2])
  sweep.plan(first, str(tmp_path / 'p'))
  other = tmp_path / 'other_sweep.py'
  other.write_text(open(first).read().replace('[0.1, 0.2]', '[0.3]'))
  assert sweep.main(['commands', f'--sweep={other}', f'--parent={tmp_path / "p"}']) == 2
  err = capsys.readouterr().err
  assert 'was made by another sweep' in err and err.count('\n') == 1
  # The same file may append a stage; changing or reordering the trials it ran is refused.
  assert len(sweep.plan(_write_sweep(tmp_path, [0.1, 0.2, 0.3]), str(tmp_path / 'p'))) == 3
  assert sweep.main(['commands', f'--sweep={_write_sweep(tmp_path, [0.2, 0.1, 0.3])}',
                     f'--parent={tmp_path / "p"}']) == 2
  assert 'was made by another sweep' in capsys.readouterr().err
  first = _write_sweep(tmp_path, [0.1, 0.2])
  assert sweep.main(['run', f'--sweep={first}', f'--parent={tmp_path / "p"}',
                     '--engine=cloud']) == 2
  assert "unknown engine 'cloud'" in capsys.readouterr().err


@pytest.mark.slow
def test_cancel_stops_a_running_sweep_and_run_resumes_it(tmp_path, data_dir):
  """`cancel` stops a local trial through SIGTERM (it saves its checkpoint), the `run` that
  launched it ends without retrying it, and `run` again resumes it to the end."""
  import subprocess
  import time
  path = _write_sweep(tmp_path, [1e-3])
  steps = 3000
  flags = [f for f in TINY if 'num_train_steps' not in f and 'log_every' not in f] + [
      f'--config.num_train_steps={steps}', '--config.log_every_steps=10']
  parent = tmp_path / 'p'
  run = subprocess.Popen([sys.executable, '-m', 'tools.sweep', 'run', f'--sweep={path}',
                          f'--parent={parent}', *flags], cwd=helpers.REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    deadline = time.time() + 240
    while time.time() < deadline:
      workdirs = [d for d in parent.glob('000_*') if (d / 'metrics.jsonl').exists()]
      if workdirs and helpers.records(str(workdirs[0]), 'train'):
        break
      assert run.poll() is None, run.communicate()[0]
      time.sleep(0.1)
    assert sweep.cancel(str(parent), log=lambda *_: None) == 1
    out = run.communicate(timeout=120)[0]
  finally:
    if run.poll() is None:
      run.kill()
  assert run.returncode == 1, out
  assert 'retrying' not in out and 'submitted' in out
  workdir = str(workdirs[0])
  record = sweep.read_trial(workdir)
  assert record['status'] == 'cancelled' and record['attempts'] == 1, record
  saved = max(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit())
  assert 0 < saved < steps
  assert [row[1] for row in sweep.status(str(parent))[1:]] == ['cancelled']

  records = sweep.run(path, str(parent), flags, log=lambda *_: None)
  assert records[0]['status'] == 'done' and records[0]['attempts'] == 2
  assert f'Restored checkpoint at step {saved}' in open(os.path.join(workdir, 'train.log')).read()
  assert helpers.records(workdir, 'train')[-1]['step'] == steps


def test_search_space_and_pruners_as_optuna_sees_them():
  """The space becomes Optuna distributions with the given bounds; each pruner counts its
  budget in training steps, from the first evaluation to num_train_steps."""
  import optuna
  from tools import search
  s = sweep_space.search({'lr': sweep_space.loguniform(1e-4, 1e-2),
                          'w': sweep_space.integer(0, 200, step=25),
                          'p': sweep_space.uniform(0.0, 0.3),
                          'pos': sweep_space.choice(['rope', 'learned'])})
  d = search.distributions(s)
  assert d['lr'] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
  assert d['w'] == optuna.distributions.IntDistribution(0, 200, step=25)
  assert d['p'] == optuna.distributions.FloatDistribution(0.0, 0.3)
  assert d['pos'] == optuna.distributions.CategoricalDistribution(['rope', 'learned'])
  assert {tuple(c.items())[0] for c in search.corners(s)} == {
      ('lr', 1e-4), ('lr', 1e-2), ('w', 0), ('w', 200), ('p', 0.0), ('p', 0.3),
      ('pos', 'rope'), ('pos', 'learned')}
  settings = {'startup_trials': 2, 'warmup_steps': 50, 'eval_every_steps': 100,
              'num_train_steps': 900}
  median = search.pruner({**settings, 'pruner': 'median'})
  assert isinstance(median, optuna.pruners.MedianPruner)
  assert (median._n_startup_trials, median._n_warmup_steps) == (2, 50)
  halving = search.pruner({**settings, 'pruner': 'halving'})
  assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
  assert halving._min_resource == 100
  hyperband = search.pruner({**settings, 'pruner': 'hyperband'})
  assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
  assert (hyperband._min_resource, hyperband._max_resource) == (100, 900)
  assert isinstance(search.pruner({**settings, 'pruner': 'none'}), optuna.pruners.NopPruner)
