"""Sentence classification data (GLUE's SST-2, any data in its TSV layout, your own tables).

By name through TFDS (`glue/sst2`: features `sentence`, `label`; splits train
and validation), or, with a data directory, from GLUE's own files:
DATA_DIR/NAME/train.tsv and DATA_DIR/NAME/dev.tsv (the 'validation' split),
tab-separated with a header row naming a `sentence` and a `label` column
(labels 0 .. C-1). Any NAME in that layout is read the same way. With
name='files', TSV/CSV/JSONL tables by path (`config.files`, data/files.py).

Sentences are encoded with the tokenizer of the model being fine-tuned (a
pretrained model's tokenizer.json, or the pretraining data's word vocabulary,
lowercased first), truncated to seq_len tokens. `validation_holdout=N`: N
training sentences, drawn once with a fixed seed, become 'validation' (for
choosing a recipe), and the dataset's own validation split is called 'dev'.
SST's training rows are every phrase of every sentence, so a random draw holds
out phrases whose sentences are still trained on; `whole_sentences` draws
whole sentences (rows that are no other row's word span) and drops every
training row that is a span of one, which makes 'validation' a fair stand-in
for GLUE's dev set (whole sentences of unseen reviews).
A batch: `inputs` [B, seq_len] (the tokenizer's padding id after the text),
`labels` [B], `weights` [B] (0 for the padding rows of the last evaluation
batch). Training batches follow the shared epoch order (a pure function of
(seed, step)).
"""

from __future__ import annotations

import csv
from typing import Iterator

import numpy as np

from transformer.data import (Batch, DataError, feature_text, host_slice, read_text,
                              require_files, tfds_reader)
from transformer.data import files as files_lib
from transformer.data import holdout
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
               seq_len: int, lowercase: bool = True, label_names: list[str] | None = None):
    self.name, self.tokenizer, self.seq_len = name, tokenizer, seq_len
    self.vocab_size = tokenizer.vocab_size
    self.splits = tuple(splits)
    self.label_names = label_names
    self.pad_id = getattr(tokenizer, 'pad_id', None) or 0
    self.lowercase = lowercase
    self._rows, self._labels = {}, {}
    for split, (sentences, labels) in splits.items():
      self._rows[split], self._labels[split] = self.encode(sentences), labels
    if not splits and label_names:   # no sentences: a trained model's encoder and classes
      self.num_classes, self._order = len(label_names), None
      return
    if not len(self._labels.get('train', ())):
      raise DataError(f'{name}: no training examples')
    self.num_classes = int(max(labels.max() for labels in self._labels.values() if len(labels))) + 1
    self._order = EpochOrder(len(self._labels['train']))

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.label_names or (str(i) for i in range(self.num_classes)))

  def encode(self, sentences) -> np.ndarray:
    """Token rows [N, seq_len] of sentences, as every split is encoded (truncated, padded)."""
    rows = np.full((len(sentences), self.seq_len), self.pad_id, np.int32)
    for i, sentence in enumerate(sentences):
      ids = self.tokenizer.encode(sentence.lower() if self.lowercase else sentence)[:self.seq_len]
      rows[i, :len(ids)] = ids
    return rows

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
      batch = {'inputs': np.pad(rows[start:start + n], ((0, pad), (0, 0)),
                                constant_values=self.pad_id),
               'labels': np.pad(labels[start:start + n], (0, pad)),
               'weights': np.pad(np.ones(n, np.float32), (0, pad))}
      yield {k: v[keep] for k, v in batch.items()}


def hold_out(splits: dict, num: int, whole_sentences: bool = False) -> dict:
  """`num` training examples (a permutation with seed 0: the same for every run) become
  'validation'; the dataset's own 'validation' becomes 'dev'. `whole_sentences`: draw
  among `whole_sentence_rows`, and drop from train every row that is a word span of a
  held-out one."""
  if not num:
    return splits
  sentences, labels = splits['train']
  if whole_sentences:
    keep, held = holdout.hold_out_whole(sentences, num, 'validation_holdout', 'in train')
  else:
    keep, held = holdout.draw(range(len(labels)), num, 'validation_holdout',
                              'training sentences')
  out = {'train': ([sentences[i] for i in keep], labels[keep]),
         'validation': ([sentences[i] for i in held], labels[held])}
  for split, value in splits.items():
    if split not in ('train', 'validation'):
      out[split] = value
  if 'validation' in splits:
    out['dev'] = splits['validation']
  return out


def _read_files(files, data_dir) -> tuple[dict, list[str]]:
  """Tables by path (config.files): ({split: (sentences, label ids)}, label names)."""
  specs = files_lib.split_specs(files, data_dir)
  texts, raw = {}, {}
  for split, spec in specs.items():
    texts[split], raw[split] = files_lib.read_table(spec, split, files.get('text_column'),
                                                    files.get('label_column'))
    if not texts[split]:
      raise DataError(f'files.{split}={spec!r} holds no rows')
  labels, names = files_lib.label_ids(raw, specs)
  return {s: (texts[s], labels[s]) for s in specs}, names


def make_text_classification_data(name: str, data_dir: str | None, tokenizer, seq_len: int,
                                  tfds_data_dir: str | None = None, files=None,
                                  lowercase: bool = True,
                                  validation_holdout: int = 0,
                                  whole_sentences: bool = False) -> TextClassificationData:
  """The dataset `name`: your tables by path when it is 'files' (`files`: config.files), from
  DATA_DIR/NAME/*.tsv when data_dir is given, else from TFDS. `lowercase` the sentences
  before `tokenizer` (a word vocabulary's; a tokenizer.json normalizes by itself)."""
  names = None
  if name == files_lib.DATASET:
    if files is None:
      raise DataError("dataset='files' needs config.files (the tables of each split)")
    splits, names = _read_files(files, data_dir)
  elif data_dir:
    paths = require_files(data_dir, name, [FILES['train'], FILES['validation']])
    splits = {split: _read_tsv(p) for split, p in zip(FILES, paths)}
  else:
    splits = _read_tfds(name, tfds_data_dir)
  return TextClassificationData(name, hold_out(splits, validation_holdout, whole_sentences),
                                tokenizer, seq_len, lowercase=lowercase, label_names=names)
