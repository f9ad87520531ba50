"""Results bookkeeping: one JSON record per measured run, and docs/RESULTS.md built from them.

Every experiment config in configs/ ends with a `REFERENCE` dict: the metric as
written in metrics.jsonl (`SPLIT/NAME`), whether higher is better, the
reference number and where it comes from, the project's target (and time
budget) if it states one, and whether the run is possible on this machine
(`runnable_here`, with `why` when not).

  python -m tools.report record --config=configs/NAME.py --workdir=DIR [--metric=SPLIT/NAME]
      [--notes="..."] [--force]
  python -m tools.report verify
  python -m tools.report build [--out=docs/RESULTS.md]
  python -m tools.report sweep --parent=DIR --name=NAME [--metric=SPLIT/NAME] [--descending]
      [--columns=SPLIT/NAME,...] [--group_over=seed]

`record` takes everything from the run's workdir: the metric's value at the
last step it was recorded in metrics.jsonl (default: the config's REFERENCE
metric), the wall time from the first to the last logged training step, and
the command, commit, date and hardware that train.py wrote to command.txt. It
writes results/NAME.json and copies the run's config.json, command.txt,
metrics.jsonl (and, for translation, the translations file) to results/NAME/.
It refuses to replace a committed record with a shorter or worse run unless
--force. Runs from before command.txt existed can only be transcribed
(--value and its provenance flags), and are marked so.

`verify` recomputes every recorded number from results/NAME/ (the metric from
metrics.jsonl; BLEU rescored from the translations file against the split's
references) and fails when one differs from results/NAME.json, README.md or
docs/RESULTS.md.

`build` writes one row per config: the reference, our number from
results/NAME.json, whether the target was met, hardware, wall time, date and
command; configs that cannot run here say so and why; runnable ones without a
record say "not run yet". Every results/sweep_*.md (written by `sweep` from a
sweep's summary, tools/sweep.py) is appended. The output depends only on
those files, so building twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import sys
from typing import Any, Sequence

from transformer.metric_writer import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO, 'configs')
RESULTS_DIR = os.path.join(REPO, 'results')
DEFAULT_OUT = os.path.join(REPO, 'docs', 'RESULTS.md')
BUILD_COMMAND = 'python -m tools.report build'
NOT_CONFIGS = ('base.py', '__init__.py')
REFERENCE_KEYS = ('metric', 'higher_is_better', 'reference', 'source', 'target',
                  'time_budget_min', 'runnable_here', 'why')

class ReportError(ValueError):
  """A record or build that cannot be made; the message says what to change."""


# ----------------------------------------------------------------------------- configs

def load_config_module(path: str):
  """The module of an experiment config file (configs/NAME.py)."""
  if not os.path.isfile(path):
    raise ReportError(f'Config file {path} does not exist')
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  name = '_report_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_name(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def config_files(configs_dir: str = CONFIGS_DIR) -> list[str]:
  """The experiment config files directly in configs_dir (not base.py, not sweeps/), sorted."""
  out = []
  for f in sorted(os.listdir(configs_dir)):
    path = os.path.join(configs_dir, f)
    if f.endswith('.py') and f not in NOT_CONFIGS and os.path.isfile(path):
      with open(path) as fh:
        if 'def get_config' in fh.read():
          out.append(path)
  return out


def reference_of(module, path: str = '') -> dict:
  """The config's REFERENCE dict, checked: every key present, metric as SPLIT/NAME."""
  ref = getattr(module, 'REFERENCE', None)
  where = path or getattr(module, '__file__', '?')
  if not isinstance(ref, dict):
    raise ReportError(f'{where} has no REFERENCE dict (see tools/report.py)')
  missing = [k for k in REFERENCE_KEYS if k not in ref]
  if missing:
    raise ReportError(f'{where}: REFERENCE lacks {missing}')
  if not isinstance(ref['metric'], str) or ref['metric'].count('/') != 1:
    raise ReportError(f'{where}: REFERENCE metric {ref["metric"]!r} must be SPLIT/NAME')
  if not ref['runnable_here'] and not ref['why']:
    raise ReportError(f'{where}: REFERENCE says runnable_here=False without a why')
  return dict(ref)


# ----------------------------------------------------------------------------- metrics

def available_metrics(records: Sequence[dict]) -> list[str]:
  """Every numeric SPLIT/NAME in the records, sorted."""
  return sorted({f'{r.get("split", "?")}/{k}' for r in records for k, v in r.items()
                 if k not in ('step', 'time', 'split') and _is_number(v)})


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def last_value(records: Sequence[dict], metric: str) -> tuple[float, int, dict]:
  """(value, step, record) of `metric` (SPLIT/NAME) at the last step it was recorded.

  Of several records at that step, the one written last wins (eval.py after
  train.py's evaluation of the same checkpoint).
  """
  if metric.count('/') != 1:
    raise ReportError(f'metric {metric!r} must be SPLIT/NAME, e.g. validation/loss')
  split, name = metric.split('/')
  hits = [(int(r.get('step', 0)), i, r) for i, r in enumerate(records)
          if r.get('split') == split and _is_number(r.get(name))]
  if not hits:
    known = available_metrics(records)
    raise ReportError(f'metric {metric!r} is not in metrics.jsonl; it has: '
                      + (', '.join(known) if known else 'no metrics'))
  step, _, record = max(hits, key=lambda h: (h[0], h[1]))
  return float(record[name]), step, record


def default_hardware() -> str:
  """This machine: OS, CPU model and count, JAX backend and device kind."""
  parts = [f'{platform.system()} {platform.machine()}']
  cpu = ''
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          cpu = line.split(':', 1)[1].strip()
          break
  except OSError:
    cpu = platform.processor()
  parts.append(f'{os.cpu_count()} CPU cores' + (f' ({cpu})' if cpu else ''))
  try:
    import jax
    devices = jax.devices()
    parts.append(f'jax {jax.default_backend()}: {len(devices)} x {devices[0].device_kind}')
  except Exception:  # noqa: BLE001  (no JAX backend: describe the host only)
    pass
  return ', '.join(parts)


# ----------------------------------------------------------------------------- record

TRANSCRIBED_BEFORE = '2026-12-02'   # runs from before train.py wrote command.txt
ARTIFACTS = ('config.json', 'command.txt', 'metrics.jsonl')


def read_command_file(workdir: str) -> list[dict[str, str]]:
  """The launches in WORKDIR/command.txt (train.py appends one block per launch), oldest first."""
  path = os.path.join(workdir, 'command.txt')
  if not os.path.isfile(path):
    raise ReportError(f'{path} does not exist: record only runs that train.py launched since '
                      f'{TRANSCRIBED_BEFORE} (it writes command.txt); an older run whose '
                      'workdir was not kept can be transcribed with --value')
  launches = []
  with open(path) as f:
    for block in f.read().split('\n\n'):
      fields = dict(line.split(': ', 1) for line in block.strip().splitlines() if ': ' in line)
      if 'command' in fields:
        launches.append(fields)
  if not launches:
    raise ReportError(f'{path} holds no launch')
  return launches


def training_wall_time(records: Sequence[dict]) -> float | None:
  """Seconds from the first to the last logged training step (metrics.jsonl timestamps)."""
  times = [r['time'] for r in records if r.get('split') == 'train' and _is_number(r.get('time'))]
  return max(times) - min(times) if len(times) > 1 else None


def _better(ref: dict, new: float, old: float) -> bool:
  return new >= old if ref['higher_is_better'] else new <= old


def record(config_path: str, workdir: str, metric: str | None = None,
           notes: str | None = None, results_dir: str = RESULTS_DIR, force: bool = False,
           value: float | None = None, step: int | None = None, wall_time: float | None = None,
           command: str | None = None, date: str | None = None,
           hardware: str | None = None) -> dict:
  """Writes results/NAME.json and results/NAME/ (the run's artifacts) from `workdir`.

  Everything comes from the workdir: the metric's value at the last step it
  was recorded (metrics.jsonl), the wall time from the first to the last
  logged training step, the command, commit, date and hardware of the first
  launch (command.txt). The run's config.json, command.txt, metrics.jsonl and,
  for translation, the translations file are copied to results/NAME/ so that
  `verify` can recompute the number. A committed record is not replaced by a
  run that is shorter (fewer steps than its num_train_steps) or worse, unless
  `force`.

  Runs from before command.txt existed (their workdir not kept) are
  transcribed instead: `value`, `step`, `wall_time`, `date` (before
  TRANSCRIBED_BEFORE), `command` and `notes` (where the numbers were logged)
  are given, and the record is marked transcribed.
  """
  module = load_config_module(config_path)
  ref = reference_of(module, config_path)
  metric = metric or ref['metric']
  name = config_name(config_path)
  if value is not None:
    out = _transcribed(name, metric, value, step, wall_time, command, date, notes, hardware,
                       workdir)
  else:
    if any(v is not None for v in (step, wall_time, command, date, hardware)):
      raise ReportError('a record of a workdir takes its step, wall time, command, date and '
                        'hardware from the workdir; only a transcribed record (--value) gives them')
    out = _from_workdir(name, metric, workdir, notes)
  old = read_record(name, results_dir)
  if old is not None and not force and old.get('metric') == out['metric']:
    problems = []
    if out.get('complete') is False:
      problems.append(f'the run stopped at step {out["last_train_step"]} of its '
                      f'num_train_steps={out["num_train_steps"]}')
    if not _better(ref, out['value'], old['value']):
      problems.append(f'{metric} = {out["value"]:.6g} is worse than the recorded '
                      f'{old["value"]:.6g}')
    if problems:
      raise ReportError(f'not replacing results/{name}.json: ' + '; '.join(problems) +
                        ' (--force to replace it anyway)')
  os.makedirs(results_dir, exist_ok=True)
  if value is None:
    _copy_artifacts(workdir, os.path.join(results_dir, name), out)
  path = os.path.join(results_dir, f'{name}.json')
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)
  return out


def _from_workdir(name: str, metric: str, workdir: str, notes: str | None) -> dict:
  records = read_metrics(workdir)
  if not records:
    raise ReportError(f'{os.path.join(workdir, "metrics.jsonl")} is missing or empty: '
                      'is --workdir the directory train.py wrote?')
  value, step, rec = last_value(records, metric)
  launches = read_command_file(workdir)
  config_path = os.path.join(workdir, 'config.json')
  num_train_steps = None
  if os.path.isfile(config_path):
    with open(config_path) as f:
      num_train_steps = json.load(f).get('num_train_steps')
  train_steps = [int(r['step']) for r in records if r.get('split') == 'train']
  last_train = max(train_steps) if train_steps else None
  first = launches[0]
  wall = training_wall_time(records)
  return {
      'config': name, 'metric': metric, 'value': value, 'step': step,
      'metrics_at_step': {k: v for k, v in rec.items() if k not in ('step', 'split', 'time')
                          and (_is_number(v) or isinstance(v, str))},
      'wall_time_s': None if wall is None else round(wall, 1),
      'wall_time_source': 'first to last logged training step (metrics.jsonl)',
      'hardware': first.get('hardware', ''), 'command': first['command'],
      'commit': first.get('commit', ''),
      'launches': [l['command'] for l in launches], 'date': first.get('date', '')[:10],
      'workdir': workdir, 'num_train_steps': num_train_steps, 'last_train_step': last_train,
      'complete': None if num_train_steps is None or last_train is None
                  else last_train >= num_train_steps,
      'transcribed': False, 'notes': notes or '',
  }


def _transcribed(name, metric, value, step, wall_time, command, date, notes, hardware,
                 workdir) -> dict:
  missing = [n for n, v in (('step', step), ('wall_time', wall_time), ('date', date),
                            ('command', command), ('notes', notes)) if v is None]
  if workdir or missing:
    raise ReportError('a transcribed record (--value) takes no --workdir and needs '
                      '--step, --wall_time, --date, --command and --notes (where the '
                      f'numbers were logged); missing: {missing or "none"}')
  try:
    day = datetime.date.fromisoformat(date)
  except ValueError as e:
    raise ReportError(f'--date={date!r} must be YYYY-MM-DD') from e
  if day.isoformat() >= TRANSCRIBED_BEFORE:
    raise ReportError(f'--date={date}: runs since {TRANSCRIBED_BEFORE} are recorded from their '
                      'workdir (train.py writes command.txt), not transcribed')
  if wall_time < 0:
    raise ReportError(f'--wall_time={wall_time} must be >= 0 seconds')
  return {'config': name, 'metric': metric, 'value': float(value), 'step': int(step),
          'metrics_at_step': {}, 'wall_time_s': float(wall_time), 'wall_time_source': 'given',
          'hardware': hardware or default_hardware(), 'command': command, 'date': date,
          'workdir': '', 'transcribed': True, 'notes': f'transcribed: {notes}'}


def _copy_artifacts(workdir: str, dest: str, out: dict) -> None:
  os.makedirs(dest, exist_ok=True)
  for f in ARTIFACTS:
    if os.path.isfile(os.path.join(workdir, f)):
      shutil.copyfile(os.path.join(workdir, f), os.path.join(dest, f))
  translations = out['metrics_at_step'].get('translations_file')
  if translations:
    base = os.path.basename(translations)   # eval.py writes it into the workdir
    src = os.path.join(workdir, base)
    shutil.copyfile(src, os.path.join(dest, base))
    out['metrics_at_step']['translations_file'] = base
  out['artifacts'] = os.path.relpath(dest, REPO) if dest.startswith(REPO) else dest


BLEU_METRICS = {'bleu': ('corpus_bleu', {}), 'tokenized_bleu': ('tokenized_bleu', {}),
                'tokenized_bleu_lc': ('tokenized_bleu', {'lowercase': True})}


def verify(results_dir: str = RESULTS_DIR, readme: str = os.path.join(REPO, 'README.md'),
           results_md: str = DEFAULT_OUT, configs_dir: str = CONFIGS_DIR) -> list[str]:
  """Recomputes every recorded number from its artifacts; returns what disagrees (empty: all agree).

  For each results/NAME.json with artifacts in results/NAME/: the metric from
  the copied metrics.jsonl; BLEU rescored with sacreBLEU from the translations
  file against the split's references (the data directory must hold them);
  the number as README.md's row for NAME shows it. Records from before
  artifacts existed are only checked against docs/RESULTS.md. And
  docs/RESULTS.md must be what `build` makes of the records.
  """
  from transformer import bleu as bleu_lib
  from transformer.data import translation as tr_data
  problems = []
  with open(readme) as f:
    readme_rows = {line.split('|')[1].strip().strip('`'): line for line in f
                   if line.startswith('| `')}
  for path in sorted(glob.glob(os.path.join(results_dir, '*.json'))):
    rec = read_record(os.path.splitext(os.path.basename(path))[0], results_dir)
    name, metric = rec['config'], rec['metric']
    art = os.path.join(results_dir, name)
    if 'artifacts' not in rec:
      continue
    try:
      value, _, at_step = last_value(read_metrics(art), metric)
    except ReportError as e:
      problems.append(f'{name}: {e}')
      continue
    if not math.isclose(value, rec['value'], rel_tol=1e-9):
      problems.append(f'{name}: {metric} is {value} in {art}/metrics.jsonl, {rec["value"]} in '
                      f'{path}')
    split, short = metric.split('/')
    if short in BLEU_METRICS:
      with open(os.path.join(art, 'config.json')) as f:
        cfg = json.load(f)
      hyps_file = os.path.join(art, os.path.basename(at_step.get('translations_file', '')))
      with open(hyps_file, encoding='utf-8') as f:
        hyps = [line.rstrip('\n') for line in f]
      _, refs = tr_data.split_texts(cfg['dataset'], split, cfg.get('source_lang', 'en'),
                                    cfg.get('target_lang', 'de'))
      fn, kw = BLEU_METRICS[short]
      score = getattr(bleu_lib, fn)(hyps, refs[:len(hyps)], **kw).score
      if abs(score - rec['value']) > 0.005:
        problems.append(f'{name}: {metric} rescored from {hyps_file} is {score:.2f}, the '
                        f'record says {rec["value"]:.2f}')
    shown = format_number(metric, rec['value'])
    row = readme_rows.get(name)
    if row is not None and shown not in row:
      problems.append(f'{name}: README.md\'s row does not show {shown} ({metric})')
  if os.path.isfile(results_md):
    with open(results_md) as f:
      if f.read() != build(configs_dir, results_dir):
        problems.append(f'{results_md} is not what the records build: run '
                        f'`{BUILD_COMMAND}`')
  return problems


def read_record(name: str, results_dir: str = RESULTS_DIR) -> dict | None:
  path = os.path.join(results_dir, f'{name}.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


# ----------------------------------------------------------------------------- build

def format_number(metric: str, value: float | None) -> str:
  """Accuracies (fractions) as percentages; everything else to 5 significant digits."""
  if value is None:
    return ''
  if metric.endswith('accuracy'):
    return f'{100 * value:.2f}%'
  return f'{value:.5g}'


def format_duration(seconds: float | None) -> str:
  if seconds is None:
    return 'unknown'
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h} h {m:02d} min' if h else f'{m} min {s:02d} s'


def target_met(ref: dict, rec: dict) -> str:
  """'yes' / 'no: why' / 'no target stated'."""
  target = ref.get('target')
  if target is None:
    return 'no target stated'
  value, metric, higher = rec['value'], ref['metric'], bool(ref['higher_is_better'])
  if rec['metric'] != metric:
    return f'not comparable: recorded {rec["metric"]}, target is on {metric}'
  ok = value >= target if higher else value <= target
  if not ok:
    op = '<' if higher else '>'
    return (f'no: {format_number(metric, value)} {op} '
            f'{format_number(metric, target)}')
  budget = ref.get('time_budget_min')
  if budget is not None:
    wall = rec.get('wall_time_s')
    if wall is None:
      return 'value yes; time unknown'
    if wall > budget * 60:
      return f'value yes; time no: {format_duration(wall)} > {budget} min'
  return 'yes'


def _target_text(ref: dict) -> str:
  if ref.get('target') is None:
    return 'none stated'
  text = ('>= ' if ref['higher_is_better'] else '<= ') + format_number(ref['metric'],
                                                                        ref['target'])
  if ref.get('time_budget_min') is not None:
    text += f' within {ref["time_budget_min"]} min'
  return text


def _cell(text: Any) -> str:
  return str(text).replace('|', '\\|').replace('\n', ' ')


def config_row(path: str, results_dir: str = RESULTS_DIR) -> list[str]:
  """One table row: config, metric, reference, ours, target, met, hardware, wall, date, command."""
  name = config_name(path)
  try:
    ref = reference_of(load_config_module(path), os.path.relpath(path, REPO))
  except ReportError as e:
    return [f'`{name}`', '', '', f'no REFERENCE: {e}', '', '', '', '', '', '']
  direction = '↑' if ref['higher_is_better'] else '↓'
  reference = (f'{format_number(ref["metric"], ref["reference"])} ({ref["source"]})'
               if ref['reference'] is not None else f'none ({ref["source"]})')
  rec = read_record(name, results_dir)
  row = [f'`{name}`', f'`{ref["metric"]}` {direction}', reference]
  if rec is not None:
    ours = format_number(rec['metric'], rec['value']) + f' at step {rec["step"]}'
    if rec['metric'] != ref['metric']:
      ours += f' (`{rec["metric"]}`)'
    if rec.get('notes'):
      ours += f'; {rec["notes"]}'
    if 'artifacts' in rec:
      ours += f'; artifacts: {rec["artifacts"]}'
    else:   # written before runs recorded themselves (2026-12-02): no files to recompute from
      ours += '; older record (transcribed, no artifacts)'
    wall = format_duration(rec.get('wall_time_s'))
    if 'artifacts' in rec:
      wall += ' (first to last logged training step)'
    elif rec.get('wall_time_source') != 'given' and rec.get('wall_time_s') is not None:
      wall += ' (estimated from metrics.jsonl, compilation not included)'
    command = f'`{rec["command"]}`' + ('' if rec.get('command_given', True) else ' (assumed)')
    row += [ours, _target_text(ref), target_met(ref, rec), rec.get('hardware') or '',
            wall, rec.get('date') or '', command]
  elif not ref['runnable_here']:
    row += [f'not run here: {ref["why"]}', _target_text(ref), '—', '—', '—', '—', '—']
  else:
    row += ['not run yet', _target_text(ref), '—', '—', '—', '—', '—']
  return [_cell(c) for c in row]


HEADER = ['config', 'metric', 'reference (source)', 'ours', 'target', 'target met',
          'hardware', 'wall time', 'date', 'command']


def build(configs_dir: str = CONFIGS_DIR, results_dir: str = RESULTS_DIR,
          out: str | None = None) -> str:
  """The Markdown of docs/RESULTS.md; written to `out` when given."""
  lines = [f'<!-- Generated by `{BUILD_COMMAND}`: do not edit by hand. -->',
           '',
           '# Results',
           '',
           f'Generated by `{BUILD_COMMAND}` from the `REFERENCE` dict at the end of each '
           'config in configs/ and the run records in results/ (written by '
           '`python -m tools.report record --config=configs/NAME.py --workdir=DIR`). '
           '↑: higher is better, ↓: lower is better. Accuracies in percent. "not run here" '
           'means the run is not possible on this project\'s machine (2 CPU cores, no '
           'accelerator, no internet), with the reason.',
           '',
           '| ' + ' | '.join(HEADER) + ' |',
           '|' + '---|' * len(HEADER)]
  for path in config_files(configs_dir):
    lines.append('| ' + ' | '.join(config_row(path, results_dir)) + ' |')
  sweeps = sorted(f for f in os.listdir(results_dir)
                  if f.startswith('sweep_') and f.endswith('.md')) \
      if os.path.isdir(results_dir) else []
  if sweeps:
    lines += ['', '## Sweeps', '']
    for f in sweeps:
      with open(os.path.join(results_dir, f)) as fh:
        lines += [fh.read().rstrip('\n'), '']
  md = '\n'.join(lines).rstrip('\n') + '\n'
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
      f.write(md)
  return md


# ----------------------------------------------------------------------------- sweeps

def sweep_summary(parent: str, name: str, metric: str | None = None, descending: bool = False,
                  results_dir: str = RESULTS_DIR, hardware: str | None = None,
                  columns: Sequence[str] = (), group_over: str = '') -> str:
  """Copies a sweep's summary (tools.sweep.summarize) to results/sweep_NAME.md."""
  from tools import sweep as sweep_lib
  metric, descending = sweep_lib.ranking(parent, metric, descending)
  table = sweep_lib.summarize(parent, metric, descending, columns, group_over)
  with open(os.path.join(parent, sweep_lib.SWEEP_FILE)) as f:
    spec = json.load(f)
  trials = [sweep_lib.read_trial(t['workdir']) for t in spec['trials']]
  done = [t for t in trials if t.get('status') == 'done']
  spent = sum(t['finished'] - t['started'] for t in trials
              if _is_number(t.get('finished')) and _is_number(t.get('started')))
  last = max((t['finished'] for t in trials if _is_number(t.get('finished'))), default=None)
  first = min((t['started'] for t in trials if _is_number(t.get('started'))), default=None)
  sweep_file = os.path.relpath(os.path.abspath(spec['sweep']), REPO) \
      if os.path.isabs(spec['sweep']) else spec['sweep']
  command = shlex.join(['python', '-m', 'tools.sweep', 'run', f'--sweep={sweep_file}',
                        f'--parent={parent}']
                       + [f'--{k}={v}' for k, v in spec.get('launch', {}).items()
                          if not isinstance(v, dict)]
                       + list(spec.get('extra', [])))
  order = (f'sorted by `{metric}`, ' + ('highest' if descending else 'lowest') + ' first'
           if metric else 'in sweep order')
  lines = [f'### Sweep `{name}`', '',
           f'- sweep: `{sweep_file}` over `{os.path.relpath(spec["base"], REPO)}`',
           f'- command: `{command}`',
           f'- trials: {len(done)} of {len(trials)} done; {order}',
           f'- wall time of all trials: {format_duration(spent) if spent else "unknown"}'
           + (f' summed; {format_duration(last - first)} from the first start to the last '
              'finish' if last and first and last - first < spent - 1 else ''),
           f'- hardware: {hardware or default_hardware()}',
           '- date: ' + (datetime.datetime.fromtimestamp(last, datetime.timezone.utc)
                         .strftime('%Y-%m-%d') if last else 'unknown'),
           '', table.rstrip('\n')]
  md = '\n'.join(lines) + '\n'
  os.makedirs(results_dir, exist_ok=True)
  plots = os.path.join(parent, 'plots')
  if os.path.isdir(plots) and 'Plots: ' in md:   # copied beside the record, links rewritten
    kept = os.path.join(results_dir, f'sweep_{name}')
    os.makedirs(kept, exist_ok=True)
    names = sorted(f for f in os.listdir(plots) if f.endswith('.png'))
    for f in names:
      shutil.copyfile(os.path.join(plots, f), os.path.join(kept, f))
    md = md[:md.index('Plots: ')] + 'Plots: ' + ', '.join(
        f'[{f}](sweep_{name}/{f})' for f in names) + '\n'
  with open(os.path.join(results_dir, f'sweep_{name}.md'), 'w') as f:
    f.write(md)
  return md


# ----------------------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='python -m tools.report', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest='cmd', required=True)
  r = sub.add_parser('record', help='write results/NAME.json from a run\'s metrics.jsonl')
  r.add_argument('--config', required=True, help='configs/NAME.py')
  r.add_argument('--workdir', default='', help='the run\'s directory (has metrics.jsonl)')
  r.add_argument('--metric', help='SPLIT/NAME (default: the config\'s REFERENCE metric)')
  r.add_argument('--notes', help='anything the row should say')
  r.add_argument('--force', action='store_true',
                 help='replace the committed record even with a shorter or worse run')
  t = r.add_argument_group('transcribing a run from before 2026-12-02 whose workdir was not '
                           'kept (never for newer runs)')
  t.add_argument('--value', type=float, help='the metric')
  t.add_argument('--step', type=int, help='the step it was measured at')
  t.add_argument('--wall_time', type=float, help='seconds')
  t.add_argument('--command', help='the command that produced the run')
  t.add_argument('--hardware', help='default: a description of this machine')
  t.add_argument('--date', help='YYYY-MM-DD')
  r.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
  v = sub.add_parser('verify', help='recompute every recorded number from results/NAME/')
  v.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
  b = sub.add_parser('build', help='write docs/RESULTS.md')
  b.add_argument('--out', default=DEFAULT_OUT)
  b.add_argument('--configs_dir', default=CONFIGS_DIR, help=argparse.SUPPRESS)
  b.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
  s = sub.add_parser('sweep', help='copy a sweep summary to results/sweep_NAME.md')
  s.add_argument('--parent', required=True, help='the sweep\'s parent directory')
  s.add_argument('--name', required=True, help='e.g. table3 -> results/sweep_table3.md')
  s.add_argument('--metric', help='SPLIT/NAME to sort by')
  s.add_argument('--descending', action='store_true', help='higher is better')
  s.add_argument('--columns', default='', help='more SPLIT/NAME columns, comma-separated')
  s.add_argument('--group_over', default='', help='e.g. seed: mean and spread of the trials '
                 'that differ only in this field')
  s.add_argument('--hardware', help='default: a description of this machine')
  s.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
  return p


def main(argv: Sequence[str]) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.cmd == 'record':
      out = record(args.config, args.workdir, args.metric, args.notes, args.results_dir,
                   args.force, args.value, args.step, args.wall_time, args.command, args.date,
                   args.hardware)
      print(json.dumps(out, indent=2, sort_keys=True))
      print(f'wrote {os.path.join(args.results_dir, out["config"] + ".json")}')
    elif args.cmd == 'verify':
      problems = verify(args.results_dir)
      for p in problems:
        print(f'MISMATCH {p}', file=sys.stderr)
      if problems:
        return 1
      print('every recorded number agrees with its artifacts, README.md and docs/RESULTS.md')
    elif args.cmd == 'build':
      build(args.configs_dir, args.results_dir, args.out)
      print(f'wrote {args.out}')
    else:
      import re
      if not re.fullmatch(r'[A-Za-z0-9_.-]+', args.name):
        raise ReportError(f'--name={args.name!r}: use letters, digits, _ . -')
      columns = [c for c in args.columns.split(',') if c]
      print(sweep_summary(args.parent, args.name, args.metric, args.descending,
                          args.results_dir, args.hardware, columns, args.group_over))
  except (ValueError, FileNotFoundError) as e:   # ReportError is a ValueError
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
