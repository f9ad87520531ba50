"""Sweep spaces: the trials of a sweep file's `get_sweep()`, as lists of override dicts.

Each trial is {dotted config field: value}. Sweep files (configs/sweeps/) build
them with these combinators; `python -m tools.sweep` runs them.

  from transformer import sweep_space as sweep

  def get_sweep():
    return sweep.product(sweep.axis('learning_rate', [3e-4, 1e-3]),
                         sweep.axis('model.dropout_rate', [0.0, 0.2]))   # 4 trials
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

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
