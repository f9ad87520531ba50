"""Results bookkeeping: one JSON record per measured run, and docs/RESULTS.md built from them.

Every experiment config in configs/ ends with a `REFERENCE` dict: the metric as
written in metrics.jsonl (`SPLIT/NAME`), whether higher is better, the
reference number and where it comes from, the project's target (and time
budget) if it states one, and whether the run is possible on this machine
(`runnable_here`, with `why` when not).

  python -m tools.report record --config=configs/NAME.py --workdir=DIR \\
      [--metric=SPLIT/NAME] [--wall_time=SECONDS] [--command="..."] [--hardware="..."] \\
      [--date=YYYY-MM-DD] [--notes="..."]
  python -m tools.report build [--out=docs/RESULTS.md]
  python -m tools.report sweep --parent=DIR --name=NAME [--metric=SPLIT/NAME] [--descending]
      [--columns=SPLIT/NAME,...]

`record` reads DIR/metrics.jsonl, takes the metric's value at the last step it
was recorded (default: the config's REFERENCE metric) and writes
results/NAME.json: value, step, wall time (given, or estimated from the
records' `time` fields), hardware (given, or a description of this machine),
command, date (given, or the day of the metric's record, UTC) and notes.

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
import importlib.util
import json
import os
import platform
import shlex
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
ESTIMATED_NOTE = ('estimated from metrics.jsonl: first record to the metric\'s record; '
                  'setup and compilation before the first record are not included, any '
                  'pause between train.py and eval.py is')


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


def estimate_wall_time(records: Sequence[dict], until: dict) -> float | None:
  """Seconds from the first record to `until` (by their `time` fields)."""
  times = [r['time'] for r in records if _is_number(r.get('time'))]
  if not times or not _is_number(until.get('time')):
    return None
  return max(0.0, float(until['time']) - min(times))


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

def record(config_path: str, workdir: str, metric: str | None = None,
           wall_time: float | None = None, command: str | None = None,
           hardware: str | None = None, date: str | None = None, notes: str | None = None,
           results_dir: str = RESULTS_DIR, value: float | None = None,
           step: int | None = None) -> dict:
  """Writes results/NAME.json for the run in `workdir`; returns the record.

  For a run whose workdir was not kept, `value` and `step` may be given
  instead of a workdir, with wall_time, date, command and notes (saying where
  the numbers were logged): the record is then marked as transcribed.
  """
  module = load_config_module(config_path)
  ref = reference_of(module, config_path)
  metric = metric or ref['metric']
  transcribed = value is not None
  if transcribed:
    missing = [n for n, v in (('step', step), ('wall_time', wall_time), ('date', date),
                              ('command', command), ('notes', notes)) if v is None]
    if workdir or missing:
      raise ReportError('a transcribed record (--value) takes no --workdir and needs '
                        '--step, --wall_time, --date, --command and --notes (where the '
                        f'numbers were logged); missing: {missing or "none"}')
    value, step, rec = float(value), int(step), {}
  else:
    records = read_metrics(workdir)
    if not records:
      raise ReportError(f'{os.path.join(workdir, "metrics.jsonl")} is missing or empty: '
                        'is --workdir the directory train.py wrote?')
    value, step, rec = last_value(records, metric)
  if wall_time is None:
    wall, wall_source = estimate_wall_time(records, rec), ESTIMATED_NOTE
  else:
    if wall_time < 0:
      raise ReportError(f'--wall_time={wall_time} must be >= 0 seconds')
    wall, wall_source = float(wall_time), 'given'
  if date is None:
    date = (datetime.datetime.fromtimestamp(rec['time'], datetime.timezone.utc)
            .strftime('%Y-%m-%d') if _is_number(rec.get('time')) else None)
  else:
    try:
      datetime.date.fromisoformat(date)
    except ValueError as e:
      raise ReportError(f'--date={date!r} must be YYYY-MM-DD') from e
  name = config_name(config_path)
  rel_config = os.path.relpath(os.path.abspath(config_path), REPO)
  if command is None:
    command = f'python train.py --config={rel_config} --workdir={workdir}'
    command_given = False
  else:
    command_given = True
  out = {
      'config': name,
      'metric': metric,
      'value': value,
      'step': step,
      'metrics_at_step': {k: v for k, v in rec.items()
                          if k not in ('step', 'split', 'time')
                          and (_is_number(v) or isinstance(v, str))},
      'wall_time_s': None if wall is None else round(wall, 1),
      'wall_time_source': wall_source,
      'hardware': hardware or default_hardware(),
      'command': command,
      'command_given': command_given,
      'date': date,
      'workdir': workdir,
      'notes': (f'transcribed: {notes}' if transcribed else notes) or '',
  }
  os.makedirs(results_dir, exist_ok=True)
  path = os.path.join(results_dir, f'{name}.json')
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)
  return out


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
    wall = format_duration(rec.get('wall_time_s'))
    if rec.get('wall_time_source') != 'given' and rec.get('wall_time_s') is not None:
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
                  columns: Sequence[str] = ()) -> str:
  """Copies a sweep's summary (tools.sweep.summarize) to results/sweep_NAME.md."""
  from tools import sweep as sweep_lib
  table = sweep_lib.summarize(parent, metric, descending, columns)
  with open(os.path.join(parent, sweep_lib.SWEEP_FILE)) as f:
    spec = json.load(f)
  trials = [sweep_lib.read_trial(t['workdir']) for t in spec['trials']]
  done = [t for t in trials if t.get('status') == 'done']
  spent = sum(t['finished'] - t['started'] for t in trials
              if _is_number(t.get('finished')) and _is_number(t.get('started')))
  last = max((t['finished'] for t in trials if _is_number(t.get('finished'))), default=None)
  sweep_file = os.path.relpath(os.path.abspath(spec['sweep']), REPO) \
      if os.path.isabs(spec['sweep']) else spec['sweep']
  command = shlex.join(['python', '-m', 'tools.sweep', 'run', f'--sweep={sweep_file}',
                        f'--parent={parent}'] + list(spec.get('extra', [])))
  order = (f'sorted by `{metric}`, ' + ('highest' if descending else 'lowest') + ' first'
           if metric else 'in sweep order')
  lines = [f'### Sweep `{name}`', '',
           f'- sweep: `{sweep_file}` over `{os.path.relpath(spec["base"], REPO)}`',
           f'- command: `{command}`',
           f'- trials: {len(done)} of {len(trials)} done; {order}',
           f'- wall time of all trials: {format_duration(spent) if spent else "unknown"}',
           f'- hardware: {hardware or default_hardware()}',
           '- date: ' + (datetime.datetime.fromtimestamp(last, datetime.timezone.utc)
                         .strftime('%Y-%m-%d') if last else 'unknown'),
           '', table.rstrip('\n')]
  md = '\n'.join(lines) + '\n'
  os.makedirs(results_dir, exist_ok=True)
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
  r.add_argument('--value', type=float, help='the metric, for a run whose workdir was not kept')
  r.add_argument('--step', type=int, help='with --value: the step it was measured at')
  r.add_argument('--metric', help='SPLIT/NAME (default: the config\'s REFERENCE metric)')
  r.add_argument('--wall_time', type=float, help='seconds (default: estimated)')
  r.add_argument('--command', help='the command that produced the run')
  r.add_argument('--hardware', help='default: a description of this machine')
  r.add_argument('--date', help='YYYY-MM-DD (default: the day of the metric\'s record, UTC)')
  r.add_argument('--notes', help='anything the row should say')
  r.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
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
  s.add_argument('--hardware', help='default: a description of this machine')
  s.add_argument('--results_dir', default=RESULTS_DIR, help=argparse.SUPPRESS)
  return p


def main(argv: Sequence[str]) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.cmd == 'record':
      out = record(args.config, args.workdir, args.metric, args.wall_time, args.command,
                   args.hardware, args.date, args.notes, args.results_dir, args.value,
                   args.step)
      print(json.dumps(out, indent=2, sort_keys=True))
      print(f'wrote {os.path.join(args.results_dir, out["config"] + ".json")}')
    elif args.cmd == 'build':
      build(args.configs_dir, args.results_dir, args.out)
      print(f'wrote {args.out}')
    else:
      import re
      if not re.fullmatch(r'[A-Za-z0-9_.-]+', args.name):
        raise ReportError(f'--name={args.name!r}: use letters, digits, _ . -')
      columns = [c for c in args.columns.split(',') if c]
      print(sweep_summary(args.parent, args.name, args.metric, args.descending,
                          args.results_dir, args.hardware, columns))
  except (ValueError, FileNotFoundError) as e:   # ReportError is a ValueError
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
