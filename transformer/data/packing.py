"""Sequence packing: several short sequences per row, so a batch is mostly real tokens.

A packed row holds sequences one after another, each with a segment id (1, 2,
...; 0 at the padding after the last) and positions restarting at 0; the models
take `segments` and `positions` and mask attention so that no token sees
another sequence (models.DecoderLM, models.EncoderDecoder). The loss counts
real tokens only (padding has weight 0).

Which sequences share a row is decided per epoch: the examples in the epoch's
order (data.order.EpochOrder) are packed greedily, in that order, each row
taking sequences while they fit in `row_len` tokens (a longer one is truncated
and fills a row alone). Global row k (k = step * batch_size + row) is row
k - R_<e of epoch e, where R_<e counts the rows of the epochs before it, so a
batch stays a pure function of (seed, step) and resuming is exact.
"""

from __future__ import annotations

import threading

import numpy as np

from transformer.data.order import EpochOrder


def greedy_row_starts(lengths: np.ndarray, row_len: int) -> np.ndarray:
  """Row boundaries [R + 1] over sequences of `lengths` (in order), each row <= row_len tokens.

  Row r holds sequences starts[r] .. starts[r + 1] - 1; a sequence longer than
  row_len counts as row_len (it is truncated) and fills a row alone.
  `lengths` [n] or [n, sides] (sentence pairs: every side must fit; both
  sides of a row hold the same sequences).
  """
  lengths = np.minimum(np.asarray(lengths, np.int64), row_len)
  if lengths.ndim == 1:
    lengths = lengths[:, None]
  ends = np.concatenate([np.zeros((1, lengths.shape[1]), np.int64), np.cumsum(lengths, 0)])
  starts = [0]
  i, n = 0, len(lengths)
  while i < n:
    j = min(int(np.searchsorted(ends[:, k], ends[i, k] + row_len, side='right')) - 1
            for k in range(lengths.shape[1]))
    i = max(j, i + 1)
    starts.append(i)
  return np.asarray(starts, np.int64)


def pack_row(seqs: list[np.ndarray], row_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(tokens, segments, positions), each [row_len], of sequences packed one after another."""
  tokens = np.zeros(row_len, np.int32)
  segments = np.zeros(row_len, np.int32)
  positions = np.zeros(row_len, np.int32)
  at = 0
  for s, seq in enumerate(seqs):
    seq = np.asarray(seq)[:row_len - at]
    tokens[at:at + len(seq)] = seq
    segments[at:at + len(seq)] = s + 1
    positions[at:at + len(seq)] = np.arange(len(seq))
    at += len(seq)
  return tokens, segments, positions


class PackedEpochs:
  """Global packed row -> the example indices it holds (see the module docstring)."""

  def __init__(self, lengths: np.ndarray, row_len: int, members: np.ndarray | None = None):
    """lengths [n] (or [n, sides] for pairs) of the packable examples; `members` [n]: their
    indices in the dataset (default 0 .. n - 1), which `rows` returns."""
    self.lengths = np.asarray(lengths, np.int64)
    self.row_len = row_len
    self.members = None if members is None else np.asarray(members, np.int64)
    self.order = EpochOrder(len(self.lengths))
    self._starts: dict[tuple[int, int], np.ndarray] = {}   # (seed, epoch) -> row starts
    self._rows_per_epoch: dict[int, list[int]] = {}        # seed -> [R_0, R_1, ...]
    self._lock = threading.Lock()

  def _epoch_starts(self, seed: int, epoch: int) -> np.ndarray:
    key = (seed, epoch)
    if key not in self._starts:
      if len(self._starts) >= 2:
        self._starts.pop(next(iter(self._starts)))
      perm = self.order.permutation(seed, epoch)
      self._starts[key] = greedy_row_starts(self.lengths[perm], self.row_len)
    return self._starts[key]

  def rows_in_epoch(self, seed: int, epoch: int) -> int:
    return len(self._epoch_starts(seed, epoch)) - 1

  def _locate(self, seed: int, row: int) -> tuple[int, int]:
    """(epoch, row within it) of global packed row `row`."""
    counts = self._rows_per_epoch.setdefault(seed, [])
    before = 0
    epoch = 0
    while True:
      if epoch == len(counts):
        counts.append(self.rows_in_epoch(seed, epoch))
      if row < before + counts[epoch]:
        return epoch, row - before
      before += counts[epoch]
      epoch += 1

  def rows(self, step: int, batch_size: int, seed: int, rows=slice(None)) -> list[np.ndarray]:
    """Example indices of each of the global rows `rows` of step `step`."""
    out = []
    with self._lock:
      for r in np.arange(batch_size, dtype=np.int64)[rows]:
        epoch, i = self._locate(seed, int(step * batch_size + r))
        starts = self._epoch_starts(seed, epoch)
        perm = self.order.permutation(seed, epoch)
        picked = perm[starts[i]:starts[i + 1]]
        out.append(picked if self.members is None else self.members[picked])
    return out
