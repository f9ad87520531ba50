"""Your own data by path (transformer/data/files.py): text streams, tables, held-out splits,
and tokenizers trained by tools/tokenizer.py."""

import gzip
import json
import os

import ml_collections
import numpy as np
import pytest

from tools import tokenizer as tokenizer_tool
from transformer.data import DataError
from transformer.data import files as files_lib
from transformer.data import holdout
from transformer.data import text_classification as text_data
from transformer.data.lm import make_lm_data
from transformer.data.tokenizers import HFTokenizer

GPT2 = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'fixtures', 'hf', 'gpt2')
SENTENCES = ['the film is a delight', 'a dull and tired story', 'i loved every minute of it',
             'nothing works here', 'a warm , funny film', 'the plot never comes alive'] * 5


def _files(**kw):
  c = ml_collections.ConfigDict(dict(train='', validation='', test='', unit='line',
                                     text_column='sentence', label_column='label'))
  c.update(kw)
  return c


@pytest.fixture(scope='module')
def wordpiece(tmp_path_factory):
  out = tmp_path_factory.mktemp('wordpiece')
  tok, config = tokenizer_tool.train('wordpiece', SENTENCES * 4, vocab_size=120, min_frequency=1)
  tokenizer_tool.save(tok, config, str(out))
  return HFTokenizer.from_dir(str(out))


def test_text_files_by_glob_line_and_file_units(tmp_path):
  (tmp_path / 'a.txt').write_text('ab\n\nba\n')
  with gzip.open(tmp_path / 'b.txt.gz', 'wt') as f:
    f.write('abc\n')
  (tmp_path / 'v.txt').write_text('cab\n')
  spec = _files(train=f'{tmp_path}/*.txt*', validation=str(tmp_path / 'v.txt'))
  assert files_lib.documents(spec.train, 'train') == ['ab', 'ba', 'abc', 'cab']   # sorted glob
  assert files_lib.documents(spec.train, 'train', unit='file') == ['ab\n\nba\n', 'abc\n',
                                                                   'cab\n']
  data = make_lm_data('files', seq_len=4, files=spec)
  tok = data.tokenizer   # characters of every split, newline included
  assert tok.chars == ['\n', 'a', 'b', 'c'] and data.splits == ('train', 'validation')
  assert tok.decode(data.tokens('train')) == 'ab\nba\nabc\ncab\n'
  assert tok.decode(data.tokens('validation')) == 'cab\n'


def test_documents_are_encoded_one_by_one_and_closed_by_the_end_id(tmp_path):
  gpt2 = HFTokenizer.from_dir(GPT2)
  (tmp_path / 't.txt').write_text('hello world\nthe end\n')
  data = make_lm_data('files', seq_len=2, tokenizer=gpt2, files=_files(train=str(tmp_path / 't.txt')))
  expected = gpt2.encode('hello world') + [gpt2.eos_id] + gpt2.encode('the end') + [gpt2.eos_id]
  assert data.tokens('train').tolist() == expected and data.vocab_size == gpt2.vocab_size


def test_a_table_among_text_files_gives_its_text_column(tmp_path, wordpiece):
  (tmp_path / 't.tsv').write_text('sentence\tlabel\nthe film\t1\nnothing works\t0\n')
  (tmp_path / 'u.txt').write_text('a warm film\n')
  spec = _files(train=f'{tmp_path}/t.tsv,{tmp_path}/u.txt')
  assert files_lib.documents(spec.train, 'train') == ['the film', 'nothing works', 'a warm film']
  data = make_lm_data('files', seq_len=4, tokenizer=wordpiece, files=spec)
  cls, sep = wordpiece.encode('')   # [CLS] [SEP]: the tokenizer's own policy, per document
  stream = data.tokens('train').tolist()
  assert stream.count(cls) == 3 and stream.count(sep) == 3 and stream[0] == cls


def test_data_dir_placeholder_and_bad_specs(tmp_path):
  (tmp_path / 'd').mkdir()
  (tmp_path / 'd' / 'x.txt').write_text('hi\n')
  assert files_lib.split_specs(_files(train='{data_dir}/d/x.txt'), str(tmp_path)) == {
      'train': f'{tmp_path}/d/x.txt'}
  with pytest.raises(DataError, match='names {data_dir}, but no data directory is set'):
    files_lib.split_specs(_files(train='{data_dir}/d/x.txt'))
  with pytest.raises(DataError, match='needs config.files.train'):
    files_lib.split_specs(_files(validation='x'))
  with pytest.raises(DataError, match=r"files.train=.*'.*nope\*.txt' matches no file"):
    files_lib.expand(f'{tmp_path}/d/x.txt,{tmp_path}/nope*.txt', 'train')
  with pytest.raises(DataError, match="files.unit='para' is not one of"):
    files_lib.documents(str(tmp_path / 'd' / 'x.txt'), 'train', unit='para')


def _tables(tmp_path):
  (tmp_path / 'train.csv').write_text('text,label,id\n"good, really",pos,1\nbad,neg,2\n'
                                      'fine,pos,3\n')
  (tmp_path / 'dev.jsonl').write_text(json.dumps({'text': 'awful', 'label': 'neg'}) + '\n\n' +
                                      json.dumps({'text': 'great', 'label': 'pos'}) + '\n')
  return _files(train=str(tmp_path / 'train.csv'), validation=str(tmp_path / 'dev.jsonl'),
                text_column='text')


def test_tables_csv_and_jsonl_with_named_labels(tmp_path, wordpiece):
  data = text_data.make_text_classification_data('files', None, wordpiece, 8,
                                                  files=_tables(tmp_path), lowercase=False)
  assert data.label_names == ['neg', 'pos'] and data.num_classes == 2
  batch = data.train_batch(0, 3, 0)
  assert sorted(batch['labels'].tolist()) == [0, 1, 1]
  (dev,) = data.eval_batches('validation', 2)
  assert dev['labels'].tolist() == [0, 1]
  row = dev['inputs'][1].tolist()
  assert row[:len(wordpiece.encode('great'))] == wordpiece.encode('great')
  assert set(row[len(wordpiece.encode('great')):]) == {wordpiece.pad_id}


def test_table_errors_name_the_file(tmp_path):
  spec = _tables(tmp_path)
  (tmp_path / 'dev2.jsonl').write_text(json.dumps({'text': 'meh', 'label': 'neutral'}) + '\n')
  with pytest.raises(DataError, match=r"files.validation=.*dev2.jsonl' has label\(s\) \['neutral'\]"):
    text_data._read_files(_files(train=spec.train, validation=str(tmp_path / 'dev2.jsonl'),
                                 text_column='text'), None)
  with pytest.raises(DataError, match=r"train.csv has no column 'sentence' \(its columns: "
                                      r"\['text', 'label', 'id'\]\)"):
    text_data._read_files(_files(train=spec.train), None)
  (tmp_path / 'bad.tsv').write_text('sentence\tlabel\nfine\t\n')
  with pytest.raises(DataError, match=r"bad.tsv line 2: expected a value in each of"):
    files_lib.read_table(str(tmp_path / 'bad.tsv'), 'train', 'sentence', 'label')
  (tmp_path / 'bad.jsonl').write_text('{"text": 1\n')
  with pytest.raises(DataError, match='bad.jsonl line 1 is not JSON'):
    files_lib.column(str(tmp_path / 'bad.jsonl'), 'text')
  (tmp_path / 'x.parquet').write_text('x')
  with pytest.raises(DataError, match='must end in .tsv, .csv or .jsonl'):
    files_lib.read_table(str(tmp_path / 'x.parquet'), 'train', 'a', 'b')


def test_integer_labels_stay_themselves(tmp_path):
  (tmp_path / 't.tsv').write_text('sentence\tlabel\na\t2\nb\t0\n')
  labels, names = files_lib.label_ids({'train': ['2', '0']}, {'train': 't.tsv'})
  assert labels['train'].tolist() == [2, 0] and names == ['0', '1', '2']


def test_validation_holdout_is_fixed_and_keeps_the_own_split_as_dev():
  sentences = [f's{i}' for i in range(20)]
  splits = {'train': (sentences, np.arange(20) % 2), 'validation': (['d'], np.array([1]))}
  a = text_data.hold_out(splits, 5)
  assert len(a['train'][0]) == 15 and len(a['validation'][0]) == 5
  assert sorted(a['train'][0] + a['validation'][0]) == sorted(sentences)
  assert a['dev'] == splits['validation']
  assert text_data.hold_out(splits, 5)['validation'][0] == a['validation'][0]   # fixed draw
  for i, s in enumerate(a['validation'][0]):
    assert a['validation'][1][i] == int(s[1:]) % 2   # labels travel with their sentences
  with pytest.raises(DataError, match='validation_holdout=20 must be between 1'):
    text_data.hold_out(splits, 20)


def test_whole_sentence_holdout_trains_on_nothing_of_a_held_out_sentence(tmp_path):
  """SST's rows are every phrase of every sentence: with whole_sentences, 'validation' is
  whole sentences (no row's span) and no training row is a span of one. The reference is a
  brute-force substring test over padded strings."""
  rng = np.random.default_rng(3)
  words = [f'w{i}' for i in range(12)]
  sentences = [' '.join(rng.choice(words, size=int(rng.integers(4, 9)))) for _ in range(30)]
  rows = list(sentences)
  for s in sentences:                       # phrases of each sentence, as SST's rows are
    w = s.split()
    for _ in range(4):
      i = int(rng.integers(len(w)))
      rows.append(' '.join(w[i:i + int(rng.integers(1, 4))]))
  rows += ['  ' + sentences[0] + ' ', sentences[1]]          # the same text, spaced and repeated
  labels = np.arange(len(rows)) % 2

  def inside(a, b):
    return f' {" ".join(a.split())} ' in f' {" ".join(b.split())} '

  whole = holdout.whole_sentence_rows(rows)
  norm = [' '.join(r.split()) for r in rows]
  expected = sorted({norm.index(t) for i, t in enumerate(norm)
                     if not any(inside(t, u) and t != u for u in norm)})
  assert whole == expected and len(whole) >= 25
  splits = {'train': (rows, labels), 'validation': (['d'], np.array([1]))}
  out = text_data.hold_out(splits, 6, whole_sentences=True)
  held, train = out['validation'][0], out['train'][0]
  assert len(held) == 6 and set(held) <= {rows[i] for i in whole}
  assert not any(inside(r, h) for r in train for h in held)
  assert len(train) == sum(not any(inside(r, h) for h in held) for r in rows)
  assert out['dev'] == splits['validation']
  for s, label in zip(*out['validation']):
    assert label == labels[rows.index(s)]
  with pytest.raises(DataError, match=rf'must be between 1 and the {len(whole)} whole '):
    text_data.hold_out(splits, len(whole), whole_sentences=True)
  long_rows = [' '.join(f'w{j}' for j in range(i, i + 300)) for i in range(3000)]
  with pytest.raises(DataError, match=r'of these 3000 rows \(up to 300 words\) would compare '
                     r'up to 135,450,000 word spans: .* set validation_holdout_whole=False'):
    holdout.whole_sentence_rows(long_rows)   # refused before the work, not minutes into it
  # Pretraining on the same table (files.skip_holdout) reads exactly the training rows.
  (tmp_path / 'train.tsv').write_text(
      'sentence\tlabel\n' + ''.join(f'{r}\t{l}\n' for r, l in zip(rows, labels)))
  (tmp_path / 'more.txt').write_text('other text\n\nmore of it\n')
  spec = f'{tmp_path}/more.txt,{tmp_path}/train.tsv'
  docs = files_lib.documents(spec, 'train', skip_holdout=6)
  assert docs == ['other text', 'more of it'] + list(train)
  assert len(files_lib.documents(spec, 'train')) == 2 + len(rows)
  with pytest.raises(DataError, match=rf'files.skip_holdout={len(whole)} must be between 1'):
    files_lib.documents(spec, 'train', skip_holdout=len(whole))


def test_trained_tokenizers_follow_their_family_policy(tmp_path, wordpiece):
  assert (wordpiece.pad_id, wordpiece.unk_id, wordpiece.mask_id) == (0, 1, 4)
  ids = wordpiece.encode('The Film is a DELIGHT')
  assert wordpiece.id_to_token(ids[0]) == '[CLS]' and wordpiece.id_to_token(ids[-1]) == '[SEP]'
  assert wordpiece.decode(ids) == 'the film is a delight'   # lowercased, specials dropped
  tok, config = tokenizer_tool.train('bpe', SENTENCES, vocab_size=300, min_frequency=1)
  tokenizer_tool.save(tok, config, str(tmp_path / 'bpe'))
  bpe = HFTokenizer.from_dir(str(tmp_path / 'bpe'))
  assert (bpe.pad_id, bpe.bos_id, bpe.eos_id) == (0, 0, 0)
  text = 'Ünïcode  never seen, 日本語 — and spaces '
  assert bpe.decode(bpe.encode(text)) == text   # byte-level: no unknown text, nothing added


def _png(path, size, value):
  from PIL import Image
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)


def test_image_folders_one_per_class(tmp_path):
  from transformer.data.images import make_image_data
  for i in range(6):   # images of any size; classes by folder name
    _png(tmp_path / 'train' / 'cat' / f'{i}.png', (20 + i, 30), 10)
    _png(tmp_path / 'train' / 'dog' / f'{i}.PNG', (40, 16 + i), 240)
  _png(tmp_path / 'val' / 'dog' / 'a.png', (24, 24), 240)
  (tmp_path / 'train' / 'dog' / 'notes.txt').write_text('not an image: skipped')
  files = _files(train=str(tmp_path / 'train'), validation=str(tmp_path / 'val'))
  data = make_image_data('files', None, image_size=8, files=files)
  assert data.class_names == ('cat', 'dog') and data.num_classes == 2 and data.epoch_size == 12
  batch = data.train_batch(0, 4, 0)
  assert batch['images'].shape == (4, 8, 8, 3)
  for image, label in zip(batch['images'], batch['labels']):   # dark cats, bright dogs
    assert (image.mean() > 0) == (label == 1)
  (val,) = data.eval_batches('validation', 2)
  assert val['labels'].tolist()[:1] == [1] and val['weights'].tolist() == [1, 0]
  held = make_image_data('files', None, image_size=8, validation_holdout=3,
                         files=_files(train=str(tmp_path / 'train')))
  assert held.epoch_size == 9 and sum(len(b['labels']) for b in
                                      held.eval_batches('validation', 3)) == 3
  _png(tmp_path / 'val2' / 'bird' / 'a.png', (8, 8), 0)
  with pytest.raises(DataError, match=r"has class folder\(s\) \['bird'\] that the training"):
    make_image_data('files', None, files=_files(train=str(tmp_path / 'train'),
                                                test=str(tmp_path / 'val2')))
  (tmp_path / 'train' / 'cat' / 'broken.jpg').write_bytes(b'\xff\xd8 not really')
  with pytest.raises(DataError, match=r'cat/broken.jpg is not a readable image'):
    make_image_data('files', None, files=files)
  with pytest.raises(DataError, match=r"'.*nowhere' is not a folder"):
    make_image_data('files', None, files=_files(train=str(tmp_path / 'nowhere')))


def test_loss_per_character_counts_each_character_once(tmp_path):
  """Evaluation batches carry the characters of each target token (the offsets of a
  tokenizer.json; one each for characters), so the LM task's nll_per_char compares models
  with different tokenizers: the weighted sum over a split is its length in characters."""
  text = 'The quick brown fox, the lazy dog.\nAnd again: the quick fox!\n' * 3
  tok, config = tokenizer_tool.train('bpe', text.split('\n'), vocab_size=280, min_frequency=1)
  tokenizer_tool.save(tok, config, str(tmp_path / 'bpe'))
  bpe = HFTokenizer.from_dir(str(tmp_path / 'bpe'))
  (tmp_path / 'v.txt').write_text(text)
  files = _files(train=str(tmp_path / 'v.txt'), validation=str(tmp_path / 'v.txt'), unit='file')
  for tok in (bpe, None):
    data = make_lm_data('files', seq_len=5, tokenizer=tok, files=files)
    for stride in (0, 3):
      data.eval_stride = stride
      chars = sum(float((b['target_chars'] * b['weights']).sum())
                  for b in data.eval_batches('validation', 4))
      stream = data.tokens('validation')
      whole, first = (len(data.tokenizer.decode(ids)) for ids in (stream, stream[:1]))
      assert whole >= len(text) and chars == whole - first, (tok, stride)   # all but the first
