"""The epoch order every family's training batches follow.

Global example k of a run (k = step * batch_size + row) is example
permutation_e[k % n] with e = k // n and permutation_e =
np.random.default_rng((seed, e)).permutation(n): each epoch visits every
example once, in an order fixed by (seed, epoch), so a batch is a pure function
of (seed, step) and resuming at any step is exact.
"""

from __future__ import annotations

import threading

import numpy as np


class EpochOrder:
  """Global example position -> dataset index, caching the (at most two) live permutations.

  Thread-safe: a prefetch thread may ask for the next step's indices while the
  training thread asks for this step's.
  """

  def __init__(self, n: int):
    if n <= 0:
      raise ValueError(f'an epoch needs at least one example, got n={n}')
    self.n = n
    self._cache: dict[tuple[int, int], np.ndarray] = {}
    self._lock = threading.Lock()

  def __getstate__(self):   # pickled into input worker processes: no lock, no cache
    return {'n': self.n}

  def __setstate__(self, state):
    self.__init__(state['n'])

  def permutation(self, seed: int, epoch: int) -> np.ndarray:
    key = (seed, epoch)
    with self._lock:
      if key not in self._cache:
        if len(self._cache) >= 2:   # a batch (smaller than an epoch) straddles at most two
          self._cache.pop(next(iter(self._cache)))
        perm = np.random.default_rng(key).permutation(self.n)
        self._cache[key] = perm.astype(np.int32) if self.n < 2**31 else perm
      return self._cache[key]

  def indices(self, step: int, batch_size: int, seed: int, rows=slice(None)) -> np.ndarray:
    """Dataset indices of global rows `rows` (a slice or an array of rows) of step `step`."""
    k = step * batch_size + np.arange(batch_size, dtype=np.int64)[rows]
    epochs, pos = np.divmod(k, self.n)
    out = np.empty(len(k), np.int64)
    for e in np.unique(epochs):
      sel = epochs == e
      out[sel] = self.permutation(seed, int(e))[pos[sel]]
    return out
