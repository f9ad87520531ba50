"""Results bookkeeping (tools/report.py) and the Table 3 sweep file.

The metrics here are synthetic: they test the bookkeeping, they are not results.
"""

import json
import os
import textwrap

import pytest

from tools import report, sweep
from transformer import experiment_config, validation
from transformer.experiment_config import ConfigError

REPO = report.REPO


def _config(configs_dir, name, **ref):
  """A minimal experiment config file with a REFERENCE dict."""
  full = dict(metric='test/accuracy', higher_is_better=True, reference=0.8, source='a paper',
              target=None, time_budget_min=None, runnable_here=True, why=None)
  full.update(ref)
  path = configs_dir / f'{name}.py'
  path.write_text(textwrap.dedent(f'''
      """Synthetic config {name}."""
      def get_config():
        return {{}}
      REFERENCE = {full!r}
      '''))
  return str(path)


def _metrics(workdir, records):
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
    for r in records:
      f.write(json.dumps(r) + '\n')
  return str(workdir)


T0 = 1_795_320_000.0     # 2026-11-22 UTC


@pytest.fixture
def tree(tmp_path):
  """A configs dir with four configs (and a base.py and sweeps/ that are not configs)."""
  configs = tmp_path / 'configs'
  (configs / 'sweeps').mkdir(parents=True)
  (configs / 'base.py').write_text('def get_config():\n  return {}\n')
  (configs / 'sweeps' / 'some_sweep.py').write_text('def get_sweep():\n  return [{}]\n')
  paths = {
      'vit_hi': _config(configs, 'vit_hi', target=0.9, time_budget_min=10),
      'lm_lo': _config(configs, 'lm_lo', metric='validation/loss', higher_is_better=False,
                       reference=1.886, source='nanoGPT', target=1.89),
      'cloud': _config(configs, 'cloud', runnable_here=False,
                       why='needs a TFDS download and 8 TPUs'),
      'fresh': _config(configs, 'fresh', metric='test/perplexity', higher_is_better=False,
                       reference=114.0),
  }
  return tmp_path, configs, paths


COMMAND_TXT = """command: python train.py --config=configs/vit_hi.py --workdir=runs/hi
commit: 0123abc
date: 2026-12-02T10:00:00+00:00
host: box
hardware: Linux x86_64, 2 CPU cores; jax cpu

command: python train.py --config=configs/vit_hi.py --workdir=runs/hi
commit: 4567def (with uncommitted changes)
date: 2026-12-02T11:00:00+00:00
host: box
hardware: Linux x86_64, 2 CPU cores; jax cpu

"""


def _run(tmp, name, records, steps=200, command=COMMAND_TXT):
  workdir = _metrics(tmp / name, records)
  (tmp / name / 'config.json').write_text(json.dumps({'num_train_steps': steps}))
  if command:
    (tmp / name / 'command.txt').write_text(command)
  return workdir


HI_RECORDS = [
    {'step': 100, 'split': 'train', 'time': T0 + 10, 'loss': 2.0, 'accuracy': 0.4},
    {'step': 100, 'split': 'test', 'time': T0 + 12, 'loss': 1.0, 'accuracy': 0.5},
    {'step': 200, 'split': 'train', 'time': T0 + 300, 'loss': 0.5, 'accuracy': 0.97},
    {'step': 200, 'split': 'test', 'time': T0 + 302, 'loss': 0.3, 'accuracy': 0.94},
    # eval.py on the same checkpoint, later: the last record at the last step wins
    {'step': 200, 'split': 'test', 'time': T0 + 400, 'loss': 0.3, 'accuracy': 0.95,
     'checkpoint': 'latest'},
]


def test_record_takes_everything_from_the_workdir(tree):
  tmp, _, paths = tree
  workdir = _run(tmp, 'run_hi', HI_RECORDS)
  results = tmp / 'results'
  rec = report.record(paths['vit_hi'], workdir, results_dir=str(results))
  assert rec['metric'] == 'test/accuracy' and rec['value'] == 0.95 and rec['step'] == 200
  assert rec['wall_time_s'] == 290.0        # first to last logged training step
  assert rec['command'] == 'python train.py --config=configs/vit_hi.py --workdir=runs/hi'
  assert rec['commit'] == '0123abc' and len(rec['launches']) == 2   # launched, then resumed
  assert rec['date'] == '2026-12-02' and rec['hardware'].startswith('Linux x86_64')
  assert rec['complete'] and not rec['transcribed']
  assert json.loads((results / 'vit_hi.json').read_text()) == rec
  for f in ('config.json', 'command.txt', 'metrics.jsonl'):   # the artifacts travel
    assert (results / 'vit_hi' / f).read_bytes() == (tmp / 'run_hi' / f).read_bytes()
  # Nothing can be typed in for a workdir's record.
  with pytest.raises(report.ReportError, match='takes its step, wall time, command'):
    report.record(paths['vit_hi'], workdir, results_dir=str(results), wall_time=100.0)
  with pytest.raises(report.ReportError, match='command.txt does not exist'):
    report.record(paths['vit_hi'], _run(tmp, 'old', HI_RECORDS, command=''),
                  results_dir=str(results))


def test_record_refuses_a_shorter_or_worse_run_unless_forced(tree):
  tmp, _, paths = tree
  results = str(tmp / 'results')
  report.record(paths['vit_hi'], _run(tmp, 'good', HI_RECORDS), results_dir=results)
  worse = [dict(r, accuracy=r['accuracy'] - 0.1) for r in HI_RECORDS]
  with pytest.raises(report.ReportError, match=r'worse than the recorded 0\.95 \(--force'):
    report.record(paths['vit_hi'], _run(tmp, 'worse', worse), results_dir=results)
  short = _run(tmp, 'short', HI_RECORDS, steps=1000)   # stopped at 200 of 1000 steps
  with pytest.raises(report.ReportError, match='stopped at step 200 of its num_train_steps=1000'):
    report.record(paths['vit_hi'], short, results_dir=results)
  assert json.loads((tmp / 'results' / 'vit_hi.json').read_text())['workdir'].endswith('good')
  rec = report.record(paths['vit_hi'], short, results_dir=results, force=True)
  assert rec['complete'] is False and rec['workdir'].endswith('short')


def test_verify_recomputes_bleu_from_the_translations(tree, data_dir):
  tmp, configs, _ = tree
  path = _config(configs, 'm30k', metric='test_2016_flickr/tokenized_bleu', reference=30.0)
  from transformer.data import translation as tr_data
  _, refs = tr_data.split_texts('multi30k', 'test_2016_flickr', 'de', 'en')
  hyps = [r if i % 2 else ' '.join(r.split()[:-1]) for i, r in enumerate(refs)]
  (tmp / 'run').mkdir()
  (tmp / 'run' / 'translations.txt').write_text(''.join(h + '\n' for h in hyps))
  from transformer import bleu
  score = bleu.tokenized_bleu(hyps, refs).score
  workdir = _run(tmp, 'run', [
      {'step': 1, 'split': 'train', 'time': T0, 'loss': 3.0},
      {'step': 1, 'split': 'test_2016_flickr', 'time': T0 + 5, 'tokenized_bleu': score,
       'translations_file': str(tmp / 'run' / 'translations.txt')}], steps=1)
  cfg = {'num_train_steps': 1, 'dataset': 'multi30k', 'source_lang': 'de', 'target_lang': 'en'}
  (tmp / 'run' / 'config.json').write_text(json.dumps(cfg))
  results = tmp / 'results'
  rec = report.record(path, workdir, results_dir=str(results))
  assert (results / 'm30k' / 'translations.txt').exists()
  readme = tmp / 'README.md'
  readme.write_text(f'| `m30k` | BLEU | 30 | {report.format_number(rec["metric"], score)} |\n')
  check = lambda: report.verify(str(results), str(readme), str(tmp / 'absent.md'),  # noqa: E731
                                str(configs))
  assert check() == []
  # A changed translation, a changed record, a stale README: each is caught.
  (results / 'm30k' / 'translations.txt').write_text(''.join(r + '\n' for r in refs))
  assert any('rescored' in p for p in check())
  (results / 'm30k' / 'translations.txt').write_text(''.join(h + '\n' for h in hyps))
  rec['value'] += 1.0
  (results / 'm30k.json').write_text(json.dumps(rec))
  problems = check()
  assert any('in ' in p and 'metrics.jsonl' in p for p in problems)
  assert any("README.md's row does not show" in p for p in problems)


def test_the_committed_records_verify():
  assert report.verify() == []


def test_transcribed_record_needs_its_provenance(tree):
  tmp, _, paths = tree
  results = str(tmp / 'results')
  with pytest.raises(report.ReportError, match=r"missing: \['wall_time', 'command', 'notes'\]"):
    report.record(paths['lm_lo'], '', value=1.85, step=2000, date='2026-11-22',
                  results_dir=results)
  rec = report.record(paths['lm_lo'], '', value=1.85, step=2000, wall_time=334.0,
                      date='2026-11-22', command='python train.py', notes='benchmarks/RESULTS.md',
                      results_dir=results)
  assert rec['value'] == 1.85 and rec['step'] == 2000 and rec['wall_time_source'] == 'given'
  assert rec['notes'] == 'transcribed: benchmarks/RESULTS.md'
  assert report.target_met(report.reference_of(report.load_config_module(paths['lm_lo'])),
                           rec) == 'yes'


def test_missing_metric_lists_the_available_ones(tree, capsys):
  tmp, _, paths = tree
  workdir = _metrics(tmp / 'run', [
      {'step': 5, 'split': 'train', 'time': T0, 'loss': 2.0},
      {'step': 5, 'split': 'validation', 'time': T0, 'loss': 1.5, 'perplexity': 4.5}])
  with pytest.raises(report.ReportError) as e:
    report.record(paths['vit_hi'], workdir, results_dir=str(tmp / 'results'))
  msg = str(e.value)
  assert "'test/accuracy' is not in metrics.jsonl" in msg
  assert 'train/loss, validation/loss, validation/perplexity' in msg
  assert not (tmp / 'results' / 'vit_hi.json').exists()
  rc = report.main(['record', f'--config={paths["vit_hi"]}', f'--workdir={workdir}',
                    '--metric=validation/bleu', f'--results_dir={tmp / "results"}'])
  assert rc == 1 and 'validation/perplexity' in capsys.readouterr().err
  with pytest.raises(report.ReportError, match='missing or empty'):
    report.record(paths['vit_hi'], str(tmp / 'nothing'), results_dir=str(tmp / 'results'))


def test_target_met_both_directions_and_time_budget():
  hi = dict(metric='test/accuracy', higher_is_better=True, target=0.9, time_budget_min=10)
  lo = dict(metric='validation/loss', higher_is_better=False, target=1.89, time_budget_min=None)
  run = lambda v, wall=60.0, m=None: {'metric': m or 'test/accuracy', 'value': v,  # noqa: E731
                                      'wall_time_s': wall}
  assert report.target_met(hi, run(0.95)) == 'yes'
  assert report.target_met(hi, run(0.9)) == 'yes'
  assert report.target_met(hi, run(0.85)) == 'no: 85.00% < 90.00%'
  assert report.target_met(hi, run(0.95, wall=11 * 60)).startswith('value yes; time no')
  assert report.target_met(lo, run(1.8585, m='validation/loss')) == 'yes'
  assert report.target_met(lo, run(1.95, m='validation/loss')) == 'no: 1.95 > 1.89'
  assert report.target_met(dict(lo, target=None), run(1.95, m='validation/loss')) == \
      'no target stated'


def _row(md, name):
  rows = [line for line in md.splitlines() if line.startswith(f'| `{name}` |')]
  assert len(rows) == 1, (name, md)
  return [c.strip() for c in rows[0].strip('|').split(' | ')]


def test_build_rows(tree):
  tmp, configs, paths = tree
  results = tmp / 'results'
  hi = _run(tmp, 'hi', [{'step': 50, 'split': 'train', 'time': T0, 'accuracy': 0.2},
                        {'step': 50, 'split': 'test', 'time': T0 + 1, 'accuracy': 0.2},
                        {'step': 500, 'split': 'train', 'time': T0 + 350, 'accuracy': 0.9},
                        {'step': 500, 'split': 'test', 'time': T0 + 351, 'accuracy': 0.95}],
           steps=500)
  report.record(paths['vit_hi'], hi, results_dir=str(results))
  report.record(paths['lm_lo'], '', value=1.95, step=2000, wall_time=334, date='2026-11-22',
                command='python train.py', hardware='2-core CPU',
                notes='other jobs shared the cores', results_dir=str(results))
  (results / 'sweep_tiny.md').write_text('### Sweep `tiny`\n\n| trial | x |\n|---|---|\n')
  out = tmp / 'docs' / 'RESULTS.md'
  md = report.build(str(configs), str(results), str(out))

  assert md.splitlines()[0].startswith('<!-- Generated by `python -m tools.report build`')
  assert out.read_text() == md
  assert md == report.build(str(configs), str(results))            # deterministic
  names = [line.split(' | ')[0][2:] for line in md.splitlines() if line.startswith('| `')]
  assert names == ['`cloud`', '`fresh`', '`lm_lo`', '`vit_hi`']  # sorted; no base, no sweeps
  header_line = next(line for line in md.splitlines() if line.startswith('| config |'))
  header = [c.strip() for c in header_line.strip('|').split(' | ')]
  assert header == report.HEADER
  col = {h: i for i, h in enumerate(header)}

  row = _row(md, 'vit_hi')
  assert row[col['ours']] == f'95.00% at step 500; artifacts: {results / "vit_hi"}'
  assert row[col['reference (source)']] == '80.00% (a paper)'
  assert row[col['target']] == '>= 90.00% within 10 min'
  assert row[col['target met']] == 'yes'
  assert row[col['hardware']] == 'Linux x86_64, 2 CPU cores; jax cpu'
  assert row[col['wall time']] == '5 min 50 s (first to last logged training step)'
  assert row[col['date']] == '2026-12-02'
  assert row[col['command']] == '`python train.py --config=configs/vit_hi.py --workdir=runs/hi`'

  row = _row(md, 'lm_lo')
  assert row[col['ours']] == ('1.95 at step 2000; transcribed: other jobs shared the cores; '
                              'older record (transcribed, no artifacts)')
  assert row[col['target met']] == 'no: 1.95 > 1.89'
  assert row[col['command']] == '`python train.py`' and row[col['wall time']] == '5 min 34 s'

  row = _row(md, 'cloud')
  assert row[col['ours']] == 'not run here: needs a TFDS download and 8 TPUs'
  assert row[col['hardware']] == '—'
  row = _row(md, 'fresh')
  assert row[col['ours']] == 'not run yet' and row[col['target']] == 'none stated'
  assert row[col['metric']] == '`test/perplexity` ↓'
  assert '## Sweeps' in md and '### Sweep `tiny`' in md


def test_sweep_summary_goes_to_results(tmp_path):
  parent = tmp_path / 'sweep'
  trials = []
  for i, (heads, ppl) in enumerate([(1, 9.0), (4, 7.0)]):
    workdir = parent / f'00{i}_model.num_heads={heads}'
    _metrics(workdir, [{'step': 10, 'split': 'val', 'time': T0, 'perplexity': ppl,
                        'tokenized_bleu': 30.0 + heads}])
    (workdir / 'trial.json').write_text(json.dumps(
        {'status': 'done', 'started': T0, 'finished': T0 + 60}))
    trials.append({'name': workdir.name, 'workdir': str(workdir),
                   'overrides': {'model.num_heads': heads}})
  (parent / 'sweep.json').write_text(json.dumps(
      {'sweep': 'configs/sweeps/x.py', 'base': os.path.join(REPO, 'configs/x.py'),
       'extra': ['--config.num_train_steps=10'], 'trials': trials}))
  results = tmp_path / 'results'
  assert report.main(['sweep', f'--parent={parent}', '--name=t3', '--metric=val/perplexity',
                      '--columns=val/tokenized_bleu', f'--results_dir={results}']) == 0
  md = (results / 'sweep_t3.md').read_text()
  assert md.startswith('### Sweep `t3`')
  assert '--config.num_train_steps=10' in md and '2 of 2 done' in md
  assert '2 min 00 s' in md
  lines = [line for line in md.splitlines() if line.startswith('| 00')]
  assert lines[0].startswith('| 001_model.num_heads=4') and lines[0].endswith('| 7 | 34 |')
  with pytest.raises(ValueError, match='No trial has metric'):
    report.sweep_summary(str(parent), 't3', 'val/bleu', results_dir=str(results))


def test_every_config_has_a_reference():
  paths = report.config_files()
  names = {report.config_name(p) for p in paths}
  assert {'lm_shakespeare_char', 'translate_multi30k', 'wmt14_ende_base', 'vit_mnist'} <= names
  assert 'base' not in names
  known = {'loss', 'perplexity', 'accuracy', 'bleu', 'tokenized_bleu', 'tokenized_bleu_lc',
           'nll_per_char'}
  not_here = set()
  for path in paths:
    module = report.load_config_module(path)
    ref = report.reference_of(module, path)
    split, name = ref['metric'].split('/')
    assert name in known, path
    # The eval split, or a test split (SST-2: GLUE's dev) evaluated once at the end by eval.py.
    assert split == module.get_config().eval_split or split.startswith(
        ('test', 'newstest', 'dev')), path
    if not ref['runnable_here']:
      not_here.add(report.config_name(path))
      assert len(ref['why']) > 20
  assert not_here == {'lm1b', 'wmt14_ende_base', 'wmt14_ende_big', 'vit_s16_imagenet',
                      'vit_b16_imagenet', 'vit_cifar10', 'gpt2_small'}


def _apply(base_path, overrides):
  config = report.load_config_module(base_path).get_config()
  config.update_from_flattened_dict(overrides)
  return config


def _from_flags(base_path, overrides):
  """The config train.py builds from the trial's command line (tools.sweep)."""
  from absl import flags
  from ml_collections import config_flags
  argv = ['train.py'] + [a for a in sweep.trial_command(base_path, 'unused', overrides)[2:]
                         if not a.startswith('--workdir=')]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=values, sys_argv=argv)
  values(argv)
  return values.config


def test_table3_sweep_trials_are_valid_configs():
  base_path, trials = sweep.load_sweep(os.path.join(REPO, 'configs/sweeps/table3_multi30k.py'))
  assert base_path == os.path.join(REPO, 'configs/translate_multi30k.py')
  assert trials[0] == {} and len(trials) == len({json.dumps(t, sort_keys=True) for t in trials})
  qkv = {}
  for t in trials:
    config = _apply(base_path, t)
    validation.validate(config)                          # raises ConfigError if invalid
    assert _from_flags(base_path, t).to_dict() == config.to_dict()   # as train.py parses it
    for field, value in t.items():                       # each override landed on a real field
      node = config
      for part in field.split('.'):
        node = node[part]
      assert node == value, (t, field)
    cfg = experiment_config.build_model_config(config, vocab_size=8000)
    qkv[json.dumps(t, sort_keys=True)] = (cfg.num_heads, cfg.qkv_dim, cfg.d_model)
  assert qkv['{}'] == (4, 64, 256)
  assert qkv['{"model.num_heads": 1}'] == (1, 256, 256)     # (A): d_k = d_model / heads
  assert qkv['{"model.num_heads": 8}'] == (8, 32, 256)
  assert qkv['{"model.head_dim": 16}'] == (4, 16, 256)      # (B)
  assert qkv['{"model.d_ff": 1024, "model.d_model": 512}'] == (4, 128, 512)   # (C)
  fields = {f for t in trials for f in t}
  assert {'model.dropout_rate', 'label_smoothing', 'model.positional',
          'model.num_encoder_layers', 'model.num_decoder_layers'} <= fields
  with pytest.raises(ConfigError, match='num_heads'):   # the check can fail
    validation.validate(_apply(base_path, {'model.num_heads': 3}))
