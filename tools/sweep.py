"""Sweeps: many trials of one experiment config, each in its own workdir.

A sweep file is an ordinary experiment config (its `get_config()` is the base
of every trial) with a `get_sweep()` that returns the trials as a list of
override dicts, keyed by dotted config fields:

  from transformer import sweep_space as sweep

  def get_sweep():
    return sweep.product(sweep.axis('learning_rate', [3e-4, 1e-3]),
                         sweep.axis('model.dropout_rate', [0.0, 0.2]))   # 4 trials

`axis`, `product`, `zipped` and `chain` (transformer/sweep_space.py, the
library's, so that sweep files never import a tool) build such lists; any list
of dicts will do. A sweep file may also name an experiment config to sweep instead of
defining its own: `BASE = 'configs/lm_shakespeare_char.py'`.

  python -m tools.sweep run --sweep=configs/sweeps/shakespeare_lr.py --parent=runs/lr
  python -m tools.sweep commands --sweep=... --parent=...   # for a cluster scheduler
  python -m tools.sweep summary --parent=runs/lr --metric=validation/loss

`run` trains the trials one after another with train.py (a subprocess each,
output in TRIAL/train.log) and records each outcome in TRIAL/trial.json.
Run again after an interruption, it skips finished trials and reruns the
others, which resume from their latest checkpoints (train.py does that).
Extra `--config.FIELD=VALUE` flags apply to every trial.

`summary` collects every trial's overrides and last metrics per split from
its metrics.jsonl into PARENT/summary.md and PARENT/summary.csv, sorted by
`--metric` (`SPLIT/NAME`, ascending unless --descending); trials that failed,
were interrupted or never started are listed after the others, marked so.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from typing import Any, Sequence

from transformer.metric_writer import read_metrics
from transformer.sweep_space import Trial

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_FILE = 'sweep.json'      # in the parent: the sweep file, base config and trial list
TRIAL_FILE = 'trial.json'      # in each trial: overrides, status, return code, times


# ----------------------------------------------------------------------------- loading

def load_sweep(path: str) -> tuple[str, list[Trial]]:
  """(the experiment config file the trials run, the trials) of a sweep file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Sweep file {path} does not exist')
  spec = importlib.util.spec_from_file_location('_sweep_file', path)
  module = importlib.util.module_from_spec(spec)
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_sweep'):
    raise ValueError(f'{path} has no get_sweep(): a sweep file defines get_sweep() returning a '
                     'list of {"dotted.field": value} dicts (see tools/sweep.py)')
  trials = [dict(t) for t in module.get_sweep()]
  if not trials or not all(isinstance(t, dict) for t in trials):
    raise ValueError(f'{path}: get_sweep() must return a non-empty list of dicts')
  base = getattr(module, 'BASE', None)
  if base is None and not hasattr(module, 'get_config'):
    raise ValueError(f'{path} has neither get_config() nor BASE naming a config to sweep')
  base = os.path.abspath(path) if base is None else (
      base if os.path.isabs(base) else os.path.join(REPO, base))
  return base, trials


def format_value(value: Any) -> str:
  """A value as ml_collections' config flags parse it back."""
  if isinstance(value, str):
    return value
  if isinstance(value, float):
    return repr(value)
  return str(value)


def trial_name(index: int, overrides: Trial) -> str:
  """'003_learning_rate=0.001_model.dropout_rate=0.1' (filesystem-safe, at most ~120 chars)."""
  parts = [f'{k}={format_value(v)}' for k, v in overrides.items()]
  name = re.sub(r'[^A-Za-z0-9._=+-]+', '-', '_'.join(parts))[:110].strip('-_')
  return f'{index:03d}_{name}' if name else f'{index:03d}'


def trial_command(base: str, workdir: str, overrides: Trial, extra: Sequence[str] = ()) -> list[str]:
  return ([sys.executable, os.path.join(REPO, 'train.py'), f'--config={base}',
           f'--workdir={workdir}'] + list(extra)
          + [f'--config.{k}={format_value(v)}' for k, v in overrides.items()])


def plan(sweep_path: str, parent: str, extra: Sequence[str] = ()) -> list[dict]:
  """The trials of a sweep with their workdirs and commands; writes PARENT/sweep.json."""
  base, trials = load_sweep(sweep_path)
  bad = [f for f in extra if not f.startswith('--config.')]
  if bad:
    raise ValueError(f'Extra flags must be --config.FIELD=VALUE overrides, got {bad}')
  parent = os.path.abspath(parent)
  os.makedirs(parent, exist_ok=True)
  out = []
  for i, t in enumerate(trials):
    workdir = os.path.join(parent, trial_name(i, t))
    out.append({'name': os.path.basename(workdir), 'workdir': workdir, 'overrides': t,
                'command': trial_command(base, workdir, t, extra)})
  with open(os.path.join(parent, SWEEP_FILE), 'w') as f:
    json.dump({'sweep': sweep_path, 'base': base, 'extra': list(extra),
               'trials': [{k: v for k, v in p.items() if k != 'command'} for p in out]},
              f, indent=2, default=str)
  return out


def read_trial(workdir: str) -> dict:
  path = os.path.join(workdir, TRIAL_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _write_trial(workdir: str, record: dict) -> None:
  tmp = os.path.join(workdir, TRIAL_FILE + '.tmp')
  with open(tmp, 'w') as f:
    json.dump(record, f, indent=2, default=str)
  os.replace(tmp, os.path.join(workdir, TRIAL_FILE))


# ----------------------------------------------------------------------------- running

def run(sweep_path: str, parent: str, extra: Sequence[str] = (), log=print) -> list[dict]:
  """Runs every unfinished trial in order; returns their trial.json records."""
  trials = plan(sweep_path, parent, extra)
  records = []
  for n, t in enumerate(trials, 1):
    os.makedirs(t['workdir'], exist_ok=True)
    previous = read_trial(t['workdir'])
    if previous.get('status') == 'done':
      log(f'[{n}/{len(trials)}] {t["name"]}: done before, skipped')
      records.append(previous)
      continue
    log(f'[{n}/{len(trials)}] {t["name"]}: ' + ('resuming' if previous else 'starting'))
    record = {'name': t['name'], 'overrides': t['overrides'], 'command': shlex.join(t['command']),
              'status': 'running', 'started': time.time()}
    _write_trial(t['workdir'], record)
    with open(os.path.join(t['workdir'], 'train.log'), 'a') as logf:
      rc = subprocess.call(t['command'], stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)
    record.update(status='done' if rc == 0 else 'failed', returncode=rc, finished=time.time())
    _write_trial(t['workdir'], record)
    log(f'[{n}/{len(trials)}] {t["name"]}: {record["status"]}'
        + (f' (exit {rc}; see {t["workdir"]}/train.log)' if rc else
           f' in {record["finished"] - record["started"]:.0f} s'))
    records.append(record)
  return records


# ----------------------------------------------------------------------------- summary

def collect(parent: str) -> list[dict]:
  """One row per trial in PARENT/sweep.json: name, status, overrides, step, last metrics."""
  path = os.path.join(parent, SWEEP_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} does not exist: is {parent} a sweep parent directory '
                            '(made by `python -m tools.sweep run`)?')
  with open(path) as f:
    trials = json.load(f)['trials']
  rows = []
  for t in trials:
    record = read_trial(t['workdir'])
    status = record.get('status', 'not started')
    if status == 'running':
      status = 'unfinished'            # the sweep was interrupted during this trial
    row = {'trial': t['name'], 'status': status, 'overrides': t['overrides'], 'metrics': {}}
    try:
      metrics = read_metrics(t['workdir']) if os.path.isdir(t['workdir']) else []
    except (OSError, ValueError):
      metrics = []
    for m in metrics:
      split = m.get('split', '?')
      row['metrics'].update({f'{split}/{k}': v for k, v in m.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)
                             and k not in ('step', 'time')})
      row['step'] = max(row.get('step', 0), int(m.get('step', 0)))
    rows.append(row)
  return rows


def sort_rows(rows: list[dict], metric: str | None, descending: bool = False) -> list[dict]:
  """Finished trials with the metric first (best first), then the rest in sweep order."""
  def key(r):
    v = r['metrics'].get(metric) if metric else None
    ok = r['status'] == 'done' and isinstance(v, (int, float)) and math.isfinite(v)
    return (0, -v if descending else v) if ok else (1, 0)
  return sorted(rows, key=key)


def table(rows: list[dict], metric: str | None = None, columns: Sequence[str] = ()) -> list[list[str]]:
  """Header + rows: trial, status, step, every override field, the metric, other columns."""
  fields = list(dict.fromkeys(k for r in rows for k in r['overrides']))
  shown = list(dict.fromkeys(([metric] if metric else []) + list(columns)))
  if not shown:    # default: every final metric of the non-train splits, then the train loss
    names = dict.fromkeys(k for r in rows for k in r['metrics'])
    shown = [k for k in names if not k.startswith('train/')] + [k for k in names
                                                                 if k == 'train/loss']
  header = ['trial', 'status', 'step'] + fields + shown
  body = []
  for r in rows:
    cells = [r['trial'], r['status'], str(r.get('step', ''))]
    cells += [format_value(r['overrides'][f]) if f in r['overrides'] else '' for f in fields]
    for c in shown:
      v = r['metrics'].get(c)
      cells.append('' if v is None else f'{v:.4g}' if isinstance(v, float) else str(v))
    body.append(cells)
  return [header] + body


def group_table(rows: list[dict], metric: str | None, columns: Sequence[str] = (),
                over: str = 'seed') -> list[list[str]]:
  """Header + one row per group of finished trials that differ only in `over` (their seeds):
  the other override fields, the count, and the mean, sample standard deviation, minimum and
  maximum of the metric and each column."""
  shown = list(dict.fromkeys(([metric] if metric else []) + list(columns)))
  done = [r for r in rows if r['status'] == 'done']
  fields = list(dict.fromkeys(k for r in done for k in r['overrides'] if k != over))
  groups: dict[tuple, list[dict]] = {}
  for r in done:
    key = tuple(format_value(r['overrides'][f]) if f in r['overrides'] else '' for f in fields)
    groups.setdefault(key, []).append(r)
  header = fields + ['n'] + [f'{c} {stat}' for c in shown for stat in ('mean', 'std', 'min', 'max')]
  body = []
  for key, members in groups.items():
    cells = list(key) + [str(len(members))]
    for c in shown:
      values = [r['metrics'][c] for r in members if isinstance(r['metrics'].get(c), (int, float))]
      if not values:
        cells += [''] * 4
        continue
      std = f'{statistics.stdev(values):.2g}' if len(values) > 1 else ''   # sample std
      cells += [f'{statistics.fmean(values):.4g}', std, f'{min(values):.4g}',
                f'{max(values):.4g}']
    body.append(cells)
  return [header] + body


def to_markdown(tab: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(tab[0]) + ' |', '|' + '---|' * len(tab[0])]
  lines += ['| ' + ' | '.join(c.replace('|', '\\|') for c in row) + ' |' for row in tab[1:]]
  return '\n'.join(lines) + '\n'


def to_csv(tab: list[list[str]]) -> str:
  buf = io.StringIO()
  csv.writer(buf, lineterminator='\n').writerows(tab)
  return buf.getvalue()


def summarize(parent: str, metric: str | None = None, descending: bool = False,
              columns: Sequence[str] = (), group_over: str = '') -> str:
  """Writes PARENT/summary.md and PARENT/summary.csv; returns the Markdown. `group_over`
  (e.g. 'seed') adds the statistics of the trials that differ only in that field."""
  rows = collect(parent)
  if metric and not any(metric in r['metrics'] for r in rows):
    known = sorted({k for r in rows for k in r['metrics']})
    raise ValueError(f'No trial has metric {metric!r}; metrics found: {known or "none yet"}')
  tab = table(sort_rows(rows, metric, descending), metric, columns)
  md = to_markdown(tab)
  if group_over:
    md += (f'\nOver `{group_over}` (finished trials that differ only in it; std: sample '
           'standard deviation):\n\n' + to_markdown(group_table(rows, metric, columns,
                                                                 group_over)))
  with open(os.path.join(parent, 'summary.md'), 'w') as f:
    f.write(md)
  with open(os.path.join(parent, 'summary.csv'), 'w') as f:
    f.write(to_csv(tab))
  return md


# ----------------------------------------------------------------------------- command line

USAGE = """usage:
  python -m tools.sweep run      --sweep=FILE --parent=DIR [--config.FIELD=VALUE ...]
  python -m tools.sweep commands --sweep=FILE --parent=DIR [--config.FIELD=VALUE ...]
  python -m tools.sweep summary  --parent=DIR [--metric=SPLIT/NAME] [--descending]
                                       [--columns=SPLIT/NAME,...] [--group_over=seed]"""


def main(argv: Sequence[str]) -> int:
  if not argv or argv[0] not in ('run', 'commands', 'summary'):
    print(USAGE, file=sys.stderr)
    return 2
  cmd, opts, extra = argv[0], {}, []
  for a in argv[1:]:
    if a.startswith('--config.'):
      extra.append(a)
    elif a == '--descending':
      opts['descending'] = True
    elif a.startswith('--') and '=' in a:
      k, v = a[2:].split('=', 1)
      opts[k] = v
    else:
      print(f'unknown argument {a!r}\n{USAGE}', file=sys.stderr)
      return 2
  need = ['parent'] + (['sweep'] if cmd != 'summary' else [])
  missing = [k for k in need if not opts.get(k)]
  if missing:
    print(f'missing --{", --".join(missing)}\n{USAGE}', file=sys.stderr)
    return 2
  if cmd == 'commands':
    for t in plan(opts['sweep'], opts['parent'], extra):
      print(shlex.join(t['command']))
    return 0
  if cmd == 'run':
    records = run(opts['sweep'], opts['parent'], extra)
    print(summarize(opts['parent'], opts.get('metric')))
    return 0 if all(r['status'] == 'done' for r in records) else 1
  columns = [c for c in opts.get('columns', '').split(',') if c]
  print(summarize(opts['parent'], opts.get('metric'), opts.get('descending', False), columns,
                  opts.get('group_over', '')))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
