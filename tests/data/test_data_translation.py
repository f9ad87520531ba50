"""Translation data: Multi30k and WMT files, the shared vocabulary, bucketing, eval order, BLEU."""

import gzip
import os
import unicodedata

import numpy as np
import pytest

from transformer import bleu
from transformer.data import DataError
from transformer.data import translation as tr
from transformer.data.tokenizers import BOS_ID, EOS_ID

VOCAB, MAX_LEN, TOKENS, ROWS = 400, 32, 512, 8


def _lines(data_dir, name):
  with gzip.open(os.path.join(data_dir, 'multi30k', name), 'rt', encoding='utf-8') as f:
    return [line.strip() for line in f]


def _make(data_dir, workdir, **kw):
  args = {'workdir': str(workdir), 'source_lang': 'de', 'target_lang': 'en',
          'vocab_size': VOCAB, 'max_len': MAX_LEN, 'tokens_per_batch': TOKENS,
          'spm_max_sentences': 4000}
  args.update(kw)
  return tr.make_translation_data('multi30k', data_dir, **args)


@pytest.fixture(scope='module')
def m30k(tmp_path_factory, require_data):
  d = require_data('multi30k')
  workdir = tmp_path_factory.mktemp('m30k')
  return _make(d, workdir), d, workdir


def test_multi30k_files_load_with_expected_counts(m30k):
  data, data_dir, _ = m30k
  assert [data.num_pairs(s) for s in ('train', 'val', 'test_2016_flickr')] == [29000, 1014, 1000]
  assert data.num_pairs('validation') == 1014 and data.num_pairs('test') == 1000   # aliases
  src, tgt = data.texts('val')
  assert src == _lines(data_dir, 'val.de.gz') and tgt == _lines(data_dir, 'val.en.gz')  # de -> en
  assert all(s and t and s == s.strip() for s, t in zip(src, tgt))


def test_tokenizer_round_trip_and_reuse(m30k):
  data, data_dir, workdir = m30k
  tok = data.tokenizer
  assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
  assert tok.vocab_size <= VOCAB
  src, tgt = data.texts('val')
  for text in src + tgt:   # exact up to SentencePiece's NFKC + whitespace normalization
    assert tok.decode(tok.encode(text)) == ' '.join(unicodedata.normalize('NFKC', text).split())
  path = workdir / 'spm_multi30k.model'
  mtime = path.stat().st_mtime_ns
  again = _make(data_dir, workdir)    # resume / eval.py: the saved vocabulary is reused
  assert path.stat().st_mtime_ns == mtime
  assert again.tokenizer.encode(src[0]) == tok.encode(src[0])


def test_bucketing_keeps_every_pair_once_within_the_token_budget(m30k):
  data, _, _ = m30k
  pairs = data.tokenized('train')
  lengths = pairs.pair_lengths()
  eligible = np.flatnonzero(lengths <= MAX_LEN)
  assert data.num_train_batches(ROWS) > 0
  assert data.num_skipped == 29000 - len(eligible) > 0
  for epoch in (0, 1):
    batches = data.epoch_batches(seed=0, epoch=epoch, batch_size=ROWS)
    seen = np.concatenate([idx[idx >= 0] for _, idx in batches])
    assert len(seen) == len(eligible)                        # none duplicated ...
    np.testing.assert_array_equal(np.sort(seen), eligible)   # ... none lost
    shapes = set()
    for length, idx in batches:
      assert len(idx) * length <= TOKENS and len(idx) % ROWS == 0
      assert length in data.boundaries and lengths[idx[idx >= 0]].max() <= length
      shapes.add((len(idx), length))
    assert len(shapes) <= len(data.boundaries)
  e0 = data.epoch_batches(0, 0, ROWS)
  e1 = data.epoch_batches(0, 1, ROWS)
  assert not all(np.array_equal(a[1], b[1]) for a, b in zip(e0, e1))   # reshuffled each epoch


def test_train_batch_matches_its_pairs(m30k):
  data, _, _ = m30k
  pairs = data.tokenized('train')
  n = data.num_train_batches(ROWS)
  for step in (0, 1, n + 2):   # also in the second epoch
    length, idx = data.epoch_batches(0, step // n, ROWS)[step % n]
    b = data.train_batch(step, ROWS, seed=0)
    assert set(b) == {'inputs', 'targets_in', 'targets', 'weights'}
    assert b['inputs'].shape == b['targets'].shape == (len(idx), length)
    assert b['inputs'].dtype == np.int32 and b['weights'].dtype == np.float32
    for r, i in enumerate(idx):
      if i < 0:
        assert b['weights'][r].sum() == 0
        continue
      s, t = pairs.source(i), pairs.target(i)
      np.testing.assert_array_equal(b['inputs'][r, :len(s) + 1], np.append(s, EOS_ID))
      np.testing.assert_array_equal(b['targets_in'][r, :len(t) + 1], np.insert(t, 0, BOS_ID))
      np.testing.assert_array_equal(b['targets'][r, :len(t) + 1], np.append(t, EOS_ID))
      assert b['weights'][r].sum() == len(t) + 1 and not b['inputs'][r, len(s) + 1:].any()


def test_train_batches_are_a_pure_function_of_seed_and_step(m30k):
  data, data_dir, workdir = m30k
  fresh = _make(data_dir, workdir)
  n = data.num_train_batches(ROWS)
  for step in (5, n + 5):
    a, b = data.train_batch(step, ROWS, 0), fresh.train_batch(step, ROWS, 0)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  same, other = data.train_batch(5, ROWS, seed=0), data.train_batch(5, ROWS, seed=1)
  assert (other['inputs'].shape != same['inputs'].shape
          or not np.array_equal(other['inputs'], same['inputs']))
  full = data.train_batch(7, ROWS, 0)
  halves = [data.train_batch(7, ROWS, 0, shard=(i, 2)) for i in range(2)]
  for k in full:
    np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), full[k])


def test_eval_batches_cover_every_pair_once_in_order(m30k):
  data, _, _ = m30k
  pairs = data.tokenized('val')
  batches = list(data.eval_batches('val', 64))
  assert len(batches) == 16 and all(b['inputs'].shape[0] == 64 for b in batches)
  rows = [(b, r) for b in batches for r in range(64)]
  real = [(b, r) for b, r in rows if b['weights'][r].sum() > 0]
  assert len(real) == 1014 and all(b['weights'][r].sum() == 0 for b, r in rows[1014:])
  truncated = 0
  for i, (b, r) in enumerate(real):   # pair i of the split is row i
    t = pairs.target(i)
    L = b['targets'].shape[1]
    want = np.append(t[:L - 1], EOS_ID)
    np.testing.assert_array_equal(b['targets'][r, :len(want)], want)
    np.testing.assert_array_equal(b['inputs'][r, :min(len(pairs.source(i)), L - 1)],
                                  pairs.source(i)[:L - 1])
    truncated += len(t) + 1 > L or len(pairs.source(i)) + 1 > L
  assert data.num_truncated['val'] == truncated > 0
  shards = [list(data.eval_batches('val', 64, shard=(i, 2))) for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([shards[0][3]['targets'], shards[1][3]['targets']]),
                                batches[3]['targets'])


def test_small_token_budget_is_a_clear_error(m30k):
  _, data_dir, workdir = m30k
  data = _make(data_dir, workdir, tokens_per_batch=100)
  with pytest.raises(DataError, match='tokens_per_batch=100 is too small'):
    data.train_batch(0, ROWS, 0)


def test_wmt14_local_files(data_dir, tmp_path):
  if not os.path.isdir(os.path.join(data_dir, 'wmt14')):
    pytest.skip('no wmt14 folder')
  raw = tr._local_split(data_dir, 'wmt14_translate/de-en', 'newstest2014', 'en', 'de')
  src, tgt = raw.texts()
  assert len(src) == len(tgt) == 3003 and all(src) and all(tgt)
  assert len(tr._local_split(data_dir, 'wmt14_translate/de-en', 'test', 'en', 'de')) == 3003
  with pytest.raises(DataError, match='no local WMT training data'):
    tr.make_translation_data('wmt14_translate/de-en', data_dir, workdir=str(tmp_path),
                             source_lang='en', target_lang='de')


def test_wmt_without_tfds_preparation_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  with pytest.raises(DataError, match='array_record'):
    tr.make_translation_data('wmt14_translate/de-en', None, workdir=str(tmp_path),
                             source_lang='en', target_lang='de',
                             tfds_data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(DataError, match='multi30k has no TFDS version'):
    tr.make_translation_data('multi30k', None, workdir=str(tmp_path), source_lang='de',
                             target_lang='en')


def test_default_boundaries():
  assert tr.default_boundaries(64) == [8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64]
  b = tr.default_boundaries(256)
  assert b[-5:] == [128, 160, 192, 224, 256] and len(b) == 19
  assert tr.default_boundaries(100)[-3:] == [80, 96, 100]


def test_bleu_of_references_against_themselves_is_100(m30k):
  _, refs = m30k[0].texts('test_2016_flickr')
  for score in (bleu.corpus_bleu(refs, refs), bleu.tokenized_bleu(refs, refs),
                bleu.tokenized_bleu(refs, refs, lowercase=True)):
    assert score.score == pytest.approx(100.0)
  b = bleu.corpus_bleu(refs, refs)
  assert 'tok:13a' in b.signature and 'case:mixed' in b.signature
  hyps = [' '.join(r.split()[:-2]) for r in refs]   # drop the last two words
  assert bleu.corpus_bleu(hyps, refs).score < 90
  lower = [r.lower() for r in refs]
  assert bleu.tokenized_bleu(lower, refs).score < 100
  assert bleu.tokenized_bleu(lower, refs, lowercase=True).score == pytest.approx(100.0)
  assert bleu.tokenize("Don't stop-here.") == "Don ' t stop - here ."


def test_only_the_writer_process_trains_the_sentencepiece_model(tmp_path):
  """On a multi-host run every process trained and wrote the same SentencePiece file; now
  process 0 trains it, the others wait at a barrier and load it."""
  from transformer.data.tokenizers import Processes, load_or_train_sentencepiece
  sentences = [f'a dog runs after ball number {i} in the park' for i in range(300)]
  path = str(tmp_path / 'spm.model')
  calls = []

  def reader_wait(name):   # process 1 waits while process 0 trains and saves
    calls.append(name)
    load_or_train_sentencepiece(path, lambda: sentences, 60, Processes(writer=True, count=2))

  def never_read():
    raise AssertionError('a non-writer process read the training sentences')

  tok = load_or_train_sentencepiece(path, never_read, 60,
                                    Processes(writer=False, count=2, wait=reader_wait))
  assert calls == ['sentencepiece:spm.model'] and os.path.exists(path)
  assert tok.decode(tok.encode('a dog runs')) == 'a dog runs'


def test_parallel_files_by_path_read_as_the_named_dataset(m30k, tmp_path):
  """dataset='files' with Multi30k's own prefixes gives the same pairs, ids and batches; other
  language codes and unaligned files work or fail as they should."""
  import ml_collections
  data, data_dir, workdir = m30k
  files = ml_collections.ConfigDict(dict(train='{data_dir}/multi30k/train',
                                         validation=f'{data_dir}/multi30k/val', test=''))
  os.makedirs(tmp_path / 'w')
  os.link(tr.spm_path(str(workdir), 'multi30k'), tr.spm_path(str(tmp_path / 'w'), 'files'))
  mine = tr.make_translation_data(
      'files', data_dir, workdir=str(tmp_path / 'w'), source_lang='de', target_lang='en',
      vocab_size=VOCAB, max_len=MAX_LEN, tokens_per_batch=TOKENS, files=files)
  assert mine.num_pairs('train') == 29000 and mine.num_pairs('validation') == 1014
  for k, v in data.train_batch(3, ROWS, 0).items():
    np.testing.assert_array_equal(mine.train_batch(3, ROWS, 0)[k], v)
  with pytest.raises(DataError, match=r"files.test is not set: this dataset has the splits "
                                      r"\('train', 'validation'\)"):
    next(mine.eval_batches('test', 4))
  (tmp_path / 'p.xx').write_text('a\nb\n')
  (tmp_path / 'p.yy').write_text('c\n')
  files = ml_collections.ConfigDict(dict(train=str(tmp_path / 'p')))
  with pytest.raises(DataError, match=r'p.xx has 2 lines but .*p.yy has 1'):
    tr.make_translation_data('files', None, workdir=str(tmp_path), source_lang='xx',
                             target_lang='yy', files=files)
  with pytest.raises(DataError, match=r'neither .*p.zz nor .*p.zz.gz exists'):
    tr.make_translation_data('files', None, workdir=str(tmp_path), source_lang='xx',
                             target_lang='zz', files=files)
