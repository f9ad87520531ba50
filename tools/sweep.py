"""Sweeps: many trials of one experiment config, each in its own workdir, launched through
tools/launch.py (submitit: this machine, SLURM, or in-process) and searched with Optuna.

A sweep file is an ordinary experiment config (its `get_config()` is the base of every
trial), or names one (`BASE = 'configs/lm_shakespeare_char.py'`), and defines either
`get_sweep()`, the trials as a list of override dicts keyed by dotted config fields:

  from transformer import sweep_space as sweep

  def get_sweep():
    return sweep.product(sweep.axis('learning_rate', [3e-4, 1e-3]),
                         sweep.axis('model.dropout_rate', [0.0, 0.2]))   # 4 trials

or `get_search()`, a space that Optuna samples (random or TPE) with early stopping
(median or Hyperband pruning; tools/search.py):

  def get_search():
    return sweep.search({'learning_rate': sweep.loguniform(1e-4, 1e-2),
                         'model.dropout_rate': sweep.uniform(0.0, 0.3)},
                        metric='validation/loss', sampler='tpe', pruner='median',
                        max_trials=12)

It may also set `LAUNCH = {'engine': 'slurm', 'partition': 'gpu', 'gpus_per_node': 8, ...}`
(tools/launch.py's settings; flags override them).

  python -m tools.sweep run     --sweep=FILE --parent=DIR [--engine=local --parallel=2 ...]
  python -m tools.sweep status  --parent=DIR
  python -m tools.sweep cancel  --parent=DIR
  python -m tools.sweep summary --parent=DIR --metric=validation/loss
  python -m tools.sweep commands --sweep=FILE --parent=DIR    # command lines, for by hand

`run` first builds every trial's config exactly as train.py would (a search: every end of
every range) and refuses the sweep, naming the trial and the field, if one is invalid;
then it runs the trials, `--parallel` at a time, each train.py's console in
TRIAL/console.log and its state in TRIAL/trial.json (tools/launch.py). The sweep directory
is the state: run again after an interruption, it skips finished trials and resubmits the
others, which resume from their checkpoints. Extra `--config.FIELD=VALUE` flags apply to
every trial.

`summary` collects every trial's overrides and last metrics per split from its
metrics.jsonl into PARENT/summary.md and PARENT/summary.csv, sorted by `--metric`
(`SPLIT/NAME`, ascending unless --descending), with the best trial's command, and plots
(PARENT/plots/: the metric against each swept field, and every trial's curve of it, pruned
trials cut short). Each finished trial's hyperparameters and final metrics also go to
TensorBoard's HParams plugin: `tensorboard --logdir PARENT` compares them.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import json
import math
import os
import re
import shlex
import statistics
import sys
import time
from typing import Any, Sequence

from tools import cli, launch
from transformer.errors import ConfigError
from transformer.metric_writer import read_metrics
from transformer.sweep_space import Search, Trial

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP_FILE = 'sweep.json'      # in the parent: the sweep file, base config and trial list
TRIAL_FILE = launch.TRIAL_FILE  # in each trial: overrides, status, job, return code, times


# ----------------------------------------------------------------------------- loading

class SweepFile:
  """A loaded sweep file: the base config file, and its trials (a grid) or its search,
  and its launch settings."""

  def __init__(self, path: str):
    if not os.path.isfile(path):
      raise ConfigError(f'Sweep file {path} does not exist')
    spec = importlib.util.spec_from_file_location('_sweep_file', path)
    module = importlib.util.module_from_spec(spec)
    if REPO not in sys.path:
      sys.path.insert(0, REPO)
    try:
      spec.loader.exec_module(module)
    except Exception as e:   # the sweep file's own code
      raise ConfigError(f'{path} could not be loaded: {type(e).__name__}: {e}') from None
    self.path = path
    grid, search = hasattr(module, 'get_sweep'), hasattr(module, 'get_search')
    if grid == search:
      raise ConfigError(f'{path} must define exactly one of get_sweep() (a list of '
                        '{"dotted.field": value} dicts) and get_search() (a sweep_space.search)'
                        ', see tools/sweep.py')
    try:
      trials = list(module.get_sweep()) if grid else None
      self.search = module.get_search() if search else None
    except (ValueError, TypeError) as e:
      raise ConfigError(f'{path}: {e}') from None
    if grid and (not trials or not all(isinstance(t, dict) for t in trials)):
      raise ConfigError(f'{path}: get_sweep() must return a non-empty list of dicts')
    self.trials = [dict(t) for t in trials] if grid else None
    if search and not isinstance(self.search, Search):
      raise ConfigError(f'{path}: get_search() must return sweep_space.search(...)')
    self.launch = dict(getattr(module, 'LAUNCH', {}))
    base = getattr(module, 'BASE', None)
    if base is None and not hasattr(module, 'get_config'):
      raise ConfigError(f'{path} has neither get_config() nor BASE naming a config to sweep')
    self.base = os.path.abspath(path) if base is None else (
        base if os.path.isabs(base) else os.path.join(REPO, base))


def load_sweep(path: str) -> tuple[str, list[Trial]]:
  """(the experiment config file the trials run, the trials) of a grid sweep file."""
  f = SweepFile(path)
  if f.trials is None:
    raise ConfigError(f'{path} is a search (get_search()): its trials are drawn as it runs')
  return f.base, f.trials


def format_value(value: Any) -> str:
  """A value as ml_collections' config flags parse it back."""
  if isinstance(value, str):
    return value
  if isinstance(value, float):
    return repr(value)
  return str(value)


def trial_name(index: int, overrides: Trial) -> str:
  """'003_learning_rate=0.001_model.dropout_rate=0.1' (filesystem-safe, at most ~120 chars)."""
  parts = [f'{k}={format_value(v) if not isinstance(v, float) else f"{v:.4g}"}'
           for k, v in overrides.items()]
  name = re.sub(r'[^A-Za-z0-9._=+-]+', '-', '_'.join(parts))[:110].strip('-_')
  return f'{index:03d}_{name}' if name else f'{index:03d}'


def trial_command(base: str, workdir: str, overrides: Trial, extra: Sequence[str] = ()) -> list[str]:
  return ([sys.executable, os.path.join(REPO, 'train.py'), f'--config={base}',
           f'--workdir={workdir}'] + list(extra)
          + [f'--config.{k}={format_value(v)}' for k, v in overrides.items()])


def trial_config(base: str, overrides: Trial, extra: Sequence[str] = ()):
  """The config train.py builds from a trial's command line (the same flag parsing: an
  unknown field or a value of the wrong type fails as it would there), validated."""
  from absl import flags
  from ml_collections import config_flags
  from transformer import validation
  from transformer import workdir as workdir_lib
  argv = ['train.py'] + [a for a in trial_command(base, 'unused', overrides, extra)[2:]
                         if not a.startswith('--workdir=')]
  values = flags.FlagValues()
  if base.endswith('.json'):
    with open(base) as f:
      config = workdir_lib.config_from_json(f.read(), os.path.dirname(base))
    argv = [a for a in argv if not a.startswith('--config=')]
    config_flags.DEFINE_config_dict('config', config, '', flag_values=values)
  else:
    config_flags.DEFINE_config_file('config', None, '', flag_values=values, sys_argv=argv,
                                    lock_config=True)
  try:
    values(argv)
    config = values.config
  except flags.Error as e:
    raise ConfigError(cli._one_line(e)) from None
  except (AttributeError, KeyError) as e:
    raise ConfigError(cli._config_error(e)) from None
  validation.validate(config)
  return config


def check_trials(base: str, trials: Sequence[Trial], extra: Sequence[str], names: Sequence[str]):
  """Every trial's config, or one ConfigError naming the trial(s) that are invalid and why."""
  bad = []
  config = None
  for name, overrides in zip(names, trials):
    try:
      config = trial_config(base, overrides, extra)
    except ConfigError as e:
      fields = ', '.join(f'{k}={format_value(v)}' for k, v in overrides.items())
      bad.append(f'trial {name} ({fields or "the base config"}): {e}')
  if bad:
    raise ConfigError(f'{len(bad)} trial(s) of the sweep are invalid; nothing was run: '
                      + '; '.join(bad))
  return config


def plan(sweep_path: str, parent: str, extra: Sequence[str] = ()) -> list[dict]:
  """The trials of a grid sweep with their workdirs and commands; writes PARENT/sweep.json
  (and refuses a PARENT made by another sweep file or with other trials)."""
  return _plan(SweepFile(sweep_path), parent, extra)


def _plan(sweep_file: SweepFile, parent: str, extra: Sequence[str]) -> list[dict]:
  if sweep_file.trials is None:
    raise ConfigError(f'{sweep_file.path} is a search (get_search()): its trials are drawn '
                      'as it runs')
  _check_extra(extra)
  parent = os.path.abspath(parent)
  out = []
  for i, t in enumerate(sweep_file.trials):
    workdir = os.path.join(parent, trial_name(i, t))
    out.append({'name': os.path.basename(workdir), 'workdir': workdir, 'overrides': t,
                'command': trial_command(sweep_file.base, workdir, t, extra)})
  _write_sweep_json(parent, sweep_file.path, sweep_file.base, extra,
                    [{k: v for k, v in p.items() if k != 'command'} for p in out])
  return out


def _check_extra(extra: Sequence[str]) -> None:
  bad = [f for f in extra if not f.startswith('--config.')]
  if bad:
    raise ConfigError(f'Extra flags must be --config.FIELD=VALUE overrides, got {bad}')


def _write_sweep_json(parent: str, sweep_path: str, base: str, extra: Sequence[str],
                      trials: list[dict], search: bool = False) -> None:
  path = os.path.join(parent, SWEEP_FILE)
  record = {'sweep': os.path.abspath(sweep_path), 'base': base, 'extra': list(extra),
            'search': search, 'trials': trials}
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    # A grid may append trials (a later stage of the same sweep file); the ones it ran keep
    # their names and overrides.
    before = json.dumps(old.get('trials'), default=str)
    same = (os.path.basename(old.get('sweep', '')) == os.path.basename(record['sweep'])
            and old.get('base') == base
            and (search or before == json.dumps(trials[:len(old.get('trials') or [])],
                                                default=str)))
    if not same:
      raise ConfigError(f'{parent} was made by another sweep ({old.get("sweep")}, '
                        f'{len(old.get("trials", []))} trials): use a new --parent, or delete '
                        'that directory')
    if search:
      record['trials'] = old.get('trials', []) + [t for t in trials if t not in old.get('trials', [])]
    if 'launch' in old:
      record['launch'] = old['launch']
  os.makedirs(parent, exist_ok=True)
  launch.write_json(path, record)


def _record_launch(parent: str, settings: launch.Settings) -> None:
  """The launch settings that differ from the defaults, in sweep.json (for the recorded
  command)."""
  path = os.path.join(parent, SWEEP_FILE)
  with open(path) as f:
    record = json.load(f)
  default = launch.Settings()
  record['launch'] = {k: v for k, v in dataclasses.asdict(settings).items()
                      if getattr(default, k) != v}
  launch.write_json(path, record)


def read_trial(workdir: str) -> dict:
  return launch.read_record(workdir)


# ----------------------------------------------------------------------------- running

def run(sweep_path: str, parent: str, extra: Sequence[str] = (), log=print,
        settings: dict | None = None, resume_pruned: bool = False,
        max_trials: int | None = None) -> list[dict]:
  """Runs every unfinished trial (a grid's, or a search's until max_trials: the sweep
  file's, or `max_trials`) through the launch engine; returns their trial.json records, in
  sweep order."""
  sweep_file = SweepFile(sweep_path)
  if max_trials is not None:
    if sweep_file.search is None:
      raise ConfigError('--max_trials is for a search (get_search()); a grid runs its trials')
    sweep_file.search = dataclasses.replace(sweep_file.search, max_trials=max_trials)
  launch_settings = launch.settings_from({**sweep_file.launch, **(settings or {})})
  if sweep_file.search is not None:
    return _run_search(sweep_file, parent, extra, log, launch_settings, resume_pruned)
  trials = _plan(sweep_file, parent, extra)
  _record_launch(parent, launch_settings)
  check_trials(sweep_file.base, [t['overrides'] for t in trials], extra,
               [t['name'] for t in trials])
  launcher = launch.Launcher(launch_settings, os.path.join(os.path.abspath(parent), 'submitit'),
                             log=log)
  items = []
  for n, t in enumerate(trials, 1):
    previous = read_trial(t['workdir'])
    if _finished(previous, resume_pruned):
      log(f'[{n}/{len(trials)}] {t["name"]}: {previous["status"]} before, skipped')
      continue
    _prepare(t['workdir'], t['name'], t['overrides'], t['command'], previous)
    items.append((f'[{n}/{len(trials)}] {t["name"]}', t['command'], t['workdir']))
  launcher.run_all(items, on_finish=lambda workdir, record: write_hparams(workdir))
  return [read_trial(t['workdir']) for t in trials]


def _finished(record: dict, resume_pruned: bool) -> bool:
  return record.get('status') in ('done', 'failed') or (
      record.get('status') == 'pruned' and not resume_pruned)


def _prepare(workdir: str, name: str, overrides: Trial, command: Sequence[str],
             previous: dict, **more) -> None:
  os.makedirs(workdir, exist_ok=True)
  if previous.get('status') == 'pruned':
    pruned = os.path.join(workdir, launch.PRUNED_FILE)
    if os.path.exists(pruned):
      os.remove(pruned)      # run again to finish it: no longer pruned
  launch.update_record(workdir, name=name, overrides=overrides, command=shlex.join(command),
                       **more)


def _run_search(sweep_file: SweepFile, parent: str, extra: Sequence[str], log,
                settings: launch.Settings, resume_pruned: bool) -> list[dict]:
  from tools import search as search_lib
  search = sweep_file.search
  _check_extra(extra)
  parent = os.path.abspath(parent)
  corners = search_lib.corners(search)
  config = check_trials(sweep_file.base, corners, extra,
                        [f'corner {i}' for i in range(len(corners))])
  _write_sweep_json(parent, sweep_file.path, sweep_file.base, extra, [], search=True)
  _record_launch(parent, settings)
  searcher = search_lib.Searcher(parent, search, config)
  log(f'search: {search.sampler} sampler, {search.pruner} pruner, {search.max_trials} trials, '
      f'{searcher.count()} in the study so far; study in {parent}/{search_lib.JOURNAL}')

  def item(number: int, params: dict, report: bool = True):
    name = trial_name(number, params)
    workdir = os.path.join(parent, name)
    command = trial_command(sweep_file.base, workdir, params, extra) + (
        [f'--report_trial={parent}#{number}'] if report else [])
    _prepare(workdir, name, params, command, read_trial(workdir), number=number)
    _write_sweep_json(parent, sweep_file.path, sweep_file.base, extra,
                      [{'name': name, 'workdir': workdir, 'overrides': params}], search=True)
    return (f'[{number + 1}/{search.max_trials}] {name}', command, workdir)

  items = [item(n, p) for n, p in searcher.unfinished()]   # an interrupted sweep's
  if resume_pruned:
    for t in collect(parent):
      record = read_trial(t['workdir'])
      if record.get('status') == 'pruned':
        items.append(item(record['number'], record['overrides'], report=False))

  def more():
    asked = searcher.ask()
    return None if asked is None else item(*asked)

  def finish(workdir: str, record: dict) -> None:
    write_hparams(workdir)
    if 'number' in record and '--report_trial' in record.get('command', ''):
      searcher.tell(record['number'], record.get('status'), _last_value(workdir, search.metric))

  launch.Launcher(settings, os.path.join(parent, 'submitit'), log=log).run_all(
      items, on_finish=finish, more=more)
  return [read_trial(t['workdir']) for t in collect(parent)]


def _last_value(workdir: str, metric: str) -> float | None:
  split, _, name = metric.partition('/')
  values = [m[name] for m in _metrics(workdir) if m.get('split') == split
            and isinstance(m.get(name), (int, float))]
  return float(values[-1]) if values else None


def _metrics(workdir: str) -> list[dict]:
  try:
    return read_metrics(workdir) if os.path.isdir(workdir) else []
  except (OSError, ValueError):
    return []


def write_hparams(workdir: str) -> None:
  """The trial's overrides and final metrics to TensorBoard's HParams plugin, in its own
  TensorBoard run (WORKDIR/tensorboard), so that `tensorboard --logdir SWEEP_DIR` shows
  every trial in the HParams table and parallel-coordinates views."""
  from tensorboardX import FileWriter
  from tensorboardX.summary import hparams
  record = read_trial(workdir)
  overrides = {k: (v if isinstance(v, (int, float, str, bool)) else str(v))
               for k, v in record.get('overrides', {}).items()}
  final: dict[str, float] = {}
  for m in _metrics(workdir):
    for k, v in m.items():
      if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ('step', 'time'):
        final[f'{m.get("split", "?")}/{k}'] = float(v)
  if not overrides and not final:
    return
  overrides['status'] = record.get('status', '')
  writer = FileWriter(os.path.join(workdir, 'tensorboard'))
  for summary in hparams(overrides, final):
    writer.add_summary(summary)
  writer.close()


def status(parent: str) -> list[list[str]]:
  """Header + one row per trial: name, status, engine, job id, attempts, step, error."""
  rows = [['trial', 'status', 'engine', 'job', 'attempts', 'step', 'error']]
  for t in collect(parent):
    record = read_trial(t['workdir'])
    rows.append([t['trial'], record.get('status', 'not started'), record.get('engine', ''),
                 str(record.get('job_id', '')), str(record.get('attempts', '')),
                 str(t.get('step', '')),
                 record.get('error', '')[:120]])
  return rows


def cancel(parent: str, log=print, wait_s: float = 120) -> int:
  """Stops the sweep's unfinished jobs (SLURM: scancel; local: SIGTERM to the job's process,
  which saves its checkpoint first) and marks their trials cancelled; `run` again resumes
  them. Returns how many were stopped."""
  import signal
  import subprocess
  stopped = []
  for t in collect(parent):
    record = read_trial(t['workdir'])
    job = str(record.get('job_id', ''))
    if record.get('status') in launch.TERMINAL or not job:
      continue
    if record.get('engine') == 'slurm':
      if job in launch.slurm_queued([job]):
        subprocess.run(['scancel', job], capture_output=True, timeout=60)
        stopped.append((t['workdir'], job, lambda j=job: j in launch.slurm_queued([j])))
    elif record.get('engine') == 'local' and record.get('host') == os.uname().nodename:
      try:
        os.kill(int(job), signal.SIGTERM)
      except (OSError, ValueError):
        continue
      stopped.append((t['workdir'], job, lambda j=job: _alive(int(j))))
  deadline = time.time() + wait_s
  for workdir, job, alive in stopped:
    while alive() and time.time() < deadline:
      time.sleep(0.5)
    launch.update_record(workdir, status='cancelled', finished=time.time())
    log(f'{os.path.basename(workdir)}: job {job} cancelled')
  return len(stopped)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
    return True
  except OSError:
    return False


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
    row = {'trial': t['name'], 'status': status, 'overrides': t['overrides'], 'metrics': {},
           'workdir': t['workdir']}
    for m in _metrics(t['workdir']):
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
  best = sort_rows(rows, metric, descending)[0] if metric else None
  if best is not None and best['status'] == 'done' and metric in best['metrics']:
    command = re.sub(r" '?--report_trial=[^ ]*", '', read_trial(best['workdir']).get('command', ''))
    md += (f'\nBest: {best["trial"]} ({metric} {best["metrics"][metric]:.6g}); its command:\n\n'
           f'    {command}\n')
  counts: dict[str, int] = {}
  for r in rows:
    counts[r['status']] = counts.get(r['status'], 0) + 1
  md += '\nTrials: ' + ', '.join(f'{n} {k}' for k, n in counts.items()) + '\n'
  if metric:
    plots = plot(parent, rows, metric)
    md += '\nPlots: ' + ', '.join(os.path.relpath(p, parent) for p in plots) + '\n'
  with open(os.path.join(parent, 'summary.md'), 'w') as f:
    f.write(md)
  with open(os.path.join(parent, 'summary.csv'), 'w') as f:
    f.write(to_csv(tab))
  return md


def plot(parent: str, rows: list[dict], metric: str) -> list[str]:
  """PARENT/plots/: the final metric against each swept field (one point per trial), and
  every trial's curve of the metric against the step in one figure (a pruned trial's
  curve ends where it was stopped, marked x). Returns the files written."""
  from matplotlib.figure import Figure   # the object API: no pyplot, no backend switch
  out_dir = os.path.join(parent, 'plots')
  os.makedirs(out_dir, exist_ok=True)
  split, _, name = metric.partition('/')
  written = []
  colors = {'done': 'tab:blue', 'pruned': 'tab:orange', 'failed': 'tab:red'}
  fields = list(dict.fromkeys(k for r in rows for k in r['overrides']))
  for field in fields:
    points = [(r['overrides'][field], r['metrics'][metric], r['status']) for r in rows
              if field in r['overrides'] and isinstance(r['metrics'].get(metric), (int, float))]
    if not points:
      continue
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _, _ in points)
    labels = sorted({format_value(x) for x, _, _ in points})
    for status in sorted({p[2] for p in points}):
      xs = [x if numeric else labels.index(format_value(x)) for x, _, st in points if st == status]
      ys = [y for _, y, st in points if st == status]
      ax.scatter(xs, ys, label=status, color=colors.get(status, 'gray'))
    if numeric and min(x for x, _, _ in points) > 0 and (
        max(x for x, _, _ in points) / min(x for x, _, _ in points) > 20):
      ax.set_xscale('log')
    if not numeric:
      ax.set_xticks(range(len(labels)), labels, rotation=30, ha='right')
    ax.set_xlabel(field)
    ax.set_ylabel(f'{metric} (last)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, f'{metric.replace("/", "_")}_vs_{field}.png')
    fig.savefig(path, dpi=100)
    written.append(path)
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for r in rows:
    curve = [(m['step'], m[name]) for m in _metrics(r['workdir'])
             if m.get('split') == split and isinstance(m.get(name), (int, float))]
    if not curve:
      continue
    steps, values = zip(*curve)
    line, = ax.plot(steps, values, lw=1, alpha=0.8,
                    ls='--' if r['status'] == 'pruned' else '-')
    if r['status'] == 'pruned':
      ax.plot(steps[-1], values[-1], 'x', color=line.get_color())
  ax.set_xlabel('step')
  ax.set_ylabel(metric)
  ax.set_title('every trial (dashed, x: pruned)', fontsize=9)
  fig.tight_layout()
  path = os.path.join(out_dir, f'{metric.replace("/", "_")}_curves.png')
  fig.savefig(path, dpi=100)
  written.append(path)
  return written


# ----------------------------------------------------------------------------- command line

USAGE = """usage:
  python -m tools.sweep run      --sweep=FILE --parent=DIR [--engine=local|slurm|debug]
                                 [--parallel=N] [--retries=N] [--resume_pruned]
                                 [--max_trials=N (a search)]
                                 [--metric=SPLIT/NAME] [SLURM settings: tools/launch.py]
                                 [--config.FIELD=VALUE ...]
  python -m tools.sweep status   --parent=DIR
  python -m tools.sweep cancel   --parent=DIR
  python -m tools.sweep commands --sweep=FILE --parent=DIR [--config.FIELD=VALUE ...]
  python -m tools.sweep summary  --parent=DIR [--metric=SPLIT/NAME] [--descending]
                                       [--columns=SPLIT/NAME,...] [--group_over=seed]"""

COMMANDS = ('run', 'status', 'cancel', 'commands', 'summary')
OPTIONS = {'run': {'sweep', 'parent', 'metric', 'resume_pruned', 'max_trials'}
           | set(launch.FIELDS),
           'status': {'parent'}, 'cancel': {'parent'}, 'commands': {'sweep', 'parent'},
           'summary': {'parent', 'metric', 'descending', 'columns', 'group_over'}}


def main(argv: Sequence[str]) -> int:
  if not argv or argv[0] not in COMMANDS:
    print(USAGE, file=sys.stderr)
    return 2
  cmd, opts, extra = argv[0], {}, []
  for a in argv[1:]:
    if a.startswith('--config.'):
      extra.append(a)
    elif a in ('--descending', '--resume_pruned'):
      opts[a[2:]] = True
    elif a.startswith('--') and '=' in a and a[2:].split('=', 1)[0] in OPTIONS[cmd]:
      k, v = a[2:].split('=', 1)
      opts[k] = v
    else:
      print(f'error: unknown argument {a!r} for {cmd}\n{USAGE}', file=sys.stderr)
      return 2
  need = ['parent'] + (['sweep'] if cmd in ('run', 'commands') else [])
  missing = [k for k in need if not opts.get(k)]
  if missing:
    print(f'error: missing --{", --".join(missing)}\n{USAGE}', file=sys.stderr)
    return 2
  try:
    return _main(cmd, opts, extra)
  except (ConfigError, launch.LaunchError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2


def _main(cmd: str, opts: dict, extra: list[str]) -> int:
  parent = opts['parent']
  if cmd == 'commands':
    for t in plan(opts['sweep'], parent, extra):
      print(shlex.join(t['command']))
    return 0
  if cmd == 'status':
    print(to_markdown(status(parent)), end='')
    return 0
  if cmd == 'cancel':
    print(f'{cancel(parent)} job(s) cancelled; `run` again resumes them')
    return 0
  if cmd == 'run':
    settings = {k: v for k, v in opts.items() if k in launch.FIELDS}
    max_trials = opts.get('max_trials')
    if max_trials is not None and not (max_trials.isdigit() and int(max_trials) > 0):
      raise ConfigError(f'--max_trials={max_trials} must be a positive integer')
    records = run(opts['sweep'], parent, extra, settings=settings,
                  resume_pruned=opts.get('resume_pruned', False),
                  max_trials=int(max_trials) if max_trials else None)
    metric, descending = ranking(parent, opts.get('metric'))
    print(summarize(parent, metric if any(metric in r['metrics'] for r in collect(parent))
                    else None, descending))
    return 0 if all(r.get('status') in ('done', 'pruned') for r in records) else 1
  columns = [c for c in opts.get('columns', '').split(',') if c]
  metric, descending = ranking(parent, opts.get('metric'), opts.get('descending', False))
  print(summarize(parent, metric, descending, columns, opts.get('group_over', '')))
  return 0


def ranking(parent: str, metric: str | None = None,
            descending: bool = False) -> tuple[str | None, bool]:
  """(metric, higher is better) to rank a sweep's trials by: those given, else a search's
  own (its metric, and its direction: 'maximize' ranks the highest first)."""
  from tools import search as search_lib
  if not os.path.exists(os.path.join(parent, search_lib.SETTINGS)):
    return metric, descending
  search = search_lib.read_settings(parent)
  return (metric or search.get('metric'),
          descending or search.get('direction') == 'maximize')


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
