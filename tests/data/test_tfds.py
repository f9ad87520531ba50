"""TFDS datasets by name, for real: small datasets written by TFDS GeneratorBasedBuilders in
array_record (no TensorFlow, no network, no monkeypatching), then each family trains a few steps
from them by name with config.tfds_data_dir; and the error when a dataset is not there.

The builders reuse the stock datasets' names, versions and features, so the stock builders read
them as they would the real thing; the contents are real data (slices of shared/data)."""

import gzip
import io
import os

import numpy as np
import pytest

from configs import lm_shakespeare_char, vit_mnist, wmt14_ende_base
from tests import helpers
from tests.tasks.test_translation import TINY as TINY_TRANSLATION
from transformer import engine
from transformer.data import DataError, images, tfds_reader

tfds = pytest.importorskip('tensorflow_datasets')


def _builder(name: str, config: str | None, features, splits: dict):
  """A GeneratorBasedBuilder class standing in for stock dataset `name` with these splits."""
  if name == 'wmt14_translate':   # not in tfds's lazy registry without importing its module
    import tensorflow_datasets.translate.wmt14  # noqa: F401
  stock = tfds.builder_cls(name)

  if config:
    (stock_config,) = [c for c in stock.BUILDER_CONFIGS if c.name == config]
    version = stock_config.version
  else:
    version = stock.VERSION

  class StandIn(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = version
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config, version=version)] if config else []

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
      return {s: self._generate_examples(rows) for s, rows in splits.items()}

    def _generate_examples(self, rows):
      for i, row in enumerate(rows):
        yield i, row

  StandIn.name = name
  return StandIn


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory, require_data):
  data_dir = require_data()
  d = str(tmp_path_factory.mktemp('tfds'))

  with open(os.path.join(data_dir, 'tiny_shakespeare', 'input.txt'), encoding='utf-8') as f:
    text = f.read()[:24000]
  _builder('tiny_shakespeare', None, tfds.features.FeaturesDict({'text': tfds.features.Text()}),
           {'train': [{'text': text[:20000]}], 'validation': [{'text': text[20000:22000]}],
            'test': [{'text': text[22000:]}]})(data_dir=d, file_format='array_record'
                                              ).download_and_prepare()

  def pairs(split, n):
    out = {}
    for lang in ('de', 'en'):
      with gzip.open(os.path.join(data_dir, 'multi30k', f'{split}.{lang}.gz'), 'rt',
                     encoding='utf-8') as f:
        out[lang] = [next(f).strip() for _ in range(n)]
    return [{'de': de, 'en': en} for de, en in zip(out['de'], out['en'])]
  _builder('wmt14_translate', 'de-en', tfds.features.FeaturesDict(
      {'de': tfds.features.Text(), 'en': tfds.features.Text()}),
      {'train': pairs('train', 400), 'validation': pairs('val', 40),
       'test': pairs('test_2016_flickr', 40)})(config='de-en', data_dir=d,
                                                 file_format='array_record'
                                                 ).download_and_prepare()

  def png(image):   # TFDS encodes arrays with TensorFlow; encoded bytes it takes as they are
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buf, format='PNG')
    return buf.getvalue()

  def digits(split, n):
    x, y = images.load_idx_split(data_dir, 'mnist', split)
    return [{'image': png(x[i]), 'label': int(y[i])} for i in range(n)]
  _builder('mnist', None, tfds.features.FeaturesDict(
      {'image': tfds.features.Image(shape=(28, 28, 1)),
       'label': tfds.features.ClassLabel(num_classes=10)}),
      {'train': digits('train', 256), 'test': digits('test', 64)})(
          data_dir=d, file_format='array_record').download_and_prepare()
  return d


@pytest.fixture
def no_raw_data(monkeypatch):
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)


def _train(config, workdir):
  out = engine.train_and_evaluate(config, workdir)
  assert out['step'] == config.num_train_steps and np.isfinite(out['loss'])
  return out


@pytest.mark.slow
def test_lm_trains_from_tfds_by_name(tfds_dir, no_raw_data, tmp_path):
  c = helpers.tiny_config(lm_shakespeare_char, dict(d_model=16, num_heads=2, d_ff=32,
                                                    num_decoder_layers=1),
                          data_dir='', tfds_data_dir=tfds_dir, seq_len=16, batch_size=4,
                          eval_batch_size=8, eval_max_batches=2, num_train_steps=2,
                          warmup_steps=1, log_every_steps=1)
  _train(c, str(tmp_path))
  (record,) = helpers.records(str(tmp_path), 'validation')
  assert record['tokens'] == 2 * 8 * 16          # eval_max_batches x rows x seq_len


@pytest.mark.slow
def test_translation_trains_from_tfds_by_name(tfds_dir, no_raw_data, tmp_path):
  c = helpers.tiny_config(wmt14_ende_base, **{**TINY_TRANSLATION, 'data_dir': '',
                                              'tfds_data_dir': tfds_dir, 'num_train_steps': 2,
                                              'bucket_boundaries': (24,)})
  _train(c, str(tmp_path))
  assert [r['step'] for r in helpers.records(str(tmp_path), 'newstest2013')] == [2]
  from transformer import tasks
  src, ref = tasks.make_task(c, str(tmp_path)).data.texts('newstest2014')
  assert len(src) == 40 and src[0].startswith('A ') and ref[0].startswith('Ein')  # en -> de


@pytest.fixture(scope='module')
def shared_dir(require_data):
  """The raw data folder, looked up before no_raw_data unsets $TRANSFORMER_DATA_DIR."""
  return require_data('mnist')


@pytest.mark.slow
def test_classification_trains_from_tfds_by_name(tfds_dir, shared_dir, no_raw_data, tmp_path):
  c = helpers.tiny_config(vit_mnist, dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1),
                          data_dir='', tfds_data_dir=tfds_dir, validation_holdout=0,
                          batch_size=16, eval_batch_size=64, eval_split='test',
                          num_train_steps=2, warmup_steps=1, log_every_steps=1)
  _train(c, str(tmp_path))
  assert [r['step'] for r in helpers.records(str(tmp_path), 'test')] == [2]
  # The images and labels are the real ones, decoded by TFDS's own reader.
  data = images.make_image_data('mnist', None, tfds_data_dir=tfds_dir)
  x, y = images.load_idx_split(shared_dir, 'mnist', 'test')
  assert data.num_examples('train') == 256 and data.num_examples('test') == 64
  # TFDS writes examples in its own (hashed) order: compare them as (image, label) pairs.
  want = {x[i].tobytes(): int(y[i]) for i in range(64)}
  got = [data._split('test').example(i) for i in range(64)]
  assert sorted(want.values()) == sorted(int(label) for _, label in got)
  assert all(want[image.tobytes()] == int(label) for image, label in got)


def test_a_dataset_that_is_not_there_names_the_three_ways(tmp_path, no_raw_data):
  with pytest.raises(DataError) as e:
    tfds_reader.open_splits('tiny_shakespeare', ('train',), str(tmp_path),
                            raw_hint='tiny_shakespeare/input.txt')
  message = str(e.value)
  assert f'could not be read from {tmp_path}' in message
  assert f'tfds build tiny_shakespeare --file_format=array_record --data_dir={tmp_path}' in message
  assert 'raw files: set --config.data_dir' in message and 'tiny_shakespeare/input.txt' in message
