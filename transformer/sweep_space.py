"""Sweep spaces: the trials of a sweep file's `get_sweep()`, as lists of override dicts.

Each trial is {dotted config field: value}. Sweep files (configs/sweeps/) build
them with these combinators; `python -m tools.sweep` runs them.

  from transformer import sweep_space as sweep

  def get_sweep():
    return sweep.product(sweep.axis('learning_rate', [3e-4, 1e-3]),
                         sweep.axis('model.dropout_rate', [0.0, 0.2]))   # 4 trials

Searches (random or Bayesian, run by tools/search.py with Optuna) are described
here too, as plain data, so that sweep files never import Optuna:

  def get_search():
    return sweep.search({'learning_rate': sweep.loguniform(1e-4, 1e-2),
                         'model.dropout_rate': sweep.uniform(0.0, 0.3),
                         'warmup_steps': sweep.integer(0, 500, step=50),
                         'model.positional': sweep.choice(['rope', 'learned'])},
                        metric='validation/loss', sampler='tpe', pruner='median',
                        max_trials=12)
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

Trial = dict[str, Any]


def axis(field: str, values: Iterable[Any]) -> list[Trial]:
  """One field taking each of `values`: [{field: v} for v in values]."""
  return [{field: v} for v in values]


def product(*sweeps: Sequence[Trial]) -> list[Trial]:
  """Every combination (the Cartesian product) of the given sweeps, later ones varying fastest."""
  return [_merge(combo) for combo in itertools.product(*sweeps)]


def zipped(*sweeps: Sequence[Trial]) -> list[Trial]:
  """The i-th trials of the given equally long sweeps merged: zip, not product."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f'zipped sweeps must have equal lengths, got {sorted(lengths)}')
  return [_merge(combo) for combo in zip(*sweeps)]


def chain(*sweeps: Sequence[Trial]) -> list[Trial]:
  """The trials of each sweep one after the other."""
  return [dict(t) for s in sweeps for t in s]


def _merge(trials: Iterable[Trial]) -> Trial:
  out: Trial = {}
  for t in trials:
    clash = set(out) & set(t)
    if clash:
      raise ValueError(f'fields {sorted(clash)} are set twice in one trial')
    out.update(t)
  return out


# ----------------------------------------------------------------------------- searches

@dataclasses.dataclass(frozen=True)
class Range:
  """A numeric range to sample: 'float' (uniform, or log-uniform with log=True) or 'int'."""
  kind: str
  low: float
  high: float
  log: bool = False
  step: float | None = None

  def __post_init__(self):
    if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
      raise ValueError(f'empty range [{self.low}, {self.high}]: the low end must be below the '
                       'high end')
    if self.log and self.low <= 0:
      raise ValueError(f'log range [{self.low}, {self.high}] must be positive')
    if self.step is not None and (self.step <= 0 or self.log):
      raise ValueError(f'step={self.step} must be positive, and not combined with log')


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of a list of values (numbers, strings, booleans)."""
  values: tuple

  def __post_init__(self):
    if not self.values:
      raise ValueError('choice() of no values: give at least one')


def uniform(low: float, high: float, step: float | None = None) -> Range:
  return Range('float', float(low), float(high), step=step)


def loguniform(low: float, high: float) -> Range:
  return Range('float', float(low), float(high), log=True)


def integer(low: int, high: int, step: int = 1, log: bool = False) -> Range:
  """An integer in [low, high] (both ends included)."""
  return Range('int', int(low), int(high), log=log, step=None if log else int(step))


def choice(values: Iterable[Any]) -> Choice:
  return Choice(tuple(values))


SAMPLERS = ('tpe', 'random')
PRUNERS = ('none', 'median', 'halving', 'hyperband')
DIRECTIONS = ('minimize', 'maximize')


@dataclasses.dataclass(frozen=True)
class Search:
  """A search: the space (dotted field -> Range or Choice), the metric it optimizes
  ('SPLIT/NAME' as in metrics.jsonl, read at each periodic evaluation), how to sample
  (Optuna's TPE or random) and prune (median, successive halving, Hyperband, or none), and
  how many trials."""
  space: Mapping[str, Range | Choice]
  metric: str = 'validation/loss'
  direction: str = 'minimize'
  sampler: str = 'tpe'
  pruner: str = 'median'
  max_trials: int = 12
  seed: int = 0
  startup_trials: int = 4       # trials sampled at random (TPE) / never pruned (median)
  warmup_steps: int = 0         # steps before which no trial is pruned

  def __post_init__(self):
    if not self.space:
      raise ValueError('search() needs a non-empty space: {"dotted.field": uniform(...), ...}')
    bad = {k: v for k, v in self.space.items() if not isinstance(v, (Range, Choice))}
    if bad:
      raise ValueError(f'search space values must be uniform/loguniform/integer/choice, got '
                       f'{bad}')
    for name, value, allowed in (('sampler', self.sampler, SAMPLERS),
                                 ('pruner', self.pruner, PRUNERS),
                                 ('direction', self.direction, DIRECTIONS)):
      if value not in allowed:
        raise ValueError(f'search {name}={value!r} is not one of {allowed}')
    if '/' not in self.metric:
      raise ValueError(f'search metric={self.metric!r} must be SPLIT/NAME, e.g. validation/loss')
    if self.max_trials < 1:
      raise ValueError(f'search max_trials={self.max_trials} must be at least 1')


def search(space: Mapping[str, Range | Choice], **kwargs) -> Search:
  return Search(dict(space), **kwargs)
