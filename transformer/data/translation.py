"""Translation data: sentence pairs, a shared SentencePiece vocabulary, token-budget batches.

    data = make_translation_data('multi30k', data_dir, workdir=W, source_lang='de',
                                 target_lang='en', vocab_size=8000, max_len=64,
                                 tokens_per_batch=4096)
    batch = data.train_batch(step, batch_size=8, seed=0, shard=(host, num_hosts))
    for batch in data.eval_batches('test_2016_flickr', batch_size=64): ...

Datasets (`DATASETS`) and where they are read from:

* 'multi30k' (Multi30k task 1, En-De, raw text): data_dir/multi30k/
  {train,val,test_2016_flickr}.{en,de}.gz, read as UTF-8 and stripped.
  Split aliases: 'validation' -> 'val', 'test' -> 'test_2016_flickr'.
* 'wmt14_translate/de-en', 'wmt17_translate/de-en': from TFDS by name when no
  data_dir is set (tfds.data_source; the dataset must be prepared as
  array_record, features 'de' and 'en'; splits train, validation, test, also
  named newstest2013/newstest2014 for WMT14 and newstest2016/newstest2017 for
  WMT17). With a data_dir, the plain-text (or .gz) files
  data_dir/wmt14/<split>.{en,de} (wmt17/ for WMT17), one sentence per line:
  shared/data has only wmt14/newstest2014.{en,de} (no training data), so train
  there needs wmt14/train.{en,de} (the tests build a tiny stand-in).
* 'files': your own parallel text by path (`config.files`, data/files.py): each
  split a prefix P of aligned files P.SRC and P.TGT (or .gz), in any languages.

Direction: `source_lang` -> `target_lang` (the paper: 'en' -> 'de').

Vocabulary: one SentencePiece model (BPE by default) shared by source and
target, trained on a sample of both sides of the training pairs and saved as
WORKDIR/spm_<dataset>.model ('/' in the name becomes '_'); a resumed run and
eval.py reuse it.

Batches are dicts of NumPy arrays:
  'inputs'     int32 [B, L]: source pieces + EOS, then padding (0)
  'targets_in' int32 [B, L]: BOS + target pieces, then padding (decoder input)
  'targets'    int32 [B, L]: target pieces + EOS, then padding
  'weights'  float32 [B, L]: 1 on the real target tokens (pieces + EOS), else 0
Source and target of a batch are padded to the same length L, one of a few
bucket lengths (`default_boundaries`: 8, 12, ..., 28, then 4 per doubling:
32, 40, 48, 56, 64, 80, ...; the last is max_len), so the jitted train step
compiles once per bucket. A pair's length is max(source, target) pieces + 1.

Training batches (token budget, bucketing): pairs longer than max_len (on
either side, counting EOS) or with an empty side are skipped (`num_skipped`,
logged). Each remaining pair goes to the smallest bucket that holds it.
Bucket length L gets R_L = floor(tokens_per_batch / L / batch_size) *
batch_size rows, so a batch never holds more than `tokens_per_batch` tokens
per side, padding included, and its row count is a multiple of `batch_size`
(here the row granularity, so data-parallel devices, hosts and
grad_accum_steps divide every batch; see configs/translate_multi30k.py). Epoch
e: with rng = default_rng((seed, e)), each bucket's pairs are permuted and cut
into batches of R_L rows (the last one of a bucket filled with empty rows of
weight 0), then the epoch's batches are permuted. The number of batches per
epoch is fixed, so step s is batch s % N of epoch s // N: a pure function of
(seed, step), and every training pair is seen exactly once per epoch.

Evaluation batches: the pairs in their original order (so translation files
line up with the references), `batch_size` rows each, padded to the bucket of
their longest pair; the last batch is filled with empty rows of weight 0. A
pair longer than max_len is truncated (each side to max_len - 1 pieces + EOS)
and counted in `num_truncated[split]`. Empty rows hold a lone EOS / BOS so no
attention row is fully masked.

`shard=(i, n)` returns host i's rows of the global batch (`host_slice`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np

from transformer.data import files as files_lib
from transformer.data import tfds_reader
from transformer.data.packing import PackedEpochs, pack_row
from transformer.data import Batch, DataError, host_slice, read_lines, resolve_data_dir
from transformer.data.tokenizers import (BOS_ID, EOS_ID, HFTokenizer, Processes,
                                         load_or_train_sentencepiece)

log = logging.getLogger('transformer')

DATASETS = ('multi30k', 'wmt14_translate/de-en', 'wmt17_translate/de-en')
LANGUAGES = ('de', 'en')
SPM_MAX_SENTENCES = 1_000_000      # sentences (both sides together) sampled to train the vocabulary

_LOCAL_DIR = {'multi30k': 'multi30k', 'wmt14_translate/de-en': 'wmt14',
              'wmt17_translate/de-en': 'wmt17'}
# Local split aliases (requested name -> file name) and TFDS ones (requested -> TFDS split).
_LOCAL_ALIASES = {
    'multi30k': {'validation': 'val', 'test': 'test_2016_flickr'},
    'wmt14_translate/de-en': {'validation': 'newstest2013', 'test': 'newstest2014'},
    'wmt17_translate/de-en': {'validation': 'newstest2016', 'test': 'newstest2017'},
}
_TFDS_ALIASES = {
    'wmt14_translate/de-en': {'newstest2013': 'validation', 'newstest2014': 'test'},
    'wmt17_translate/de-en': {'newstest2016': 'validation', 'newstest2017': 'test'},
}
# ----------------------------------------------------------------------------- buckets

def default_boundaries(max_len: int, min_len: int = 8) -> list[int]:
  """Bucket lengths 8, 12, ..., 28, then 4 per doubling (32, 40, ..., 64, 80, ...), then max_len."""
  if max_len <= 0:
    raise ValueError(f'max_len must be > 0, got {max_len}')
  out, length = [], min_len
  while length < max_len:
    out.append(length)
    length += max(4, 2 ** (int(math.log2(length)) - 2))
  return out + [max_len]


def _check_boundaries(boundaries: Sequence[int], max_len: int) -> list[int]:
  b = [int(x) for x in boundaries]
  if not b or any(x <= 0 for x in b) or any(x >= y for x, y in itertools.pairwise(b)):
    raise ValueError(f'bucket_boundaries must be increasing positive lengths, got {list(b)}')
  if b[-1] != max_len:
    raise ValueError(f'the last bucket boundary must be max_len={max_len}, got {b[-1]}')
  return b


# ----------------------------------------------------------------------------- raw pairs

class _RawSplit:
  """A split's sentence pairs: `len()`, `take(indices)` -> (sources, targets) lists of str."""

  def __init__(self, sources: Sequence, targets: Sequence | None, where: str, take=None):
    if take is None and len(sources) != len(targets):
      raise DataError(f'{where}: {len(sources)} source lines but {len(targets)} target lines')
    self.sources, self.targets, self.where = sources, targets, where
    self._take = take   # TFDS: one record source; take(indices) -> (sources, targets)

  def __len__(self) -> int:
    return len(self.sources)

  def take(self, indices) -> tuple[list[str], list[str]]:
    indices = [int(i) for i in indices]
    if self._take is not None:
      return self._take(indices)
    return [self.sources[i] for i in indices], [self.targets[i] for i in indices]

  def get(self, start: int, stop: int) -> tuple[list[str], list[str]]:
    return self.take(range(start, stop))

  def texts(self) -> tuple[list[str], list[str]]:
    return self.get(0, len(self))


def _local_file(data_dir: str, dataset: str, split: str, lang: str) -> str | None:
  base = os.path.join(data_dir, _LOCAL_DIR[dataset], f'{split}.{lang}')
  for p in (base, base + '.gz'):
    if os.path.exists(p):
      return p
  return None


def _local_split(data_dir, dataset, split, src, tgt) -> _RawSplit:
  name = split
  if _local_file(data_dir, dataset, name, src) is None:
    name = _LOCAL_ALIASES[dataset].get(split, split)
  paths = [_local_file(data_dir, dataset, name, lang) for lang in (src, tgt)]
  folder = os.path.join(data_dir, _LOCAL_DIR[dataset])
  if None in paths:
    have = sorted(f for f in os.listdir(folder)) if os.path.isdir(folder) else []
    extra = ''
    if split == 'train' and dataset != 'multi30k':
      extra = (' There is no local WMT training data in shared/data: put the training pairs in '
               f'{folder}/train.{src} and train.{tgt} (one sentence per line), or unset data_dir '
               'and $TRANSFORMER_DATA_DIR to read the prepared TFDS dataset. ')
    raise DataError(f'{dataset}: split {split!r} ({src}-{tgt}) not found: need {folder}/'
                    f'{name}.{src} and {name}.{tgt} (or .gz); the folder has {have}.{extra} '
                    f'Layout: shared/data/README.md.')
  sources, targets = _read_aligned(paths, f'{dataset} {split}', ' (one sentence pair per line '
                                   'number). Re-extract or re-download the pair of files.')
  return _RawSplit(sources, targets, f'{folder}/{name}.{{{src},{tgt}}}')


def _read_aligned(paths: Sequence[str], where: str, hint: str = '') -> tuple[list, list]:
  """The lines of a source and a target file; DataError naming both when their counts differ."""
  sources, targets = read_lines(paths[0]), read_lines(paths[1])
  if len(sources) != len(targets):
    raise DataError(f'{where}: {paths[0]} has {len(sources)} lines but {paths[1]} has '
                    f'{len(targets)}; the two sides must be aligned line by line{hint}')
  return sources, targets


def _files_split(specs: dict[str, str], split: str, src: str, tgt: str) -> _RawSplit:
  """A split of dataset 'files': the aligned files PREFIX.SRC and PREFIX.TGT."""
  if split not in specs:
    raise DataError(f'files.{split} is not set: this dataset has the splits {tuple(specs)} '
                    f'(set --config.files.{split}=PREFIX of aligned files PREFIX.{src} and '
                    f'PREFIX.{tgt})')
  paths = [files_lib.translation_file(specs[split], lang, split) for lang in (src, tgt)]
  sources, targets = _read_aligned(paths, f'files.{split}')
  return _RawSplit(sources, targets, f'{specs[split]}.{{{src},{tgt}}}')


def split_texts(dataset: str, split: str, source_lang: str, target_lang: str,
                data_dir: str | None = None, tfds_data_dir: str | None = None
                ) -> tuple[list[str], list[str]]:
  """The raw (sources, references) of a split, without a tokenizer (e.g. to rescore BLEU)."""
  data_dir = resolve_data_dir(data_dir)
  raw = (_local_split(data_dir, dataset, split, source_lang, target_lang) if data_dir
         else _tfds_split(dataset, split, source_lang, target_lang, tfds_data_dir))
  return raw.texts()


def _text(value) -> str:
  return (value.decode('utf-8') if isinstance(value, (bytes, np.bytes_)) else str(value)).strip()


def _tfds_split(dataset, split, src, tgt, tfds_data_dir) -> _RawSplit:
  if dataset not in _TFDS_ALIASES:
    raise DataError(f'{dataset} has no TFDS version: set data_dir (or $TRANSFORMER_DATA_DIR) to '
                    f'a folder with {_LOCAL_DIR[dataset]}/{{train,val,test_2016_flickr}}.{{en,de}}'
                    '.gz (the raw files of github.com/multi30k/dataset data/task1/raw, as in '
                    'shared/data).')
  tfds_split = _TFDS_ALIASES[dataset].get(split, split)
  raw = (f'{_LOCAL_DIR[dataset]}/<split>.{{de,en}} plain-text files, one sentence per line '
         '(train.de/train.en for training; newstest2014.* ships in shared/data)')
  source = tfds_reader.open_splits(dataset, (tfds_split,), tfds_data_dir,
                                   raw_hint=raw)[tfds_split]

  def take(keys):
    elements = (source.__getitems__(keys) if hasattr(source, '__getitems__')
                else [source[i] for i in keys])
    return [_text(x[src]) for x in elements], [_text(x[tgt]) for x in elements]

  return _RawSplit(source, None, f'TFDS {dataset}:{tfds_split}', take=take)


# ----------------------------------------------------------------------------- tokenized pairs

def _encode_many(tokenizer, texts: list[str]) -> list[list[int]]:
  """Batch encoding (SentencePiece's multi-threaded list encode when available): the pieces
  alone, without the start or end id a pretrained tokenizer's own policy adds (T5's </s>),
  which the batches put where the model expects them."""
  sp = getattr(tokenizer, '_sp', None)
  if sp is not None:
    return sp.encode(texts)
  ends = {getattr(tokenizer, 'bos_id', None), getattr(tokenizer, 'eos_id', None)} - {None}
  out = []
  for t in texts:
    ids = list(tokenizer.encode(t))
    while ids and ids[-1] in ends:
      ids.pop()
    while ids and ids[0] in ends:
      ids.pop(0)
    out.append(ids)
  return out


def special_ids(tokenizer) -> tuple[int, int]:
  """(the id that starts the decoder input, the end id) of a tokenizer: this library's own
  SentencePiece models' BOS and EOS, or a pretrained model's decoder start (T5: its pad id,
  config.json's decoder_start_token_id) and end ids."""
  if isinstance(tokenizer, HFTokenizer):
    start = tokenizer.decoder_start_id if tokenizer.decoder_start_id is not None else (
        tokenizer.bos_id)
    if start is None or tokenizer.eos_id is None:
      raise DataError(f'{tokenizer.path}: translating needs a decoder start id and an end id; '
                      "this tokenizer's config.json / tokenizer_config.json give "
                      f'start={start}, end={tokenizer.eos_id}')
    return start, tokenizer.eos_id
  return BOS_ID, EOS_ID


class TokenizedPairs:
  """A split's pairs as flat token arrays: `source(i)`, `target(i)` (without EOS/BOS)."""

  CHUNK = 20_000

  def __init__(self, raw: _RawSplit, tokenizer, source_prefix: str = ''):
    dtype = np.uint16 if tokenizer.vocab_size <= 2**16 else np.int32
    src_parts, tgt_parts, src_lens, tgt_lens = [], [], [], []
    for start in range(0, len(raw), self.CHUNK):
      s, t = raw.get(start, min(start + self.CHUNK, len(raw)))
      if source_prefix:
        s = [source_prefix + x for x in s]
      for ids, parts, lens in ((_encode_many(tokenizer, s), src_parts, src_lens),
                               (_encode_many(tokenizer, t), tgt_parts, tgt_lens)):
        lens.append(np.fromiter((len(x) for x in ids), np.int64, len(ids)))
        parts.append(np.fromiter(itertools.chain.from_iterable(ids), dtype))
    self.num = len(raw)
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)
    self.source_lengths = cat(src_lens, np.int64)
    self.target_lengths = cat(tgt_lens, np.int64)
    self._src, self._tgt = cat(src_parts, dtype), cat(tgt_parts, dtype)
    self._src_off = np.concatenate([[0], np.cumsum(self.source_lengths)])
    self._tgt_off = np.concatenate([[0], np.cumsum(self.target_lengths)])

  def __len__(self) -> int:
    return self.num

  def source(self, i: int) -> np.ndarray:
    return self._src[self._src_off[i]:self._src_off[i + 1]].astype(np.int32)

  def target(self, i: int) -> np.ndarray:
    return self._tgt[self._tgt_off[i]:self._tgt_off[i + 1]].astype(np.int32)

  def pair_lengths(self) -> np.ndarray:
    """max(source, target) pieces + 1 (the EOS / BOS): the padded length a pair needs."""
    return np.maximum(self.source_lengths, self.target_lengths) + 1


def make_batch(pairs: TokenizedPairs, indices: Sequence[int], length: int,
               bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> Batch:
  """Rows for `indices` (-1: an empty row of weight 0), padded to `length`; long pairs truncated.
  `bos_id` starts the decoder input (T5: its pad id), `eos_id` ends both sides."""
  n = len(indices)
  inputs = np.zeros((n, length), np.int32)
  targets_in = np.zeros((n, length), np.int32)
  targets = np.zeros((n, length), np.int32)
  weights = np.zeros((n, length), np.float32)
  for r, i in enumerate(indices):
    if i < 0:
      inputs[r, 0], targets_in[r, 0] = eos_id, bos_id
      continue
    src, tgt = pairs.source(int(i))[:length - 1], pairs.target(int(i))[:length - 1]
    inputs[r, :len(src)] = src
    inputs[r, len(src)] = eos_id
    targets_in[r, 0] = bos_id
    targets_in[r, 1:len(tgt) + 1] = tgt
    targets[r, :len(tgt)] = tgt
    targets[r, len(tgt)] = eos_id
    weights[r, :len(tgt) + 1] = 1.0
  return {'inputs': inputs, 'targets_in': targets_in, 'targets': targets, 'weights': weights}


def make_packed_batch(pairs: TokenizedPairs, rows: list, length: int, bos_id: int = BOS_ID,
                      eos_id: int = EOS_ID) -> Batch:
  """Packed rows: each row holds the pairs `rows[r]` (lists of indices) one after another on
  both sides (pieces + EOS per source; BOS + pieces -> pieces + EOS per target), with
  `source_segments`/`target_segments` (1, 2, ... per pair; 0 at padding) and positions
  restarting per pair. An empty row is a lone EOS / BOS of weight 0."""
  n = len(rows)
  out = {k: np.zeros((n, length), np.int32) for k in
         ('inputs', 'targets_in', 'targets', 'source_segments', 'target_segments',
          'source_positions', 'target_positions')}
  weights = np.zeros((n, length), np.float32)
  for r, members in enumerate(rows):
    if len(members) == 0:
      out['inputs'][r, 0], out['targets_in'][r, 0] = eos_id, bos_id
      continue
    sources = [np.append(pairs.source(int(i))[:length - 1], eos_id) for i in members]
    targets = [np.append(pairs.target(int(i))[:length - 1], eos_id) for i in members]
    out['inputs'][r], out['source_segments'][r], out['source_positions'][r] = pack_row(
        sources, length)
    out['targets'][r], out['target_segments'][r], out['target_positions'][r] = pack_row(
        targets, length)
    out['targets_in'][r], _, _ = pack_row([np.concatenate([[bos_id], t[:-1]]) for t in targets],
                                          length)
    weights[r] = out['target_segments'][r] > 0
  out['weights'] = weights
  return out


class _PackedPlan:
  """Packed training batches: rows of max_len tokens per side holding several pairs, packed
  greedily per epoch (data/packing.py); every batch has the same number of rows.

  tokens_per_batch counts *real* tokens here: the rows per batch are chosen so
  that an average batch holds tokens_per_batch real tokens on its fuller side
  (the fill is measured on epoch 0's packing), rounded to a multiple of
  row_multiple.
  """

  def __init__(self, pairs: TokenizedPairs, eligible: np.ndarray, max_len: int,
               tokens_per_batch: int, row_multiple: int):
    idx = np.flatnonzero(eligible)
    if len(idx) == 0:
      raise DataError('no training pairs left after skipping the overlong ones')
    lengths = np.stack([pairs.source_lengths[idx] + 1, pairs.target_lengths[idx] + 1], 1)
    self.packed = PackedEpochs(lengths, max_len, members=idx)
    rows_in_epoch = self.packed.rows_in_epoch(0, 0)
    real = max(int(np.minimum(lengths[:, k], max_len).sum()) for k in range(2))
    self.fill = real / (rows_in_epoch * max_len)
    self.rows = packed_rows(tokens_per_batch, max_len, self.fill, row_multiple)


def packed_rows(tokens_per_batch: int, max_len: int, fill: float, row_multiple: int) -> int:
  """Rows of max_len per packed batch: about tokens_per_batch real tokens at this `fill`
  (the real share of a packed row), a multiple of row_multiple; DataError if none."""
  rows = int(round(tokens_per_batch / (max_len * fill) / row_multiple)) * row_multiple
  if rows < row_multiple:
    raise DataError(f'tokens_per_batch={tokens_per_batch} is too small for packed rows of '
                    f'max_len={max_len} tokens ({100 * fill:.0f}% real) in a multiple '
                    f'of batch_size={row_multiple} rows')
  return rows


def bucket_rows(tokens_per_batch: int, length: int, row_multiple: int) -> int:
  """Rows of a batch of bucket length `length`: at most tokens_per_batch tokens, padding
  included, a multiple of row_multiple; DataError if none."""
  rows = tokens_per_batch // length // row_multiple * row_multiple
  if rows < row_multiple:
    raise DataError(
        f'tokens_per_batch={tokens_per_batch} is too small for bucket length {length} with '
        f'batches of a multiple of batch_size={row_multiple} rows (needs at least '
        f'{row_multiple * length}); raise tokens_per_batch or lower max_len / batch_size.')
  return rows


class _Plan:
  """The bucketed training batches for one row granularity (see the module doc)."""

  def __init__(self, lengths: np.ndarray, eligible: np.ndarray, boundaries: list[int],
               tokens_per_batch: int, row_multiple: int):
    self.boundaries = boundaries
    self.rows = [bucket_rows(tokens_per_batch, length, row_multiple) for length in boundaries]
    idx = np.flatnonzero(eligible)
    bucket_of = np.searchsorted(np.asarray(boundaries), lengths[idx], side='left')
    self.members = [idx[bucket_of == b] for b in range(len(boundaries))]
    self.batches_per_bucket = [math.ceil(len(m) / r) for m, r in zip(self.members, self.rows)]
    self.num_batches = sum(self.batches_per_bucket)
    if self.num_batches == 0:
      raise DataError('no training pairs left after skipping the overlong ones')
    self._cache: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}

  def epoch(self, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
    """[(bucket, row indices padded with -1)] of this epoch, in training order."""
    key = (seed, epoch)
    if key not in self._cache:
      if len(self._cache) >= 2:
        self._cache.pop(next(iter(self._cache)))
      rng = np.random.default_rng(key)
      batches = []
      for b, (members, rows) in enumerate(zip(self.members, self.rows)):
        perm = rng.permutation(members)
        for start in range(0, len(perm), rows):
          chunk = perm[start:start + rows]
          batches.append((b, np.concatenate([chunk, -np.ones(rows - len(chunk), np.int64)])))
      order = rng.permutation(len(batches))
      self._cache[key] = [batches[i] for i in order]
    return self._cache[key]


# ----------------------------------------------------------------------------- the source

class TranslationData:
  """Sentence pairs -> batches (see the module doc).

  Attributes: `name`, `tokenizer`, `vocab_size`, `source_lang`, `target_lang`,
  `max_len`, `tokens_per_batch`, `boundaries`, `num_skipped` (training pairs
  left out; computed with the training plan), `num_truncated` ({split: eval
  pairs truncated}).
  """

  def __init__(self, name: str, raw_splits: dict, tokenizer, *, max_len: int,
               tokens_per_batch: int, source_lang: str, target_lang: str,
               boundaries: Sequence[int] | None = None, packing: bool = False,
               source_prefix: str = ''):
    if max_len < 2:
      raise ValueError(f'max_len must be >= 2 (a piece and EOS), got {max_len}')
    if tokens_per_batch <= 0:
      raise ValueError(f'tokens_per_batch must be > 0, got {tokens_per_batch}')
    self.name, self.tokenizer = name, tokenizer
    self.vocab_size = tokenizer.vocab_size
    self.bos_id, self.eos_id = special_ids(tokenizer)
    self.source_prefix = source_prefix
    self.source_lang, self.target_lang = source_lang, target_lang
    self.max_len, self.tokens_per_batch = max_len, tokens_per_batch
    self.boundaries = _check_boundaries(boundaries or default_boundaries(max_len), max_len)
    self._raw_fns = dict(raw_splits)   # split -> _RawSplit or a function returning one
    self._raw: dict[str, _RawSplit] = {}
    self._tok: dict[str, TokenizedPairs] = {}
    self._plans: dict[int, _Plan | _PackedPlan] = {}
    self.packing = packing
    self.num_skipped: int | None = None
    self.num_truncated: dict[str, int] = {}

  # -- access -------------------------------------------------------------------

  def raw(self, split: str) -> _RawSplit:
    if split not in self._raw:
      fn = self._raw_fns.get(split, self._raw_fns.get('*'))
      if fn is None:
        raise ValueError(f'{self.name} has no split {split!r}; its splits are '
                         f'{[s for s in self._raw_fns if s != "*"]}')
      self._raw[split] = fn(split) if callable(fn) else fn
    return self._raw[split]

  def texts(self, split: str) -> tuple[list[str], list[str]]:
    """The raw (source, target) sentences of `split`, in order (targets are the references)."""
    return self.raw(split).texts()

  def tokenized(self, split: str) -> TokenizedPairs:
    if split not in self._tok:
      self._tok[split] = TokenizedPairs(self.raw(split), self.tokenizer, self.source_prefix)
    return self._tok[split]

  def encode_source(self, text: str) -> list[int]:
    """A raw source sentence's pieces, as the splits' are encoded (prefix, no start/end)."""
    return _encode_many(self.tokenizer, [self.source_prefix + text])[0]

  def num_pairs(self, split: str) -> int:
    return len(self.raw(split))

  def bucket_length(self, length: int) -> int:
    """The smallest bucket length >= length (max_len for anything longer)."""
    i = int(np.searchsorted(np.asarray(self.boundaries), min(length, self.max_len), 'left'))
    return self.boundaries[i]

  # -- training -----------------------------------------------------------------

  def plan(self, batch_size: int) -> _Plan | _PackedPlan:
    if batch_size not in self._plans:
      pairs = self.tokenized('train')
      lengths = pairs.pair_lengths()
      eligible = ((lengths <= self.max_len) & (pairs.source_lengths > 0)
                  & (pairs.target_lengths > 0))
      self.num_skipped = int(len(pairs) - eligible.sum())
      if self.packing:
        plan = _PackedPlan(pairs, eligible, self.max_len, self.tokens_per_batch, batch_size)
        self._plans[batch_size] = plan
        log.info('%s train: %d pairs, %d skipped (longer than max_len=%d or empty), packed '
                 'into rows of %d tokens per side, %.1f%% real on the fuller side: %d rows '
                 'per batch (~%d real tokens)', self.name, len(pairs), self.num_skipped,
                 self.max_len, self.max_len, 100 * plan.fill, plan.rows,
                 plan.rows * self.max_len * plan.fill)
        return plan
      plan = _Plan(lengths, eligible, self.boundaries, self.tokens_per_batch, batch_size)
      self._plans[batch_size] = plan
      log.info('%s train: %d pairs, %d skipped (longer than max_len=%d or empty), %d batches '
               'of <= %d tokens per epoch, bucket lengths %s', self.name, len(pairs),
               self.num_skipped, self.max_len, plan.num_batches, self.tokens_per_batch,
               self.boundaries)
    return self._plans[batch_size]

  def num_train_batches(self, batch_size: int) -> int:
    """Training batches per epoch (for row granularity `batch_size`; packed: epoch 0's)."""
    plan = self.plan(batch_size)
    if isinstance(plan, _PackedPlan):
      return math.ceil(plan.packed.rows_in_epoch(0, 0) / plan.rows)
    return plan.num_batches

  def epoch_batches(self, seed: int, epoch: int, batch_size: int) -> list[tuple[int, np.ndarray]]:
    """Epoch `epoch`'s batches as (bucket length, training pair indices; -1 = empty row)."""
    plan = self.plan(batch_size)
    return [(plan.boundaries[b], idx) for b, idx in plan.epoch(seed, epoch)]

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    """This host's rows of global batch `step`. `batch_size`: the row granularity (see above)."""
    if step < 0 or batch_size <= 0 or seed < 0:
      raise ValueError(f'need step >= 0, batch_size > 0, seed >= 0; got step={step}, '
                       f'batch_size={batch_size}, seed={seed}')
    plan = self.plan(batch_size)
    if isinstance(plan, _PackedPlan):
      rows = plan.packed.rows(step, plan.rows, seed, host_slice(plan.rows, shard))
      return make_packed_batch(self.tokenized('train'), rows, self.max_len, self.bos_id,
                               self.eos_id)
    epoch, k = divmod(step, plan.num_batches)
    bucket, indices = plan.epoch(seed, epoch)[k]
    rows = host_slice(len(indices), shard)
    return make_batch(self.tokenized('train'), indices[rows], plan.boundaries[bucket],
                      self.bos_id, self.eos_id)

  # -- evaluation ---------------------------------------------------------------

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Every pair of `split` once, in order, `batch_size` rows a batch (see the module doc)."""
    pairs = self.tokenized(split)
    rows = host_slice(batch_size, shard)
    lengths = pairs.pair_lengths()
    self.num_truncated[split] = int((lengths > self.max_len).sum())
    if self.num_truncated[split]:
      log.info('%s %s: %d pairs longer than max_len=%d are truncated for evaluation', self.name,
               split, self.num_truncated[split], self.max_len)
    for start in range(0, len(pairs), batch_size):
      idx = np.arange(start, min(start + batch_size, len(pairs)))
      length = self.bucket_length(int(lengths[idx].max()))
      idx = np.concatenate([idx, -np.ones(batch_size - len(idx), np.int64)])
      yield make_batch(pairs, idx[rows], length, self.bos_id, self.eos_id)


# ----------------------------------------------------------------------------- construction

def _spm_sentences(raw: _RawSplit, max_sentences: int) -> Iterator[str]:
  """Both sides of a fixed random sample (seed 0) of max_sentences // 2 pairs, in corpus order."""
  n = len(raw)
  k = min(n, max(max_sentences // 2, 1))
  idx = (np.arange(n) if k == n else
         np.sort(np.random.default_rng(0).choice(n, size=k, replace=False)))
  for start in range(0, k, TokenizedPairs.CHUNK):
    s, t = raw.take(idx[start:start + TokenizedPairs.CHUNK])
    for a, b in zip(s, t):
      if a:
        yield a
      if b:
        yield b


def spm_path(workdir: str, dataset: str) -> str:
  return os.path.join(workdir, f'spm_{dataset.replace("/", "_").replace("-", "_")}.model')


def make_translation_data(dataset: str, data_dir: str | None = None, *, workdir: str | None,
                          source_lang: str, target_lang: str, vocab_size: int = 8000,
                          max_len: int = 256, tokens_per_batch: int = 4096,
                          boundaries: Sequence[int] | None = None,
                          tfds_data_dir: str | None = None,
                          spm_max_sentences: int = SPM_MAX_SENTENCES,
                          spm_model_type: str = 'bpe', packing: bool = False,
                          processes: Processes = Processes(), files=None, tokenizer=None,
                          source_prefix: str = '') -> TranslationData:
  """The translation data source for `dataset` (see the module doc).

  Args:
    dataset: one of DATASETS.
    data_dir: a folder laid out like shared/data (`resolve_data_dir`: else
      $TRANSFORMER_DATA_DIR); None reads the WMT datasets from TFDS by name.
    workdir: where the shared SentencePiece model lives (spm_path; trained on
      first use from the training pairs, reused afterwards).
    processes: which process trains that model (the others wait for it and load
      it; tokenizers.Processes).
    source_lang, target_lang: 'de' / 'en' in either direction.
    vocab_size: SentencePiece pieces (an upper bound: small corpora may give fewer).
    max_len: the longest pair (pieces + EOS on each side) used in training;
      also the last bucket length.
    tokens_per_batch: per side, padding included, of a global training batch.
    boundaries: bucket lengths (default `default_boundaries(max_len)`).
    tfds_data_dir: the TFDS data dir (default $TFDS_DATA_DIR or ~/tensorflow_datasets).
    spm_max_sentences, spm_model_type: how the vocabulary is trained.
    packing: training rows of max_len tokens per side hold several pairs
      (data/packing.py; with segment ids and positions) instead of length
      buckets, and tokens_per_batch counts real tokens (rows per batch from
      the measured fill).
    files: dataset 'files': config.files, your parallel text by path.
    tokenizer: a pretrained model's (config.tokenizer, e.g. a converted T5's tokenizer.json)
      instead of training the shared SentencePiece model: its pieces, its decoder start
      and end ids (`special_ids`).
    source_prefix: text put before every source sentence (T5's task prefix).
  """
  if dataset not in DATASETS + (files_lib.DATASET,):
    raise ValueError(f'Unknown translation dataset {dataset!r}; known: {list(DATASETS)} or '
                     f'{files_lib.DATASET!r} (by path)')
  if dataset == files_lib.DATASET:
    if files is None or not source_lang or not target_lang or source_lang == target_lang:
      raise DataError("dataset='files' needs config.files (a prefix per split) and two "
                      f'different languages; got source_lang={source_lang!r}, '
                      f'target_lang={target_lang!r}')
  elif {source_lang, target_lang} != set(LANGUAGES):
    raise ValueError(f'{dataset} translates between {LANGUAGES}; got source_lang={source_lang!r}, '
                     f'target_lang={target_lang!r}')
  if workdir is None:
    raise ValueError(f'{dataset} needs a workdir: its SentencePiece model is saved at '
                     f'{spm_path("WORKDIR", dataset)}')
  if vocab_size <= 0:
    raise ValueError(f'vocab_size must be > 0, got {vocab_size}')
  data_dir = resolve_data_dir(data_dir)
  if dataset == files_lib.DATASET:
    specs = files_lib.split_specs(files, data_dir)
    split_fn = lambda s: _files_split(specs, s, source_lang, target_lang)
  elif data_dir:
    folder = os.path.join(data_dir, _LOCAL_DIR[dataset])
    if not os.path.isdir(folder):
      raise DataError(f'Dataset {dataset!r} not found: no folder {folder}. '
                      'Put the raw files there (layout of shared/data/README.md), or unset '
                      'data_dir and $TRANSFORMER_DATA_DIR to read it from TFDS by name.')
    split_fn = lambda s: _local_split(data_dir, dataset, s, source_lang, target_lang)
  elif dataset not in _TFDS_ALIASES:
    _tfds_split(dataset, 'train', source_lang, target_lang, tfds_data_dir)   # raises why
  else:
    split_fn = lambda s: _tfds_split(dataset, s, source_lang, target_lang, tfds_data_dir)

  if tokenizer is not None:
    return TranslationData(dataset, {'*': split_fn}, tokenizer, max_len=max_len,
                           tokens_per_batch=tokens_per_batch, source_lang=source_lang,
                           target_lang=target_lang, boundaries=boundaries, packing=packing,
                           source_prefix=source_prefix)
  path = spm_path(workdir, dataset)
  holder: dict[str, _RawSplit] = {}

  def sentences():
    holder['train'] = split_fn('train')
    return _spm_sentences(holder['train'], spm_max_sentences)

  tokenizer = load_or_train_sentencepiece(path, sentences, vocab_size, processes,
                                          model_type=spm_model_type,
                                          max_sentences=spm_max_sentences)
  if tokenizer.vocab_size > vocab_size:
    raise DataError(f'{path} has {tokenizer.vocab_size} pieces but vocab_size={vocab_size}: it was '
                    'trained for another config. Delete it (or use another workdir) to retrain.')
  splits = {'*': split_fn}
  if 'train' in holder:
    splits['train'] = holder['train']
  return TranslationData(dataset, splits, tokenizer, max_len=max_len,
                         tokens_per_batch=tokens_per_batch, source_lang=source_lang,
                         target_lang=target_lang, boundaries=boundaries, packing=packing,
                         source_prefix=source_prefix)
