"""Searches with Optuna: random or TPE sampling of a sweep file's `get_search()` space,
with trials stopped early by a pruner (median, successive halving or Hyperband).

The study lives in SWEEP_DIR/study.journal (Optuna's journal file: no server, safe on a
shared file system, so jobs on several machines can share one study) and its settings in
SWEEP_DIR/search.json. `tools.sweep run` asks the study for trials as job slots free up
(`Searcher`), runs each with train.py `--report_trial=SWEEP_DIR#NUMBER`, and tells the
study each trial's final metric (or that it was pruned or failed).

In the trial's process, `Reporter` (built by train.py from that flag) reports the search's
metric at every periodic evaluation; when the pruner says the trial is behind, the run
saves its checkpoint, writes WORKDIR/pruned.json and stops (exit status 0), and the job
is recorded as pruned.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from tools.launch import PRUNED_FILE, write_json
from transformer import sweep_space
from transformer.errors import ConfigError

JOURNAL = 'study.journal'
SETTINGS = 'search.json'
STUDY = 'search'
GROWABLE = ('max_trials',)    # a study may be given more trials later (--max_trials)


def _optuna():
  import optuna     # a sweep's dependency, not the library's: imported where a search runs
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  return optuna


def storage(parent: str):
  optuna = _optuna()
  from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
  path = os.path.join(parent, JOURNAL)
  return optuna.storages.JournalStorage(JournalFileBackend(path, JournalFileOpenLock(path)))


def distributions(search: sweep_space.Search) -> dict[str, Any]:
  """The search space as Optuna distributions, keyed by dotted config field."""
  d = _optuna().distributions
  out = {}
  for field, space in search.space.items():
    if isinstance(space, sweep_space.Choice):
      out[field] = d.CategoricalDistribution(list(space.values))
    elif space.kind == 'int':
      out[field] = d.IntDistribution(int(space.low), int(space.high), log=space.log,
                                     step=int(space.step or 1))
    else:
      out[field] = d.FloatDistribution(space.low, space.high, log=space.log, step=space.step)
  return out


def corners(search: sweep_space.Search) -> list[dict[str, Any]]:
  """Trials that put every field at each end of its range (every value of a choice), to
  validate the configs a search can produce before anything runs."""
  out = []
  for field, space in search.space.items():
    values = (list(space.values) if isinstance(space, sweep_space.Choice) else
              [int(space.low), int(space.high)] if space.kind == 'int' else
              [space.low, space.high])
    out.extend({field: v} for v in values)
  return out


def sampler(search: sweep_space.Search):
  optuna = _optuna()
  if search.sampler == 'random':
    return optuna.samplers.RandomSampler(seed=search.seed)
  return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=search.startup_trials,
                                    constant_liar=True)


def pruner(settings: dict):
  """The pruner of a search.json: the trials' first evaluation is the smallest budget."""
  optuna = _optuna()
  kind = settings['pruner']
  if kind == 'none':
    return optuna.pruners.NopPruner()
  if kind == 'median':
    return optuna.pruners.MedianPruner(n_startup_trials=settings['startup_trials'],
                                       n_warmup_steps=settings['warmup_steps'])
  if kind == 'halving':
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=max(1, settings['eval_every_steps']), reduction_factor=3)
  return optuna.pruners.HyperbandPruner(min_resource=max(1, settings['eval_every_steps']),
                                        max_resource=max(1, settings['num_train_steps']),
                                        reduction_factor=3)


def write_settings(parent: str, search: sweep_space.Search, config) -> dict:
  """SWEEP_DIR/search.json: what the trials' reporters need (metric, pruner); refuses a
  directory whose study was made by another search."""
  settings = {**dataclasses.asdict(search), 'space': {k: dataclasses.asdict(v) for k, v in
                                                      search.space.items()},
              'eval_every_steps': int(config.eval_every_steps),
              'num_train_steps': int(config.num_train_steps)}
  path = os.path.join(parent, SETTINGS)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    changed = sorted(k for k in set(old) | set(settings) if k not in GROWABLE and
                     json.dumps(old.get(k), default=str) != json.dumps(settings.get(k),
                                                                       default=str))
    if changed:
      raise ConfigError(f'{parent} holds a study of another search ({", ".join(changed)} '
                        'differ): use a new --parent, or delete that directory')
  write_json(path, settings)      # trials read it while it may be rewritten
  return settings


def read_settings(parent: str) -> dict:
  with open(os.path.join(parent, SETTINGS)) as f:
    return json.load(f)


class Searcher:
  """The driver's side: asks the study for trials and tells it how they ended."""

  def __init__(self, parent: str, search: sweep_space.Search, config):
    optuna = _optuna()
    self.search = search
    self.settings = write_settings(parent, search, config)
    self.study = optuna.create_study(
        study_name=STUDY, storage=storage(parent), load_if_exists=True,
        direction=search.direction, sampler=sampler(search), pruner=pruner(self.settings))
    self.distributions = distributions(search)

  def unfinished(self) -> list[tuple[int, dict]]:
    """(number, params) of trials asked for but never told (an interrupted sweep's)."""
    running = self.study.get_trials(deepcopy=False,
                                    states=(_optuna().trial.TrialState.RUNNING,))
    return [(t.number, dict(t.params)) for t in running]

  def count(self) -> int:
    return len(self.study.get_trials(deepcopy=False))

  def ask(self) -> tuple[int, dict] | None:
    if self.count() >= self.search.max_trials:
      return None
    trial = self.study.ask(self.distributions)
    return trial.number, dict(trial.params)

  def tell(self, number: int, status: str, value: float | None) -> None:
    state = _optuna().trial.TrialState
    if status == 'done' and value is not None and math.isfinite(value):
      self.study.tell(number, value, skip_if_finished=True)
    elif status == 'pruned':
      self.study.tell(number, state=state.PRUNED, skip_if_finished=True)
    else:
      self.study.tell(number, state=state.FAIL, skip_if_finished=True)


class Reporter:
  """The trial's side (train.py --report_trial=SWEEP_DIR#NUMBER): `__call__(step, split,
  metrics)` reports the search's metric to the trial and returns True when it should stop;
  it then leaves WORKDIR/pruned.json (step and value) for the job to see."""

  def __init__(self, spec: str, workdir: str):
    parent, _, number = spec.rpartition('#')
    if not parent or not number.isdigit() or not os.path.exists(os.path.join(parent, SETTINGS)):
      raise ConfigError(f'--report_trial={spec}: expected SWEEP_DIR#TRIAL_NUMBER, with '
                        f'SWEEP_DIR/{SETTINGS} (written by python -m tools.sweep run)')
    optuna = _optuna()
    self.settings = read_settings(parent)
    self.split, _, self.name = self.settings['metric'].partition('/')
    store = storage(parent)
    study = optuna.load_study(study_name=STUDY, storage=store, pruner=pruner(self.settings))
    trial_id = store.get_trial_id_from_study_id_trial_number(
        store.get_study_id_from_name(STUDY), int(number))
    self.trial = optuna.trial.Trial(study, trial_id)
    self.workdir = workdir

  def __call__(self, step: int, split: str, metrics: dict) -> bool:
    value = metrics.get(self.name)
    if split != self.split or not isinstance(value, (int, float)):
      return False
    self.trial.report(float(value), step)
    if not self.trial.should_prune():
      return False
    with open(os.path.join(self.workdir, PRUNED_FILE), 'w') as f:
      json.dump({'step': step, 'metric': self.settings['metric'], 'value': float(value)}, f)
    return True
