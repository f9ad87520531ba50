"""Tokenizers. Id 0 is padding in every one of this library's own.

- `CharTokenizer`: one id per character (char-level LMs).
- `WordTokenizer`: one id per whitespace-separated word (word-level PTB).
- `SentencePieceTokenizer`: a SentencePiece model (BPE or unigram) trained from
  the data and saved as a file, so a resumed run and eval.py reuse it.
- `HFTokenizer`: a pretrained model's own `tokenizer.json` (Hugging Face's
  `tokenizers` package; no transformers or torch), with the special-token ids of
  its config.json (and its [MASK] id, which masked-LM training uses). Its ids are
  the model's, so padding is whatever the model says.

Each has `encode(text) -> ids`, `decode(ids) -> text`, `vocab_size` and a
`fingerprint` (a hash of what decides the ids), which a workdir can record to
refuse another tokenizer than its checkpoint's.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Callable, Iterable, NamedTuple

import numpy as np

from transformer.errors import DataError
from transformer.token_ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID  # noqa: F401  (re-exported)


class CharTokenizer:
  """Characters -> ids 1..n (0 is padding), in sorted character order."""
  pad_id = PAD_ID

  def __init__(self, chars: Iterable[str]):
    self.chars = sorted(set(chars))
    self._index = {c: i + 1 for i, c in enumerate(self.chars)}
    self.vocab_size = len(self.chars) + 1

  @classmethod
  def from_text(cls, text: str) -> 'CharTokenizer':
    return cls(set(text))

  def encode(self, text: str) -> list[int]:
    try:
      return [self._index[c] for c in text]
    except KeyError as e:
      raise ValueError(f'Character {e.args[0]!r} is not in the vocabulary') from None

  def encode_with_chars(self, text: str) -> tuple[list[int], list[int]]:
    """(ids, characters each token covers): one each."""
    ids = self.encode(text)
    return ids, [1] * len(ids)

  def decode(self, ids) -> str:
    return ''.join(self.chars[i - 1] for i in np.asarray(ids).tolist() if 0 < i <= len(self.chars))

  @property
  def fingerprint(self) -> str:
    return _digest('chars', '\0'.join(self.chars).encode())


class WordTokenizer:
  """Whitespace words -> ids; id 0 padding, id 1 `<unk>` (unless the text has it)."""
  pad_id = PAD_ID

  def __init__(self, words: list[str]):
    self.words = list(words)
    self._index = {w: i + 1 for i, w in enumerate(self.words)}
    self.vocab_size = len(self.words) + 1
    self.unk_id = self._index.get('<unk>')

  @classmethod
  def from_lines(cls, lines: Iterable[str], eos: str | None = '<eos>') -> 'WordTokenizer':
    vocab = set()
    for line in lines:
      vocab.update(line.split())
    if eos:
      vocab.add(eos)
    vocab.add('<unk>')
    return cls(sorted(vocab))

  def encode(self, text: str) -> list[int]:
    ids = [self._index.get(w, self.unk_id) for w in text.split()]
    if any(i is None for i in ids):
      raise ValueError(f'Out-of-vocabulary word in {text!r}')
    return ids

  def decode(self, ids) -> str:
    return ' '.join(self.words[i - 1] for i in np.asarray(ids).tolist()
                    if 0 < i <= len(self.words))

  @property
  def fingerprint(self) -> str:
    return _digest('words', '\n'.join(self.words).encode())


class SentencePieceTokenizer:
  """A SentencePiece model with pad=0, unk=1, bos=2, eos=3."""
  pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

  def __init__(self, model_proto: bytes):
    import sentencepiece as spm
    self.model_proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.get_piece_size()

  @classmethod
  def train(cls, sentences: Iterable[str], vocab_size: int, model_type: str = 'bpe',
            character_coverage: float = 1.0, max_sentences: int = 1_000_000,
            seed_sentencepiece_size: int = 1_000_000) -> 'SentencePieceTokenizer':
    """Trains on (at most `max_sentences` of) `sentences`."""
    import sentencepiece as spm
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=out, vocab_size=vocab_size,
        model_type=model_type, character_coverage=character_coverage,
        input_sentence_size=max_sentences, shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        hard_vocab_limit=False, num_threads=os.cpu_count() or 1, minloglevel=2)
    return cls(out.getvalue())

  @classmethod
  def load(cls, path: str) -> 'SentencePieceTokenizer':
    with open(path, 'rb') as f:
      return cls(f.read())

  def save(self, path: str) -> None:
    """Writes atomically (a crash never leaves a half-written model)."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
      f.write(self.model_proto)
    os.replace(tmp, path)

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def decode(self, ids) -> str:
    ids = [i for i in np.asarray(ids).tolist() if i > EOS_ID]
    return self._sp.decode(ids)

  @property
  def fingerprint(self) -> str:
    return _digest('sentencepiece', self.model_proto)


class HFTokenizer:
  """A pretrained model's tokenizer.json, through Hugging Face's `tokenizers` package.

  `encode` applies the file's own post-processor: the model family's policy, written
  in its tokenizer (GPT-2 adds nothing; Llama puts <s> first; BERT wraps in [CLS] ...
  [SEP]); nothing else is ever added. `decode` drops special tokens. The ids of
  padding, start, end and unknown come from the model's config.json and
  tokenizer_config.json (`from_dir`; None where the model has none).
  """
  SPECIAL_TOKENS = ('pad', 'bos', 'eos', 'unk', 'mask', 'decoder_start')   # each: an `_id`
  pad_id = bos_id = eos_id = unk_id = mask_id = decoder_start_id = None

  def __init__(self, path: str):
    try:
      from tokenizers import Tokenizer
    except ImportError:
      raise ValueError('a tokenizer.json needs the tokenizers package: pip install '
                       'tokenizers') from None
    with open(path, 'rb') as f:
      raw = f.read()
    try:
      self._tok = Tokenizer.from_str(raw.decode('utf-8'))
    except Exception as e:   # the package raises its own Exception subclass
      raise ValueError(f'{path} is not a readable tokenizer.json ({e})') from None
    self.path = path
    self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
    self.fingerprint = _digest('tokenizer.json', raw)

  @classmethod
  def from_dir(cls, folder: str) -> 'HFTokenizer':
    """FOLDER/tokenizer.json with the special-token ids of FOLDER/config.json (token ids),
    FOLDER/special_ids.json (a run's copy of them) and FOLDER/tokenizer_config.json (token
    strings)."""
    path = os.path.join(folder, 'tokenizer.json')
    if not os.path.isfile(path):
      raise ValueError(f'{path} does not exist: the model\'s tokenizer.json is needed to read '
                       'and write text (download it with the model)')
    tok = cls(path)
    ids = {}
    # config.json's ids win; special_ids.json: a run's record of them (workdir.record_tokenizer)
    for name in ('tokenizer_config.json', 'special_ids.json', 'config.json'):
      file = os.path.join(folder, name)
      if not os.path.isfile(file):
        continue
      with open(file, encoding='utf-8') as f:
        meta = json.load(f)
      for key in cls.SPECIAL_TOKENS:
        value = meta.get(f'{key}_token_id', meta.get(f'{key}_token'))
        if isinstance(value, dict):   # an AddedToken saved as a dict
          value = value.get('content')
        if isinstance(value, list):   # several end ids (Llama 3): the first
          value = value[0] if value else None
        if isinstance(value, str):
          value = tok._tok.token_to_id(value)
        if isinstance(value, int):
          ids[key] = value
    for key in cls.SPECIAL_TOKENS:
      setattr(tok, f'{key}_id', ids.get(key))
    return tok

  def special_ids(self) -> dict[str, int]:
    """{'pad_token_id': ..., ...}: the special-token ids it was read with (those it has), as
    config.json names them."""
    ids = {f'{k}_token_id': getattr(self, f'{k}_id') for k in self.SPECIAL_TOKENS}
    return {k: v for k, v in ids.items() if v is not None}

  def encode(self, text: str) -> list[int]:
    return list(self._tok.encode(text).ids)   # add_special_tokens: the file's own policy

  def encode_with_chars(self, text: str) -> tuple[list[int], list[int]]:
    """(ids, characters each token newly covers): from the tokens' character offsets, so the
    counts add up to the text's length up to its last token (special tokens cover none)."""
    encoding = self._tok.encode(text)
    chars, covered = [], 0
    for _, end in encoding.offsets:
      chars.append(max(0, end - covered))
      covered = max(covered, end)
    return list(encoding.ids), chars

  def decode(self, ids) -> str:
    return self._tok.decode([int(i) for i in np.asarray(ids).reshape(-1).tolist()],
                            skip_special_tokens=True)

  def id_to_token(self, i: int) -> str | None:
    return self._tok.id_to_token(int(i))


def from_spec(spec: str):
  """The tokenizer `config.tokenizer` names: None for '' (the dataset's own), an HFTokenizer
  for 'hf:DIR' (DIR/tokenizer.json). DataError when it cannot be read. Every text pipeline
  (lm, mlm, translation, text_classification) reads it."""
  if not spec:
    return None
  kind, _, where = spec.partition(':')
  if kind != 'hf' or not where:
    raise DataError(f"tokenizer={spec!r}: give 'hf:DIR' (a folder with a pretrained model's "
                    "tokenizer.json), or '' for the dataset's own")
  try:
    return HFTokenizer.from_dir(where)
  except ValueError as e:
    raise DataError(f'tokenizer={spec!r}: {e}') from None


# A run keeps its own tokenizer in its workdir (workdir.record_tokenizer), so that generate.py
# on a copied workdir needs no data directory: characters and words as a JSON vocabulary,
# a SentencePiece model as its bytes. A tokenizer.json read from elsewhere is kept under hf/.
KEPT_VOCAB = 'tokenizer_vocab.json'
KEPT_SPM = 'tokenizer_spm.model'


def kept_files(tokenizer) -> dict[str, bytes]:
  """{file name: contents} that `load_kept` turns back into `tokenizer`; {} for a tokenizer
  kept otherwise (HFTokenizer: its folder is copied) or none (images)."""
  if isinstance(tokenizer, (CharTokenizer, WordTokenizer)):
    kind, tokens = (('chars', tokenizer.chars) if isinstance(tokenizer, CharTokenizer)
                    else ('words', tokenizer.words))
    return {KEPT_VOCAB: json.dumps({'kind': kind, 'tokens': list(tokens)},
                                   ensure_ascii=False).encode('utf-8')}
  if isinstance(tokenizer, SentencePieceTokenizer):
    return {KEPT_SPM: tokenizer.model_proto}
  return {}


def load_kept(folder: str):
  """The tokenizer that `kept_files` wrote into `folder`, or None when there is none; a
  DataError when the files are unreadable."""
  vocab, spm_path = os.path.join(folder, KEPT_VOCAB), os.path.join(folder, KEPT_SPM)
  try:
    if os.path.isfile(vocab):
      with open(vocab, encoding='utf-8') as f:
        kept = json.load(f)
      if kept.get('kind') == 'chars':
        return CharTokenizer(kept['tokens'])
      if kept.get('kind') == 'words':
        return WordTokenizer(kept['tokens'])
      raise ValueError(f"unknown kind {kept.get('kind')!r}")
    if os.path.isfile(spm_path):
      return SentencePieceTokenizer.load(spm_path)
  except (OSError, ValueError, KeyError, RuntimeError) as e:
    raise DataError(f'the tokenizer kept in {folder} cannot be read ({e}): train.py writes '
                    'it again when the run resumes') from None
  return None


def _digest(kind: str, data: bytes) -> str:
  return f'{kind}:{hashlib.sha256(data).hexdigest()[:16]}'


class Processes(NamedTuple):
  """Which process of a job this is, for files that one process writes and all read.

  `writer`: this process writes shared files (process 0); `wait(name)`: returns
  once every process has called it with `name` (a barrier). The default is a
  single process. The engine builds the multi-process one from JAX
  (transformer.distributed.processes), so this package needs no JAX.
  """
  writer: bool = True
  wait: Callable[[str], None] = lambda name: None
  count: int = 1


def load_or_train_sentencepiece(path: str, sentences_fn, vocab_size: int,
                                processes: Processes = Processes(),
                                **train_kwargs) -> SentencePieceTokenizer:
  """Reuses the model at `path` (resume, eval.py), else trains one and saves it there.

  With several processes, only the writer (process 0) trains and saves; the
  others wait for it at a barrier and load the saved model, so every process
  has the same vocabulary and no two write the same file.
  """
  if processes.count > 1:
    if processes.writer and not os.path.exists(path):
      _train_and_save(path, sentences_fn, vocab_size, train_kwargs)
    processes.wait(f'sentencepiece:{os.path.basename(path)}')
    return SentencePieceTokenizer.load(path)
  if os.path.exists(path):
    return SentencePieceTokenizer.load(path)
  return _train_and_save(path, sentences_fn, vocab_size, train_kwargs)


def _train_and_save(path, sentences_fn, vocab_size, train_kwargs) -> SentencePieceTokenizer:
  tok = SentencePieceTokenizer.train(sentences_fn(), vocab_size, **train_kwargs)
  tok.save(path)
  with open(path + '.json', 'w') as f:
    json.dump({'vocab_size': tok.vocab_size, **{k: str(v) for k, v in train_kwargs.items()}}, f)
  return tok
