"""Sentence classification data (GLUE's SST-2 and any data in its TSV layout).

By name through TFDS (`glue/sst2`: features `sentence`, `label`; splits train
and validation), or, with a data directory, from GLUE's own files:
DATA_DIR/NAME/train.tsv and DATA_DIR/NAME/dev.tsv (the 'validation' split),
tab-separated with a header row naming a `sentence` and a `label` column
(labels 0 .. C-1). Any NAME in that layout is read the same way.

Sentences are lowercased and encoded with the tokenizer of the model being
fine-tuned (the pretraining data's: `config.vocab_from`), truncated to seq_len
tokens. A batch: `inputs` [B, seq_len] (0 = padding), `labels` [B], `weights`
[B] (0 for the padding rows of the last evaluation batch). Training batches
follow the shared epoch order (a pure function of (seed, step)).
"""

from __future__ import annotations

import csv
from typing import Iterator

import numpy as np

from transformer.data import (Batch, DataError, feature_text, host_slice, read_text,
                              require_files, tfds_reader)
from transformer.data.order import EpochOrder

TFDS_NAMES = {'sst2': 'glue/sst2'}
FILES = {'train': 'train.tsv', 'validation': 'dev.tsv'}
_RAW_HINT = ("NAME/train.tsv and NAME/dev.tsv in GLUE's layout (a header row with 'sentence' "
             "and 'label' columns), e.g. GLUE's SST-2.zip unpacked as sst2/")


def _read_tsv(path: str) -> tuple[list[str], np.ndarray]:
  rows = list(csv.reader(read_text(path).splitlines(), delimiter='\t', quoting=csv.QUOTE_NONE))
  if not rows or 'sentence' not in rows[0] or 'label' not in rows[0]:
    raise DataError(f'{path}: the first row must name the columns, with a "sentence" and a '
                    f'"label" one (GLUE\'s layout); it is {rows[0] if rows else "empty"}')
  s, l = rows[0].index('sentence'), rows[0].index('label')
  sentences, labels = [], []
  for n, row in enumerate(rows[1:], start=2):
    try:
      labels.append(int(row[l]))
      sentences.append(row[s])
    except (IndexError, ValueError):
      raise DataError(f'{path} line {n}: expected a sentence and an integer label, got '
                      f'{row!r}') from None
  return sentences, np.asarray(labels, np.int32)


def _read_tfds(name: str, tfds_data_dir: str | None) -> dict:
  sources = tfds_reader.open_splits(TFDS_NAMES.get(name, name), list(FILES), tfds_data_dir,
                                    raw_hint=_RAW_HINT)
  out = {}
  for split, source in sources.items():
    examples = [source[i] for i in range(len(source))]
    out[split] = ([feature_text(e['sentence']) for e in examples], np.asarray([int(e['label']) for e in examples], np.int32))
  return out


class TextClassificationData:
  """Labelled sentences as token rows; see the module doc. Attributes: `name`,
  `tokenizer`, `vocab_size`, `num_classes`, `splits`, `seq_len`."""

  def __init__(self, name: str, splits: dict[str, tuple[list[str], np.ndarray]], tokenizer,
               seq_len: int):
    self.name, self.tokenizer, self.seq_len = name, tokenizer, seq_len
    self.vocab_size = tokenizer.vocab_size
    self.splits = tuple(splits)
    self._rows, self._labels = {}, {}
    for split, (sentences, labels) in splits.items():
      rows = np.zeros((len(sentences), seq_len), np.int32)
      for i, sentence in enumerate(sentences):
        ids = tokenizer.encode(sentence.lower())[:seq_len]
        rows[i, :len(ids)] = ids
      self._rows[split], self._labels[split] = rows, labels
    if not len(self._labels.get('train', ())):
      raise DataError(f'{name}: no training examples')
    self.num_classes = int(max(labels.max() for labels in self._labels.values() if len(labels))) + 1
    self._order = EpochOrder(len(self._labels['train']))

  def num_examples(self, split: str) -> int:
    return len(self._labels[split])

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    idx = self._order.indices(step, batch_size, seed, host_slice(batch_size, shard))
    return {'inputs': self._rows['train'][idx], 'labels': self._labels['train'][idx],
            'weights': np.ones(len(idx), np.float32)}

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    if split not in self._rows:
      raise DataError(f'{self.name} has no split {split!r}; it has {self.splits}')
    rows, labels, keep = self._rows[split], self._labels[split], host_slice(batch_size, shard)
    for start in range(0, len(labels), batch_size):
      n = min(batch_size, len(labels) - start)
      pad = batch_size - n
      batch = {'inputs': np.pad(rows[start:start + n], ((0, pad), (0, 0))),
               'labels': np.pad(labels[start:start + n], (0, pad)),
               'weights': np.pad(np.ones(n, np.float32), (0, pad))}
      yield {k: v[keep] for k, v in batch.items()}


def make_text_classification_data(name: str, data_dir: str | None, tokenizer, seq_len: int,
                                  tfds_data_dir: str | None = None) -> TextClassificationData:
  """The dataset `name` from DATA_DIR/NAME/*.tsv when data_dir is given, else from TFDS."""
  if data_dir:
    paths = require_files(data_dir, name, [FILES['train'], FILES['validation']])
    splits = {split: _read_tsv(p) for split, p in zip(FILES, paths)}
  else:
    splits = _read_tfds(name, tfds_data_dir)
  return TextClassificationData(name, splits, tokenizer, seq_len)
