"""Tests of transformer/data/lm.py on the real datasets in shared/data."""

import functools
import os

import numpy as np
import pytest

from transformer.data import DataError
from transformer.data import lm
from transformer.data.lm import make_lm_data
from transformer.data.tokenizers import BOS_ID, EOS_ID, SentencePieceTokenizer

SHAKESPEARE_CHARS = 1_115_394


@functools.lru_cache(maxsize=None)
def _source(dataset, data_dir, seq_len, sampling=None):
  """Built once per argument set (the stream sources are read-only)."""
  return make_lm_data(dataset, data_dir, seq_len, sampling=sampling)


def _read(data_dir, *parts):
  with open(os.path.join(data_dir, *parts), encoding='utf-8') as f:
    return f.read()


def _concat(parts):
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ----------------------------------------------------------------------------- tiny shakespeare

def test_shakespeare_vocab_and_nanogpt_split(data_dir):
  data = _source('tiny_shakespeare', data_dir, 64)
  text = _read(data_dir, 'tiny_shakespeare', 'input.txt')
  assert len(text) == SHAKESPEARE_CHARS
  assert data.vocab_size == 66 and data.tokenizer.pad_id == 0
  assert data.splits == ('train', 'validation')
  assert data.num_tokens('train') == 1_003_854 == int(0.9 * SHAKESPEARE_CHARS)
  assert data.num_tokens('validation') == 111_540
  assert data.num_targets('validation') == 111_539   # the first char has no context
  assert data.tokenizer.decode(data.tokens('train')) == text[:1_003_854]
  assert data.tokenizer.decode(data.tokens('validation')) == text[1_003_854:]
  assert data.sampling == 'random_windows'


def test_shakespeare_targets_are_inputs_shifted_by_one(data_dir):
  data = _source('tiny_shakespeare', data_dir, 64)
  train_text = _read(data_dir, 'tiny_shakespeare', 'input.txt')[:1_003_854]
  batch = data.train_batch(step=5, batch_size=8, seed=1)
  for k in ('inputs', 'targets', 'weights'):
    assert batch[k].shape == (8, 64)
  assert batch['inputs'].dtype == batch['targets'].dtype == np.int32
  assert batch['weights'].dtype == np.float32 and np.all(batch['weights'] == 1)
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
  for x, y in zip(batch['inputs'], batch['targets']):
    x_text, y_text = data.tokenizer.decode(x), data.tokenizer.decode(y)
    assert len(x_text) == len(y_text) == 64
    assert x_text + y_text[-1] in train_text   # a real window of L+1 training chars


@pytest.mark.parametrize('sampling', ['random_windows', 'epoch'])
def test_train_batch_is_a_pure_function_of_seed_and_step(data_dir, sampling):
  data = _source('tiny_shakespeare', data_dir, 32, sampling)
  fresh = make_lm_data('tiny_shakespeare', data_dir, 32, sampling=sampling)  # e.g. after a restart
  a = data.train_batch(7, 16, seed=3)
  for b in (data.train_batch(7, 16, seed=3), fresh.train_batch(7, 16, seed=3)):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['inputs'], data.train_batch(8, 16, seed=3)['inputs'])
  assert not np.array_equal(a['inputs'], data.train_batch(7, 16, seed=4)['inputs'])


@pytest.mark.parametrize('sampling', ['random_windows', 'epoch'])
def test_host_shards_are_disjoint_parts_of_the_global_batch(data_dir, sampling):
  data = _source('tiny_shakespeare', data_dir, 32, sampling)
  full = data.train_batch(11, 12, seed=0)
  parts = [data.train_batch(11, 12, seed=0, shard=(i, 4)) for i in range(4)]
  assert all(p['inputs'].shape == (3, 32) for p in parts)
  joined = _concat(parts)
  for k in full:
    np.testing.assert_array_equal(joined[k], full[k])
  rows = {r.tobytes() for r in full['inputs']}
  assert len(rows) == 12   # distinct windows, so the four hosts read different data
  with pytest.raises(DataError, match='divisible'):
    data.train_batch(0, 10, seed=0, shard=(0, 4))


def test_epoch_sampling_visits_every_window_once_per_epoch(data_dir):
  data = _source('tiny_shakespeare', data_dir, 256, 'epoch')
  tokens = data.tokens('train')
  num_windows = data.epoch_size
  assert num_windows == (len(tokens) - 1) // 256 == 3921
  batch_size = 64
  assert num_windows % batch_size   # so one batch straddles epochs 0 and 1
  window_of = {tokens[w * 256:(w + 1) * 256].tobytes(): w for w in range(num_windows)}
  assert len(window_of) == num_windows
  steps = -(-2 * num_windows // batch_size)
  seen = []
  for step in range(steps):
    batch = data.train_batch(step, batch_size, seed=0)
    np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])
    seen += [window_of[row.tobytes()] for row in batch['inputs']]
  epoch0, epoch1 = seen[:num_windows], seen[num_windows:2 * num_windows]
  assert sorted(epoch0) == sorted(epoch1) == list(range(num_windows))
  assert epoch0 != epoch1 and epoch0 != sorted(epoch0)   # reshuffled, not in order


# ----------------------------------------------------------------------------- eval coverage

@pytest.mark.parametrize('dataset,split,seq_len,batch_size', [
    ('tiny_shakespeare', 'validation', 64, 10),
    ('ptb', 'test', 35, 8),
])
def test_eval_batches_cover_every_target_token_once(data_dir, dataset, split, seq_len, batch_size):
  data = _source(dataset, data_dir, seq_len)
  n = data.num_targets(split)
  rows = -(-n // seq_len)
  assert n % seq_len and rows % batch_size   # both kinds of padding are exercised
  batches = list(data.eval_batches(split, batch_size))
  assert len(batches) == -(-rows // batch_size)
  assert all(b['inputs'].shape == (batch_size, seq_len) for b in batches)
  joined = _concat(batches)
  weights = joined['weights'].ravel()
  assert weights.sum() == n
  assert np.all(weights[:n] == 1) and np.all(weights[n:] == 0)
  tokens = data.tokens(split)
  # Shakespeare scores every char but the first; PTB (preceded by <eos>) scores every word.
  expected = tokens[1:] if dataset == 'tiny_shakespeare' else tokens
  np.testing.assert_array_equal(joined['targets'].ravel()[weights > 0], expected)
  np.testing.assert_array_equal(joined['inputs'].ravel()[1:n], expected[:-1])
  assert np.all(joined['targets'].ravel()[n:] == 0)
  # Host shards of each eval batch partition it.
  sharded = [_concat(list(data.eval_batches(split, batch_size, shard=(i, 2)))) for i in range(2)]
  for k in joined:
    np.testing.assert_array_equal(
        np.stack([sharded[0][k].reshape(-1, batch_size // 2, seq_len),
                  sharded[1][k].reshape(-1, batch_size // 2, seq_len)], 1).reshape(-1, seq_len),
        joined[k])


# ----------------------------------------------------------------------------- ptb

def test_ptb_vocab_and_token_counts(data_dir):
  data = _source('ptb', data_dir, 35)
  assert data.vocab_size == 10_001   # 9,999 words + <eos>, plus padding
  assert data.splits == ('train', 'validation', 'test')
  assert data.sampling == 'epoch'
  assert data.num_tokens('train') == 929_589
  assert data.num_tokens('validation') == 73_760
  assert data.num_tokens('test') == 82_430
  # A leading <eos> gives the first word its context, so every token is a target.
  assert data.num_targets('train') == 929_589 and data.num_targets('test') == 82_430
  first_line = _read(data_dir, 'ptb', 'ptb.test.txt').split('\n')[0]
  n = len(first_line.split()) + 1
  assert data.tokenizer.decode(data.tokens('test')[:n]) == ' '.join(first_line.split() + ['<eos>'])
  batch = data.train_batch(0, 4, seed=0)
  assert batch['inputs'].shape == (4, 35)
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])


# ----------------------------------------------------------------------------- lm1b stand-in

def test_lm1b_local_stand_in_trains_and_reuses_sentencepiece(data_dir, tmp_path, monkeypatch):
  # A tiny real stand-in for lm1b (which cannot be downloaded here): PTB sentences.
  root = tmp_path / 'data'
  (root / 'lm1b').mkdir(parents=True)
  ptb_lines = {s: [l.strip() for l in _read(data_dir, 'ptb', f'ptb.{s}.txt').split('\n')]
               for s in ('train', 'test')}
  (root / 'lm1b' / 'train.txt').write_text('\n'.join(ptb_lines['train'][:3000]) + '\n')
  (root / 'lm1b' / 'test.txt').write_text('\n'.join(ptb_lines['test'][:150]) + '\n')
  workdir = tmp_path / 'work'
  seq_len = 24

  data = make_lm_data('lm1b', str(root), seq_len, str(workdir), vocab_size=600)
  model = workdir / 'spm_lm1b.model'
  assert model.exists()
  assert data.vocab_size <= 600 and data.splits == ('train', 'test')
  assert data.num_examples('train') == 3000
  # (SentencePiece treats the literal '<unk>' of PTB as its reserved unknown symbol, so
  # round trips are checked on a sentence without one.)
  sentence = next(s for s in ptb_lines['test'] if '<unk>' not in s)
  assert data.tokenizer.decode(data.encode(sentence)) == sentence

  batch = data.train_batch(2, 8, seed=0)
  for k in ('inputs', 'targets', 'weights'):
    assert batch[k].shape == (8, seq_len)
  np.testing.assert_array_equal(batch['weights'], (batch['targets'] != 0).astype(np.float32))
  assert np.all(batch['inputs'][:, 0] == BOS_ID)
  for x, y, w in zip(batch['inputs'], batch['targets'], batch['weights']):
    n = int(w.sum())
    np.testing.assert_array_equal(x[1:n], y[:n - 1])
    if n < seq_len:   # an untruncated sentence ends with EOS
      assert y[n - 1] == EOS_ID and np.sum(y == EOS_ID) == 1

  # Eval scores every piece and the EOS of every test sentence exactly once,
  # continuing sentences longer than seq_len on further rows.
  encoded = [data.encode(s) for s in ptb_lines['test'][:150]]
  assert max(len(e) - 1 for e in encoded) > seq_len
  joined = _concat(list(data.eval_batches('test', 16)))
  weights = joined['weights'] > 0
  assert weights.sum() == data.num_targets('test') == sum(len(e) - 1 for e in encoded)
  np.testing.assert_array_equal(joined['targets'][weights], np.concatenate([e[1:] for e in encoded]))

  # A second construction (a resumed run, eval.py) reuses the saved model.
  before = (model.stat().st_mtime_ns, model.read_bytes())

  def no_training(*args, **kwargs):
    raise AssertionError('the SentencePiece model was retrained')
  monkeypatch.setattr(SentencePieceTokenizer, 'train', no_training)
  again = make_lm_data('lm1b', str(root), seq_len, str(workdir), vocab_size=600)
  assert (model.stat().st_mtime_ns, model.read_bytes()) == before
  assert again.tokenizer.model_proto == data.tokenizer.model_proto
  for k, v in data.train_batch(2, 8, seed=0).items():
    np.testing.assert_array_equal(again.train_batch(2, 8, seed=0)[k], v)


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize('dataset,missing', [
    ('tiny_shakespeare', 'input.txt'), ('ptb', 'ptb.train.txt'), ('lm1b', 'train.txt')])
def test_missing_dataset_names_the_path(tmp_path, dataset, missing):
  with pytest.raises(DataError) as e:
    make_lm_data(dataset, str(tmp_path), 16, workdir=str(tmp_path / 'w'))
  assert os.path.join(str(tmp_path), dataset, missing) in str(e.value)


def test_nonexistent_data_dir_is_named(tmp_path):
  with pytest.raises(DataError, match=str(tmp_path / 'nope')):
    make_lm_data('ptb', str(tmp_path / 'nope'), 16)


def test_without_data_dir(tmp_path, monkeypatch):
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  with pytest.raises(DataError, match='ptb.train.txt'):
    make_lm_data('ptb', None, 16)
  # TFDS by name: not prepared here (and preparing needs tensorflow) -> a DataError that says so.
  with pytest.raises(DataError, match='tensorflow') as e:
    make_lm_data('tiny_shakespeare', None, 16, tfds_data_dir=str(tmp_path))
  assert str(tmp_path) in str(e.value) and 'input.txt' in str(e.value)


def test_tfds_tiny_shakespeare_glue(data_dir, monkeypatch):
  """The TFDS reading path, with tfds.data_source replaced by the real text in its layout."""
  import tensorflow_datasets as tfds
  text = _read(data_dir, 'tiny_shakespeare', 'input.txt')
  a, b = int(0.9 * len(text)), int(0.95 * len(text))
  parts = {'train': text[:a], 'validation': text[a:b], 'test': text[b:]}
  calls = []

  def fake_data_source(name, *, split, data_dir=None, download=True, **kwargs):
    calls.append((name, split, download))
    return [{'text': parts[split].encode('utf-8')}]
  monkeypatch.setattr(tfds, 'data_source', fake_data_source)
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  data = make_lm_data('tiny_shakespeare', None, 32)
  assert sorted(calls) == sorted(('tiny_shakespeare', s, False) for s in parts)
  assert data.splits == ('train', 'validation', 'test') and data.vocab_size == 66
  for s, t in parts.items():
    assert data.tokenizer.decode(data.tokens(s)) == t


def test_argument_validation(data_dir):
  with pytest.raises(ValueError, match='seq_len'):
    make_lm_data('ptb', data_dir, 0)
  with pytest.raises(ValueError, match='Unknown LM dataset'):
    make_lm_data('wikitext', data_dir, 16)
  with pytest.raises(ValueError, match='sampling'):
    make_lm_data('tiny_shakespeare', data_dir, 16, sampling='sequential')
  with pytest.raises(ValueError, match='smaller than'):
    make_lm_data('tiny_shakespeare', data_dir, 16, vocab_size=50)
  data = _source('tiny_shakespeare', data_dir, 64)
  with pytest.raises(ValueError, match='no split'):
    next(data.eval_batches('test', 4))
  with pytest.raises(ValueError, match='step'):
    data.train_batch(-1, 4, seed=0)
  assert lm.DEFAULT_SAMPLING == {'tiny_shakespeare': 'random_windows', 'ptb': 'epoch',
                                 'files': 'epoch'}


def test_tfds_lm1b_glue(data_dir, tmp_path, monkeypatch):
  """lm1b from TFDS rows ({'text': bytes}), with tfds.data_source replaced by PTB sentences."""
  import tensorflow_datasets as tfds
  lines = [l.strip() for l in _read(data_dir, 'ptb', 'ptb.valid.txt').split('\n') if l.strip()]
  rows = {'train': lines[:1500], 'test': lines[1500:1600]}

  def fake_data_source(name, *, split, data_dir=None, download=True, **kwargs):
    assert name == 'lm1b' and not download
    return [{'text': s.encode('utf-8')} for s in rows[split]]
  monkeypatch.setattr(tfds, 'data_source', fake_data_source)
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  # spm_max_sentences < 1500: the model is trained on a fixed random sample.
  data = make_lm_data('lm1b', None, 32, str(tmp_path), vocab_size=400, spm_max_sentences=700)
  assert (tmp_path / 'spm_lm1b.model').exists()
  assert data.num_examples('train') == 1500 and data.num_examples('test') == 100
  batch = data.train_batch(0, 4, seed=0)
  assert batch['inputs'].shape == (4, 32) and np.all(batch['inputs'][:, 0] == BOS_ID)
  sentence = next(s for s in rows['test'] if '<unk>' not in s)
  assert data.tokenizer.decode(data.encode(sentence)) == sentence


def test_a_kept_tokenizer_reads_back_as_the_same_tokenizer(tmp_path):
  """Characters, words and a SentencePiece model, as a workdir keeps them (kept_files) and
  generate.py reads them back (load_kept): same ids, same text, same fingerprint."""
  from transformer.data import tokenizers
  text = 'the cat sat on the mat\nthe dog sat on the log\n' * 20
  kinds = [tokenizers.CharTokenizer.from_text(text + 'é'),
           tokenizers.WordTokenizer.from_lines(text.splitlines()),
           SentencePieceTokenizer.train(text.splitlines(), vocab_size=24, model_type='bpe')]
  for i, tok in enumerate(kinds):
    folder = tmp_path / str(i)
    folder.mkdir()
    for name, content in tokenizers.kept_files(tok).items():
      (folder / name).write_bytes(content)
    back = tokenizers.load_kept(str(folder))
    assert type(back) is type(tok) and back.fingerprint == tok.fingerprint
    sample = 'the cat sat on the log'
    assert back.encode(sample) == tok.encode(sample)
    assert back.decode(tok.encode(sample)) == tok.decode(tok.encode(sample))
  assert tokenizers.load_kept(str(tmp_path)) is None            # nothing kept there
  (tmp_path / '0' / tokenizers.KEPT_VOCAB).write_text('{"kind": "chars"')   # cut short
  with pytest.raises(DataError, match='cannot be read'):
    tokenizers.load_kept(str(tmp_path / '0'))
