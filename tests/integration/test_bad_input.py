"""Bad input data stops with one message that names the file and the fix, before any
compilation: a missing dataset, an empty, truncated or non-UTF-8 raw file, and the two sides of a
translation corpus with different line counts (the unprepared TFDS dataset: tests/test_tfds.py;
corrupt IDX files: tests/test_data_images.py)."""

import gzip
import os
import shutil

import pytest

from configs import lm_ptb, translate_multi30k
from tests import helpers
from transformer import engine
from transformer.data import DataError


def _ptb_copy(tmp_path, data_dir):
  d = tmp_path / 'data'
  shutil.copytree(os.path.join(data_dir, 'ptb'), d / 'ptb')
  for f in (d / 'ptb').iterdir():
    os.chmod(f, 0o644)   # shared/data is read-only
  return d


def _lm(d):
  return helpers.tiny_config(lm_ptb, dict(d_model=16, num_heads=2, d_ff=32,
                                          num_decoder_layers=1), data_dir=str(d),
                             seq_len=16, batch_size=4)


def _experiment_error(config) -> str:
  with pytest.raises(DataError) as e:
    engine.Experiment(config, None)   # builds the data; nothing is compiled before it
  return str(e.value)


def test_missing_dataset_names_the_folder(tmp_path):
  (tmp_path / 'data').mkdir()
  message = _experiment_error(_lm(tmp_path / 'data'))
  assert "Dataset 'ptb' not found" in message and str(tmp_path / 'data' / 'ptb') in message


def test_empty_raw_file(tmp_path, data_dir):
  d = _ptb_copy(tmp_path, data_dir)
  (d / 'ptb' / 'ptb.valid.txt').write_text('')
  message = _experiment_error(_lm(d))
  assert f"{d / 'ptb' / 'ptb.valid.txt'} is empty" in message and 'copy or download' in message


def test_invalid_utf8_names_the_line(tmp_path, data_dir):
  d = _ptb_copy(tmp_path, data_dir)
  (d / 'ptb' / 'ptb.test.txt').write_bytes(b' the cat\n caf\xe9 sat \n')
  message = _experiment_error(_lm(d))
  assert f"{d / 'ptb' / 'ptb.test.txt'} is not valid UTF-8" in message and 'line 2' in message
  assert 'iconv' in message


def _m30k_copy(tmp_path, data_dir):
  d = tmp_path / 'data'
  shutil.copytree(os.path.join(data_dir, 'multi30k'), d / 'multi30k')
  return d


def _translation(d, tmp_path):
  return helpers.tiny_config(translate_multi30k, **{
      'data_dir': str(d), 'vocab_size': 300, 'spm_max_sentences': 2000, 'seq_len': 24})


def test_truncated_gzip(tmp_path, data_dir):
  d = _m30k_copy(tmp_path, data_dir)
  path = d / 'multi30k' / 'train.de.gz'
  data = path.read_bytes()
  os.chmod(path, 0o644)
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(DataError) as e:
    engine.Experiment(_translation(d, tmp_path), str(tmp_path / 'run'))
  assert f'{path} cannot be read' in str(e.value) and 'corrupt or truncated' in str(e.value)


def test_translation_sides_with_different_line_counts(tmp_path, data_dir):
  d = _m30k_copy(tmp_path, data_dir)
  path = d / 'multi30k' / 'train.en.gz'
  with gzip.open(path, 'rt', encoding='utf-8') as f:
    lines = f.read().split('\n')
  os.chmod(path, 0o644)
  with gzip.open(path, 'wt', encoding='utf-8') as f:
    f.write('\n'.join(lines[:-5]))
  with pytest.raises(DataError) as e:
    engine.Experiment(_translation(d, tmp_path), str(tmp_path / 'run'))
  message = str(e.value)
  from transformer.data import read_lines
  assert 'train.de.gz has 29000 lines' in message
  assert f'train.en.gz has {len(read_lines(str(path)))}' in message and len(read_lines(str(path))) < 29000
  assert 'aligned line by line' in message
