"""TFDS datasets by name, for every family: one reader, one error message.

`open_splits(name, splits, tfds_data_dir, raw_hint)` returns {split: source},
each source random-access (`len`, `source[i]`, `source.__getitems__(keys)`)
over the dataset's feature dicts. The ways a dataset can be stored, in order:

1. array_record (TFDS's `file_format='array_record'`): read through
   `tfds.data_source`, lazily, without TensorFlow.
2. tfrecord (TFDS's default format, e.g. an existing ~/tensorflow_datasets):
   read through `tfds.load` when TensorFlow is installed, decoded into memory
   once (fine for the text datasets and MNIST-sized image sets; convert a
   large one to array_record with the command below instead).
3. Neither: a DataError that says where it looked, why it failed, and the
   exact commands that fix it (`tfds build`, `tfds convert_format`, or the raw
   files that `config.data_dir` can point at instead).

`config.tfds_data_dir` (else $TFDS_DATA_DIR, else ~/tensorflow_datasets) is
where every task looks.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Sequence

from transformer.data import DataError

log = logging.getLogger('transformer')

TENSORFLOW_PIN = 'tensorflow-cpu==2.21.0'   # ../shared/ENVIRONMENT.md: installs beside jax


def where(tfds_data_dir: str | None) -> str:
  return tfds_data_dir or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'


def help_text(name: str, tfds_data_dir: str | None, raw_hint: str = '',
              manual_hint: str = '') -> str:
  """The three ways to provide dataset `name`, with commands."""
  d = where(tfds_data_dir)
  base = name.split('/')[0]
  lines = [
      f'Provide {name!r} one of three ways:',
      f'  (1) TFDS array_record (read without TensorFlow): pip install {TENSORFLOW_PIN}; '
      f'tfds build {name} --file_format=array_record --data_dir={d}{manual_hint}; or convert '
      f'an existing tfrecord copy: tfds convert_format --dataset_dir={d}/{base} '
      f'--out_file_format=array_record; then pass --config.tfds_data_dir={d} '
      f'(or set $TFDS_DATA_DIR).',
      f'  (2) TFDS tfrecord (the default format): pip install {TENSORFLOW_PIN} and the '
      'prepared dataset is read through tfds.load, into memory.',
  ]
  if raw_hint:
    lines.append(f'  (3) raw files: set --config.data_dir (or $TRANSFORMER_DATA_DIR) to a folder '
                 f'holding {raw_hint}.')
  return '\n'.join(lines)


def tensorflow_installed() -> bool:
  return importlib.util.find_spec('tensorflow') is not None


class InMemorySource:
  """A decoded TFDS split held in memory, indexable like tfds.data_source."""

  def __init__(self, examples: list):
    self.examples = examples

  def __len__(self) -> int:
    return len(self.examples)

  def __getitem__(self, i: int):
    return self.examples[i]

  def __getitems__(self, keys: Sequence[int]) -> list:
    return [self.examples[int(k)] for k in keys]


def _first_line(e: BaseException) -> str:
  text = str(e)
  return f'{type(e).__name__}: {text.splitlines()[0] if text else ""}'


def open_splits(name: str, splits: Sequence[str], tfds_data_dir: str | None = None,
                raw_hint: str = '', manual_hint: str = '') -> dict:
  """{split: random-access source} of TFDS dataset `name` (see the module docstring)."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(f'{name}: no data_dir given and tensorflow_datasets is not installed.\n'
                    + help_text(name, tfds_data_dir, raw_hint, manual_hint)) from e
  data_dir = tfds_data_dir or None
  try:
    return {s: tfds.data_source(name, split=s, data_dir=data_dir, download=False)
            for s in splits}
  except Exception as e:   # not prepared, prepared as tfrecord, unknown split, ...
    array_record_error = _first_line(e)
  if tensorflow_installed():
    try:
      out = {}
      for s in splits:
        ds = tfds.load(name, split=s, data_dir=data_dir, download=False)
        out[s] = InMemorySource(list(tfds.as_numpy(ds)))
        log.info('TFDS %s:%s read through tfds.load into memory (%d examples); for large '
                 'datasets convert to array_record: tfds convert_format --dataset_dir=%s/%s '
                 '--out_file_format=array_record', name, s, len(out[s]), where(tfds_data_dir),
                 name.split('/')[0])
      return out
    except Exception as e:   # noqa: BLE001 - reported below with the array_record error
      tfrecord_error = _first_line(e)
  else:
    tfrecord_error = f'TensorFlow is not installed (pip install {TENSORFLOW_PIN})'
  raise DataError(
      f'TFDS dataset {name!r} (splits {list(splits)}) could not be read from '
      f'{where(tfds_data_dir)}: as array_record: {array_record_error}; as tfrecord: '
      f'{tfrecord_error}.\n' + help_text(name, tfds_data_dir, raw_hint, manual_hint))
