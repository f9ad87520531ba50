"""Training batches of the right shapes without the data: for planning a run (tools.plan)
on a machine that does not hold its dataset (WMT14, LM1B, ImageNet are not here).

    data = lm_shapes('lm1b', seq_len=128, vocab_size=30000, packing=True)
    batch = data.train_batch(0, batch_size=256, seed=0)   # zeros, the real keys and dtypes

A `ShapeData` has what a task reads from its data source when it builds its model
(`vocab_size`; `image_size`, `num_channels`, `num_classes` and `class_names` for images)
and a `train_batch` with the keys, dtypes and shapes of the real pipeline's (zeros, with
weights of 1: every position counts as a real token or example;
tests/data/test_data_shapes.py compares them with the real sources on the local datasets).
It has no evaluation batches and no tokenizer: it only serves compiling a train step.

Where the real shapes depend on the data, the choice is stated in `assumption`:
translation batches bucketed by length are planned at their longest bucket (max_len: the
most attention memory for the same tokens per batch), and packed translation rows assume
the packing fills them (a real fill f needs about 1/f times as many rows).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from transformer.data import translation
from transformer.errors import DataError

Batch = dict[str, np.ndarray]


@dataclasses.dataclass
class ShapeData:
  """A data source with batch shapes and no data (see the module doc)."""
  name: str
  make_batch: Callable[[int], Batch]   # batch_size -> a batch of zeros
  assumption: str                      # how the shapes were chosen, for the report
  vocab_size: int = 1
  image_size: int = 0
  num_channels: int = 0
  num_classes: int = 0
  tokenizer = None

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(str(i) for i in range(self.num_classes))

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    del step, seed
    batch = self.make_batch(batch_size)
    first, count = shard
    rows = len(next(iter(batch.values()))) // count
    return {k: v[first * rows:(first + 1) * rows] for k, v in batch.items()}

  def eval_batches(self, split: str, batch_size: int, shard: tuple[int, int] = (0, 1)):
    raise DataError(f'{self.name}: planned from batch shapes only; there is no data here to '
                    f'evaluate {split!r} on')


def _tokens(rows: int, width: int, ints: tuple[str, ...]) -> Batch:
  batch = {k: np.zeros((rows, width), np.int32) for k in ints}
  batch['weights'] = np.ones((rows, width), np.float32)   # every position a real token
  return batch


def lm_shapes(dataset: str, *, seq_len: int, vocab_size: int, packing: bool) -> ShapeData:
  """Next-token batches [B, seq_len]: inputs, targets, weights (+ segments, positions when
  packed, as data.lm's packed sentences)."""
  ints = ('inputs', 'targets') + (('segments', 'positions') if packing else ())
  return ShapeData(dataset, lambda b: _tokens(b, seq_len, ints),
                   f'batch_size rows of seq_len={seq_len} tokens', vocab_size=vocab_size)


def translation_shapes(dataset: str, *, max_len: int, vocab_size: int, tokens_per_batch: int,
                       packing: bool) -> ShapeData:
  """Token-budget batches as data.translation makes them, at the shape with the most rows
  times length: packed rows of max_len assuming a full packing, or the longest bucket."""
  if packing:
    ints = ('inputs', 'targets_in', 'targets', 'source_segments', 'target_segments',
            'source_positions', 'target_positions')

    def rows(b):
      return translation.packed_rows(tokens_per_batch, max_len, 1.0, b)
    why = (f'packed rows of max_len={max_len}, as many as tokens_per_batch={tokens_per_batch} '
           'fills when packing fills rows completely (a real fill f needs about 1/f times as '
           'many)')
  else:
    ints = ('inputs', 'targets_in', 'targets')

    def rows(b):
      return translation.bucket_rows(tokens_per_batch, max_len, b)
    why = (f'the longest bucket (max_len={max_len}): tokens_per_batch={tokens_per_batch} '
           'in the fewest, longest rows, the most attention memory of any bucket')
  return ShapeData(dataset, lambda b: _tokens(rows(b), max_len, ints), why,
                   vocab_size=vocab_size)


def image_shapes(dataset: str, *, image_size: int, num_channels: int, num_classes: int,
                 mixup: bool) -> ShapeData:
  """Image batches: images float32 [B, S, S, C], labels, weights (+ mix_labels and
  mix_ratio with mixup, as data.images makes them)."""

  def make(b):
    batch = {'images': np.zeros((b, image_size, image_size, num_channels), np.float32),
             'labels': np.zeros(b, np.int32), 'weights': np.ones(b, np.float32)}
    if mixup:
      batch.update(mix_labels=np.zeros(b, np.int32), mix_ratio=np.zeros(b, np.float32))
    return batch
  return ShapeData(dataset, make, f'batch_size images of {image_size}x{image_size}',
                   image_size=image_size, num_channels=num_channels, num_classes=num_classes)
