"""Input pipelines: TFDS by name, or the same datasets from raw local files.

Every experiment family provides a *data source* with one small interface that
the training loop relies on (see `DataSource`). Batches are dicts of NumPy
arrays. Training batches are a pure function of (seed, step), so the data
position of a run is its step number: resuming from a checkpoint at step N
yields exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from typing import Iterator, Protocol

import numpy as np

from transformer.errors import DataError  # noqa: F401  (re-exported)

Batch = dict[str, np.ndarray]
DATA_DIR_ENV = 'TRANSFORMER_DATA_DIR'


class Tokenizer(Protocol):
  vocab_size: int
  pad_id: int   # always 0 in this project

  def encode(self, text: str) -> list[int]: ...
  def decode(self, ids) -> str: ...


class DataSource(Protocol):
  """What the training loop needs from a dataset.

  - `train_batch(step, batch_size, seed, shard)` returns this host's part of the
    global batch for `step`: deterministic in (seed, step), so resuming is exact.
    `shard=(index, count)` splits the global batch among hosts with no overlap.
  - `eval_batches(split, batch_size, shard)` covers every example (or token) of
    the split exactly once; the last batch is padded and its padding has weight 0.
  """
  tokenizer: Tokenizer | None

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch: ...

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]: ...


def resolve_data_dir(data_dir: str | None) -> str | None:
  """config.data_dir, else $TRANSFORMER_DATA_DIR, else None (use TFDS by name)."""
  d = data_dir or os.environ.get(DATA_DIR_ENV) or None
  if d is not None and not os.path.isdir(d):
    raise DataError(f'data_dir {d!r} does not exist. Set --config.data_dir (or ${DATA_DIR_ENV}) '
                    'to a folder laid out like shared/data (see its README.md), or leave both '
                    'unset to read datasets from TFDS by name.')
  return d


def require_files(data_dir: str, dataset: str, names: list[str]) -> list[str]:
  """Paths of `names` under data_dir/dataset; a DataError listing what is missing."""
  paths = [os.path.join(data_dir, dataset, n) for n in names]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise DataError(f'Dataset {dataset!r} not found: missing {missing}. Put the raw files '
                    f'under {os.path.join(data_dir, dataset)}/ (layout of shared/data/README.md), '
                    f'or unset data_dir and ${DATA_DIR_ENV} to load it from TFDS by name.')
  return paths


def read_text(path: str) -> str:
  """A UTF-8 text file (gzipped when it ends in .gz), whole; a DataError naming the file when
  it is empty, truncated or corrupt (gzip), or not valid UTF-8."""
  import gzip
  import zlib
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path} cannot be read ({type(e).__name__}: {e}): the file is corrupt or '
                    'truncated; copy or download it again') from e
  if not data.strip():
    raise DataError(f'{path} is empty: it should hold the dataset\'s text; copy or download it '
                    'again')
  try:
    return data.decode('utf-8')
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b'\n') + 1
    raise DataError(f'{path} is not valid UTF-8 (byte {e.start}, line {line}: '
                    f'{data[e.start:e.start + 4]!r}); convert it with e.g. '
                    f'iconv -f latin1 -t utf-8') from e


def feature_text(value) -> str:
  """A TFDS text feature (bytes, or str) as str."""
  return value.decode('utf-8') if isinstance(value, (bytes, np.bytes_)) else str(value)


def read_lines(path: str) -> list[str]:
  """`read_text(path)` as stripped lines (a final newline adds no empty line)."""
  lines = read_text(path).split('\n')
  if lines[-1] == '':
    lines.pop()
  return [line.strip() for line in lines]


def host_slice(batch_size: int, shard: tuple[int, int]) -> slice:
  """The rows of a global batch that host `shard[0]` of `shard[1]` reads."""
  index, count = shard
  if batch_size % count:
    raise DataError(f'batch_size={batch_size} is not divisible by the {count} hosts')
  per_host = batch_size // count
  return slice(index * per_host, (index + 1) * per_host)
