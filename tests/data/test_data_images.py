"""Image data: IDX parsing of the real files, batches, augmentations, determinism, errors."""

import gzip
import struct

import jax
import numpy as np
import pytest

from transformer.data import DataError, idx, image_ops, images, randaugment

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # README


@pytest.fixture(scope='module')
def mnist(require_data):
  return images.make_image_data('mnist', require_data('mnist'))


def toy_data(n=10, size=8, channels=3, augment=None, classes=10, **kw):
  """An in-memory source: image k is filled with gray level k * (240 // n); label k % classes."""
  levels = np.arange(n) * (240 // n)
  imgs = np.broadcast_to(levels.astype(np.uint8)[:, None, None, None],
                         (n, size, size, channels)).copy()
  imgs[:, 0, :, :] = 255   # a marker row, to see flips and crops
  split = images.ArraySplit(imgs, np.arange(n) % classes)
  return images.ImageData('toy', {'train': split, 'test': split}, num_classes=classes,
                          image_size=size, num_channels=channels, mean=[0.5] * channels,
                          std=[0.25] * channels, augment=augment or images.Augment(),
                          native_size=size, **kw)


# -- the real files -------------------------------------------------------------------------

def test_mnist_idx_files_give_the_published_counts(mnist):
  assert mnist.num_examples('train') == 60000 and mnist.num_examples('test') == 10000
  assert np.bincount(mnist.labels('train')).tolist() == MNIST_TRAIN_COUNTS
  train = mnist._split('train')
  assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
  assert abs(train.images.mean() - 33.32) < 0.01   # README: mean train pixel 33.32
  assert (mnist.num_classes, mnist.num_channels, mnist.image_size) == (10, 1, 28)


def test_fashion_mnist_is_balanced(data_dir):
  data = images.make_image_data('fashion_mnist', data_dir)
  assert np.bincount(data.labels('train')).tolist() == [6000] * 10
  assert np.bincount(data.labels('test')).tolist() == [1000] * 10
  assert data.class_names[9] == 'Ankle boot'


# -- errors ---------------------------------------------------------------------------------

def _write_idx(path, array, magic_code=0x08, compress=True):
  header = struct.pack('>BBBB', 0, 0, magic_code, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  data = header + array.astype(np.uint8).tobytes()
  (gzip.open if compress else open)(path, 'wb').write(data)


def test_read_idx_roundtrip_and_clear_errors(tmp_path):
  arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  good = tmp_path / 'good-idx3-ubyte.gz'
  _write_idx(good, arr)
  np.testing.assert_array_equal(idx.read_idx(str(good), ndim=3), arr)
  with pytest.raises(DataError, match='expected 0x00000801'):
    idx.read_idx(str(good), ndim=1)

  missing = tmp_path / 'nowhere.gz'
  with pytest.raises(DataError, match=str(missing)):
    idx.read_idx(str(missing))
  not_gzip = tmp_path / 'corrupt.gz'
  not_gzip.write_bytes(b'this is not gzip data at all')
  with pytest.raises(DataError, match=str(not_gzip)):
    idx.read_idx(str(not_gzip))
  bad_magic = tmp_path / 'bad-magic.gz'
  with gzip.open(bad_magic, 'wb') as f:
    f.write(b'\x12\x34\x08\x03' + b'\0' * 16)
  with pytest.raises(DataError, match='magic number 0x12340803'):
    idx.read_idx(str(bad_magic))
  truncated = tmp_path / 'truncated.gz'
  with gzip.open(truncated, 'wb') as f:
    f.write(gzip.decompress(good.read_bytes())[:-5])
  with pytest.raises(DataError, match='truncated'):
    idx.read_idx(str(truncated))


def test_missing_files_name_the_path(tmp_path):
  (tmp_path / 'mnist').mkdir()
  with pytest.raises(DataError, match='mnist/train-images-idx3-ubyte.gz'):
    images.make_image_data('mnist', str(tmp_path))
  # A corrupt file among the real names: the error names that file.
  for name in ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    (tmp_path / 'mnist' / name).write_bytes(b'garbage')
  with pytest.raises(DataError, match='train-images-idx3-ubyte.gz'):
    images.make_image_data('mnist', str(tmp_path))


def test_tfds_not_prepared_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  with pytest.raises(DataError) as e:
    images.make_image_data('cifar10', None, tfds_data_dir=str(tmp_path))
  message = str(e.value)
  assert f"TFDS dataset 'cifar10' (splits ['train', 'test']) could not be read from {tmp_path}" \
      in message
  assert f'tfds build cifar10 --file_format=array_record --data_dir={tmp_path}' in message
  assert f'tfds convert_format --dataset_dir={tmp_path}/cifar10' in message
  assert 'pip install tensorflow-cpu==' in message


def test_tfds_sources_are_decoded_into_memory(monkeypatch):
  """The TFDS path (tfds.data_source stubbed with records shaped like TFDS's)."""
  import tensorflow_datasets as tfds
  rng = np.random.default_rng(0)
  fake = {s: [{'image': rng.integers(0, 256, (28, 28, 1), dtype=np.uint8), 'label': i % 10}
              for i in range(n)] for s, n in (('train', 30), ('test', 7))}
  monkeypatch.delenv('TRANSFORMER_DATA_DIR', raising=False)
  monkeypatch.setattr(tfds, 'data_source', lambda name, split, **kw: fake[split])
  data = images.make_image_data('fashion_mnist', None)
  assert data.num_examples('train') == 30 and data.labels('test').tolist() == list(range(7))
  np.testing.assert_array_equal(data._split('train').images[3], fake['train'][3]['image'])
  assert sum(b['weights'].sum() for b in data.eval_batches('test', 4)) == 7


# -- batches --------------------------------------------------------------------------------

def test_eval_counts_every_example_exactly_once(mnist):
  labels, weights, n_batches = [], 0.0, 0
  for b in mnist.eval_batches('test', 768):
    assert b['images'].shape == (768, 28, 28, 1) and b['images'].dtype == np.float32
    real = b['weights'] > 0
    assert real.all() or not real[real.argmin():].any()   # padding only at the end
    labels.append(b['labels'][real])
    weights += b['weights'].sum()
    n_batches += 1
  assert n_batches == 14 and weights == 10000   # 13 * 768 + 16: no dropped remainder
  np.testing.assert_array_equal(np.concatenate(labels), mnist.labels('test'))
  # Two hosts read disjoint halves of each batch that together are the whole batch.
  halves = [list(mnist.eval_batches('test', 768, shard=(i, 2))) for i in range(2)]
  whole = list(mnist.eval_batches('test', 768))
  for h0, h1, w in zip(*halves, whole):
    for k in w:
      np.testing.assert_array_equal(np.concatenate([h0[k], h1[k]]), w[k])


def test_train_batches_are_epoch_shuffled():
  data = toy_data(n=10)
  seen = np.concatenate([data.train_batch(s, 5, seed=3)['labels'] for s in range(2)])
  assert sorted(seen.tolist()) == list(range(10))               # epoch 0: each once
  seen = np.concatenate([data.train_batch(s, 5, seed=3)['labels'] for s in range(2, 4)])
  assert sorted(seen.tolist()) == list(range(10))               # epoch 1: each once
  a = data.train_batch(0, 10, seed=3)['labels']
  assert a.tolist() != data.train_batch(1, 10, seed=3)['labels'].tolist()   # reshuffled
  assert a.tolist() != list(range(10))


ALL_AUGMENTS = images.Augment(crop='inception', flip=True, randaugment_layers=2,
                              randaugment_magnitude=15, mixup=0.5, inception_min_area=0.3)


@pytest.mark.parametrize('augment', [
    images.Augment(),
    images.Augment(crop='random', crop_padding=2, flip=True),
    ALL_AUGMENTS,
], ids=['none', 'crop_flip', 'inception_randaug_mixup'])
def test_train_batch_is_a_pure_function_of_seed_and_step_and_splits_across_hosts(augment):
  data, again = toy_data(n=24, augment=augment), toy_data(n=24, augment=augment)
  b = data.train_batch(7, 8, seed=1)
  for k, v in again.train_batch(7, 8, seed=1).items():   # a fresh source (a resumed run)
    np.testing.assert_array_equal(v, b[k])
  assert not np.array_equal(data.train_batch(8, 8, seed=1)['images'], b['images'])
  halves = [data.train_batch(7, 8, seed=1, shard=(i, 2)) for i in range(2)]
  for k in b:
    np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), b[k])


@pytest.mark.parametrize('augment', [
    images.Augment(crop='random', crop_padding=2),
    images.Augment(crop='random', crop_padding=3, flip=True),
    images.Augment(crop='inception', inception_min_area=0.2),
    images.Augment(randaugment_layers=3, randaugment_magnitude=20),
], ids=['crop', 'crop_flip', 'inception', 'randaugment'])
def test_augmentations_keep_shapes_and_label_order(augment):
  data = toy_data(n=16, size=12, augment=augment, classes=16)
  plain = toy_data(n=16, size=12, classes=16)
  b, p = data.train_batch(3, 16, seed=0), plain.train_batch(3, 16, seed=0)
  assert b['images'].shape == (16, 12, 12, 3) and b['images'].dtype == np.float32
  np.testing.assert_array_equal(b['labels'], p['labels'])   # same examples, same order
  # Each toy image is one gray level k*15 (plus a marker row and zero padding), so the
  # most common value of an augmented image still identifies its example.
  if augment.randaugment_layers == 0:
    for img, label in zip(b['images'], b['labels']):
      values, counts = np.unique(np.rint(img[..., 0] * 0.25 * 255 + 0.5 * 255), return_counts=True)
      assert values[counts.argmax()] == label * 15
  assert not np.array_equal(b['images'], p['images'])


def test_vectorized_crop_flip_equals_the_per_example_augmentation():
  data = toy_data(n=16, size=8, augment=images.Augment(crop='random', crop_padding=2, flip=True))
  b = data.train_batch(5, 16, seed=2)
  rows = np.arange(16)
  idx = data.train_indices(5, 16, 2, rows)
  ref = [data.augment_image(data._split('train').images[i], np.random.default_rng((2, 5, r, 1)))
         for i, r in zip(idx, rows)]
  np.testing.assert_array_equal(data.preprocess.normalize(np.stack(ref)), b['images'])


def test_eval_preprocessing_is_the_formula_and_survives_a_workdir_round_trip():
  """Evaluation input = (pixel / 255 - mean) / std per channel after the central crop; the
  plain values a workdir keeps rebuild the same preprocessing (KeptImages)."""
  import json
  p = images.EvalPreprocessing(image_size=4, num_channels=3, mean=(0.5, 0.4, 0.3),
                               std=(0.2, 0.25, 0.3), native_size=None, eval_crop_fraction=0.5)
  assert images.EvalPreprocessing.from_dict(json.loads(json.dumps(p.to_dict()))) == p
  img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)   # resize_small: as is
  want = (img[2:6, 2:6].astype(np.float64) / 255 - np.array(p.mean)) / np.array(p.std)
  np.testing.assert_allclose(p.prepare([img])[0], want, rtol=1e-5, atol=1e-5)
  kept = images.KeptImages(p.to_dict(), ['a', 'b'])
  np.testing.assert_array_equal(kept.prepare([img]), p.prepare([img]))
  with pytest.raises(DataError, match='no training images'):
    kept.train_batch(0, 2, 0)


def test_mixup_mixes_each_image_with_the_previous_row():
  mixed = toy_data(n=16, augment=images.Augment(crop='random', flip=True, mixup=0.4))
  plain = toy_data(n=16, augment=images.Augment(crop='random', flip=True))
  b, p = mixed.train_batch(2, 8, seed=0), plain.train_batch(2, 8, seed=0)
  lam = b['mix_ratio'][0]
  assert 0.5 <= lam <= 1 and np.all(b['mix_ratio'] == lam)
  np.testing.assert_array_equal(b['labels'], p['labels'])
  np.testing.assert_array_equal(b['mix_labels'], np.roll(p['labels'], 1))
  want = lam * p['images'] + (1 - lam) * np.roll(p['images'], 1, 0)
  np.testing.assert_allclose(b['images'], want, rtol=1e-6, atol=1e-6)
  assert 'mix_labels' not in next(mixed.eval_batches('test', 8))


def test_prefetching_source_gives_the_same_batches():
  aug = images.Augment(crop='inception', flip=True, randaugment_layers=1)
  threaded = toy_data(n=16, augment=aug, num_workers=2, prefetch=True)
  plain = toy_data(n=16, augment=aug)
  try:
    for step in (0, 1, 2, 5):   # in order, then a jump (as after a resume)
      for k, v in threaded.train_batch(step, 8, seed=4).items():
        np.testing.assert_array_equal(v, plain.train_batch(step, 8, seed=4)[k])
  finally:
    threaded.close()


@pytest.mark.slow
def test_worker_processes_give_the_batches_of_the_in_process_path():
  """grain worker processes make the same (seed, step) batches, also after a jump (a resume)."""
  a = images.Augment(crop='random', crop_padding=2, flip=True, randaugment_layers=2,
                     randaugment_magnitude=9)
  plain = toy_data(n=13, augment=a)
  workers = toy_data(n=13, augment=a, worker_processes=2)
  try:
    for step in [0, 1, 2, 3, 7, 8]:   # 7: not the next step, so the workers restart there
      got, want = workers.train_batch(step, 4, seed=3), plain.train_batch(step, 4, seed=3)
      assert set(got) == set(want)
      for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=f'step {step} {k}')
  finally:
    workers.close()
  with pytest.raises(ValueError, match='worker_processes must be >= 0'):
    toy_data(worker_processes=-1)


# -- image ops ------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(randaugment.RANDAUGMENT_OPS))
@pytest.mark.parametrize('channels', [1, 3])
def test_randaugment_ops_keep_shape_and_dtype(name, channels):
  img = np.random.default_rng(0).integers(0, 256, (20, 24, channels), dtype=np.uint8)
  out = randaugment.apply_randaugment_op(img, name, 10, np.random.default_rng(1))
  assert out.shape == img.shape and out.dtype == np.uint8


def test_randaugment_ops_at_neutral_settings_are_the_identity():
  img = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
  ra = randaugment
  for op, arg in [(ra.rotate, 0.0), (ra.shear_x, 0.0), (ra.shear_y, 0.0), (ra.translate_x, 0),
                  (ra.brightness, 1.0), (ra.color, 1.0), (ra.contrast, 1.0), (ra.sharpness, 1.0),
                  (ra.solarize, 256), (ra.posterize, 8)]:
    np.testing.assert_array_equal(op(img, arg), img, err_msg=op.__name__)
  np.testing.assert_array_equal(randaugment.invert(randaugment.invert(img)), img)
  np.testing.assert_array_equal(randaugment.rotate(img[:9, :9], 90), np.rot90(img[:9, :9], -1))
  np.testing.assert_array_equal(randaugment.translate_x(img, 2)[:, 2:], img[:, :-2])
  big = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
  low_contrast = (100 + big // 12).astype(np.uint8)           # values 100..121
  eq = randaugment.equalize(low_contrast)
  assert eq.min() < 20 and eq.max() > 230                     # spread over the range
  ac = randaugment.autocontrast(low_contrast)
  assert ac.min() == 0 and ac.max() == 255


def test_resize_bilinear_matches_jax_and_keeps_constants():
  img = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
  ours = image_ops.resize_bilinear(img, 10, 21)
  ref = jax.image.resize(img, (10, 21, 3), method='bilinear')
  np.testing.assert_allclose(ours, np.asarray(ref), atol=1e-5)
  const = np.full((37, 50, 3), 77, np.uint8)
  assert (image_ops.resize_bilinear(const, 224, 224) == 77).all()
  assert image_ops.resize_small(const, 20).shape == (20, 27, 3)
  assert image_ops.central_crop(image_ops.resize_small(const, 20), 20).shape == (20, 20, 3)


def test_inception_crop_box_is_inside_the_image_and_in_the_area_range():
  rng = np.random.default_rng(0)
  for _ in range(200):
    top, left, h, w = image_ops.inception_crop_box(30, 50, rng, 0.1, 0.6)
    assert 0 <= top and top + h <= 30 and 0 <= left and left + w <= 50
    assert h * w == 30 * 50 or 0.08 * 1500 <= h * w <= 0.65 * 1500


def test_augment_config_rejects_bad_values():
  with pytest.raises(ValueError, match="crop='center'"):
    images.Augment(crop='center')
  with pytest.raises(ValueError, match='Unknown augment field'):
    images.Augment.from_config({'cutmix': 1.0})
  assert images.Augment.from_config(images.augment_config(flip=True)).flip
