"""Image-classification data: MNIST, Fashion-MNIST, CIFAR-10 and ImageNet (ILSVRC-2012).

    data = make_image_data('mnist', data_dir, augment=Augment(crop='random', crop_padding=2))
    batch = data.train_batch(step, batch_size=128, seed=0, shard=(host, num_hosts))
    for batch in data.eval_batches('test', batch_size=1000): ...

Every batch is a dict of NumPy arrays:
  'images'  float32 [B, S, S, C]: pixels / 255, minus the dataset mean, over its std
  'labels'  int32 [B]
  'weights' float32 [B]: 1 for a real example, 0 for the padding of the last eval batch
and, in training batches when mixup is on (`Augment.mixup > 0`):
  'mix_labels' int32 [B]: the label of the example each image was mixed with
  'mix_ratio'  float32 [B]: the weight lam of the image's own label (lam >= 0.5); the
      target distribution is lam * onehot(labels) + (1 - lam) * onehot(mix_labels).
S is the model resolution (`image_size`, default: the dataset's own size, 224 for
ImageNet) and C the number of channels (1 for the MNISTs, 3 otherwise).

Where the data comes from (`make_image_data`):
* `data_dir` set (or $TRANSFORMER_DATA_DIR): raw files laid out as shared/data,
  i.e. mnist/ and fashion_mnist/ with the original IDX .gz files
  (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz,
  t10k-labels-idx1-ubyte.gz), parsed here with NumPy (`read_idx`, magic numbers
  checked). CIFAR-10 and ImageNet have no raw-file reader: use TFDS.
* 'files': your own images by path (`config.files`, data/files.py): a folder per
  split with a subfolder of image files per class (the ImageNet layout), read
  lazily with pillow as RGB, resized and cropped as ImageNet's are, and
  normalized to [-1, 1].
* otherwise TFDS by name through `tfds.data_source` (array_record; no TensorFlow
  needed to read, but decoding images needs pillow or opencv-python). The small
  datasets are decoded into memory once; ImageNet is read lazily, example by
  example, with `num_workers` threads and the next training batch prefetched in
  the background.
Splits: 'train' and 'test' (imagenet2012: 'train' and 'validation'); with
`validation_holdout=N` the last N training examples are the 'validation' split
and are left out of 'train'.

Training batches are a pure function of (seed, step): step s takes global
examples s*B .. s*B+B-1 of the concatenated epochs, epoch e visiting the train
split in the order `np.random.default_rng((seed, e)).permutation(N)` (a batch may
straddle two epochs), and global row r of step s is augmented with its own
generator `np.random.default_rng((seed, s, r, 1))`; the mixup ratio of step s
comes from `default_rng((seed, s, 2))`. So resuming at step s, or splitting the
batch among hosts (`shard`), gives exactly the pixels of an uninterrupted
single-host run. Evaluation batches cover a split in order, every example once;
the last batch is padded with weight-0 rows.

Augmentation (`Augment`, from the experiment's `config.augment`), applied to
uint8 images in this order:
1. crop: 'none'; 'random' (zero-pad by `crop_padding` pixels on each side, then a
   random S x S crop: the CIFAR recipe); or 'inception' (a random box of
   `inception_min_area`..`inception_max_area` of the image area and aspect ratio
   in [3/4, 4/3], up to 10 tries, else the whole image; resized to S x S
   bilinearly: big_vision's `inception_crop`). Images not cropped to S are resized
   to S (fixed-size datasets) or, for variable-size ones (ImageNet), resized so
   the shorter side is S / `eval_crop_fraction` and center-cropped to S, which is
   also the evaluation preprocessing (big_vision's resize_small(256)|central_crop(224)).
2. flip: a horizontal flip with probability 1/2 (not for digits).
3. RandAugment(`randaugment_layers`, `randaugment_magnitude`): the 16 ops of the
   TPU EfficientNet / big_vision list, in NumPy (`transformer.data.randaugment`).
4. normalization to float32, then mixup over the batch (big_vision's: one
   lam ~ Beta(a, a) per batch, lam = max(lam, 1 - lam), global row r mixed with
   global row r - 1, wrapping around).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from transformer.data import files as files_lib
from transformer.data import tfds_reader
from transformer.data.idx import read_idx
from transformer.data.image_ops import (central_crop, inception_crop_box, pad_random_crop,
                                        resize_bilinear, resize_small)
from transformer.data.randaugment import randaugment
from transformer.data.order import EpochOrder
from transformer.data import Batch, DataError, host_slice, resolve_data_dir

DATASETS = ('mnist', 'fashion_mnist', 'cifar10', 'imagenet2012')
CROPS = ('none', 'random', 'inception')

_AUG_STREAM, _MIX_STREAM = 1, 2   # last element of the per-row / per-batch seeds


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  num_channels: int
  image_size: int | None          # None: images vary in size (ImageNet)
  splits: tuple[str, ...]
  mean: tuple[float, ...]         # of pixels / 255, per channel
  std: tuple[float, ...]
  raw_dir: str | None             # folder under data_dir with IDX files (None: TFDS only)
  class_names: tuple[str, ...] | None = None


INFO: dict[str, DatasetInfo] = {
    'mnist': DatasetInfo('mnist', 10, 1, 28, ('train', 'test'), (0.1307,), (0.3081,), 'mnist',
                         tuple(str(i) for i in range(10))),
    'fashion_mnist': DatasetInfo(
        'fashion_mnist', 10, 1, 28, ('train', 'test'), (0.2860,), (0.3530,), 'fashion_mnist',
        ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
         'Bag', 'Ankle boot')),
    'cifar10': DatasetInfo(
        'cifar10', 10, 3, 32, ('train', 'test'), (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616), None,
        ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
         'truck')),
    # big_vision's value_range(-1, 1).
    'imagenet2012': DatasetInfo('imagenet2012', 1000, 3, None, ('train', 'validation'),
                                (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), None),
}
IMAGENET_DEFAULT_SIZE = 224
IDX_FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
             'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}


# ----------------------------------------------------------------------------- config

@dataclasses.dataclass(frozen=True)
class Augment:
  """Training-time augmentation; see the module docstring for what each field does."""
  crop: str = 'none'                  # 'none' | 'random' | 'inception'
  crop_padding: int = 4               # 'random': zero padding on each side, in pixels
  inception_min_area: float = 0.05    # 'inception': fraction of the image area
  inception_max_area: float = 1.0
  flip: bool = False                  # random horizontal flip
  randaugment_layers: int = 0         # RandAugment N (0: off)
  randaugment_magnitude: float = 10.0  # RandAugment M, 0..30 (big_vision uses 10-20)
  mixup: float = 0.0                  # Beta(a, a) parameter a (0: off)
  eval_crop_fraction: float = 0.875   # variable-size images: central crop of S / this

  def __post_init__(self):
    problems = []
    if self.crop not in CROPS:
      problems.append(f'crop={self.crop!r} is not one of {CROPS}')
    if self.crop_padding < 0:
      problems.append(f'crop_padding={self.crop_padding} must be >= 0')
    if not 0 < self.inception_min_area <= self.inception_max_area <= 1:
      problems.append(f'need 0 < inception_min_area ({self.inception_min_area}) <= '
                      f'inception_max_area ({self.inception_max_area}) <= 1')
    if self.randaugment_layers < 0 or not 0 <= self.randaugment_magnitude <= 30:
      problems.append(f'randaugment_layers={self.randaugment_layers} must be >= 0 and '
                      f'randaugment_magnitude={self.randaugment_magnitude} in [0, 30]')
    if self.mixup < 0:
      problems.append(f'mixup={self.mixup} must be >= 0')
    if not 0 < self.eval_crop_fraction <= 1:
      problems.append(f'eval_crop_fraction={self.eval_crop_fraction} must be in (0, 1]')
    if problems:
      raise ValueError('Invalid augment config: ' + '; '.join(problems))

  @classmethod
  def from_config(cls, d: Mapping[str, Any] | None) -> Augment:
    """From `config.augment` (a ConfigDict or dict; missing fields keep their defaults)."""
    values = dict(d.to_dict() if hasattr(d, 'to_dict') else (d or {}))
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f'Unknown augment field(s) {unknown}; known: {sorted(known)}')
    return cls(**values)

  @property
  def per_example(self) -> bool:
    """Whether any per-example random op is on (else batches are plain slices)."""
    return self.crop != 'none' or self.flip or self.randaugment_layers > 0


def augment_config(**overrides):
  """`config.augment` for an experiment config: every `Augment` field, defaults overridden."""
  import ml_collections
  return ml_collections.ConfigDict(dataclasses.asdict(Augment(**overrides)))


def load_idx_split(data_dir: str, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, 28, 28, 1], labels int32 [N]) of an MNIST-style dataset's split."""
  folder = os.path.join(data_dir, INFO[dataset].raw_dir)
  image_file, label_file = IDX_FILES[split]
  paths = [os.path.join(folder, image_file), os.path.join(folder, label_file)]
  missing = [p for p in paths if not os.path.exists(p)]
  if missing:
    raise DataError(f'Dataset {dataset!r} not found: missing {missing}. Put the original IDX '
                    f'.gz files under {folder}/ (layout of shared/data/README.md), or unset '
                    'data_dir and $TRANSFORMER_DATA_DIR to read it from TFDS by name.')
  images, labels = read_idx(paths[0], ndim=3), read_idx(paths[1], ndim=1)
  if len(images) != len(labels):
    raise DataError(f'{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels')
  if labels.size and labels.max() >= INFO[dataset].num_classes:
    raise DataError(f'{paths[1]} has label {labels.max()}; {dataset} has '
                    f'{INFO[dataset].num_classes} classes')
  return images.astype(np.uint8)[..., None], labels.astype(np.int32)


# ----------------------------------------------------------------------------- splits

class ArraySplit:
  """A split held in memory: images uint8 [N, H, W, C], labels int32 [N]."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(labels):
      raise ValueError(f'need uint8 images [N, H, W, C] and N labels; got {images.shape} '
                       f'{images.dtype} and {np.shape(labels)}')
    self.images, self.labels = images, np.asarray(labels, np.int32)

  def __len__(self) -> int:
    return len(self.labels)

  def example(self, i: int) -> tuple[np.ndarray, int]:
    return self.images[i], int(self.labels[i])


class RecordSplit:
  """A split read lazily from a random-access source of {'image': HWC uint8, 'label': int}."""

  def __init__(self, source, image_key: str = 'image', label_key: str = 'label'):
    self.source, self.image_key, self.label_key = source, image_key, label_key

  def __len__(self) -> int:
    return len(self.source)

  def example(self, i: int) -> tuple[np.ndarray, int]:
    record = _decode_record(self.source, int(i))
    image = np.asarray(record[self.image_key])
    if image.ndim == 2:
      image = image[..., None]
    return image.astype(np.uint8, copy=False), int(record[self.label_key])

  @property
  def labels(self) -> np.ndarray:
    return np.array([self.example(i)[1] for i in range(len(self))], np.int32)


class FileSplit:
  """A split of image files read lazily (pillow, as RGB) with their labels."""

  def __init__(self, paths: Sequence[str], labels: np.ndarray):
    self.paths, self.labels = list(paths), np.asarray(labels, np.int32)

  def __len__(self) -> int:
    return len(self.paths)

  def example(self, i: int) -> tuple[np.ndarray, int]:
    from PIL import Image
    try:
      with Image.open(self.paths[i]) as im:
        image = np.asarray(im.convert('RGB'), np.uint8)
    except Exception as e:   # a file damaged after the check at the start
      raise DataError(f'{self.paths[i]} cannot be decoded ({type(e).__name__}: {e})') from None
    return image, int(self.labels[i])


class SubsetSplit:
  """Examples [start, stop) of another split (a validation split held out of train)."""

  def __init__(self, split, start: int, stop: int):
    self.split, self.start, self.stop = split, start, stop

  def __len__(self) -> int:
    return self.stop - self.start

  def example(self, i: int) -> tuple[np.ndarray, int]:
    if not 0 <= i < len(self):
      raise IndexError(i)
    return self.split.example(self.start + int(i))

  @property
  def labels(self) -> np.ndarray:
    return np.asarray(self.split.labels[self.start:self.stop], np.int32)


def hold_out(splits: dict, num: int) -> dict:
  """'train' without its last `num` examples, and those as 'validation' (fixed, not shuffled)."""
  if 'validation' in splits:
    raise DataError("validation_holdout: the dataset has its own 'validation' split; "
                    'set validation_holdout=0')
  train = splits['train']
  if not 0 < num < len(train):
    raise DataError(f'validation_holdout={num} must be between 1 and the {len(train)} training '
                    'examples - 1')
  cut = len(train) - num
  if isinstance(train, ArraySplit):   # views, no copy
    held = {'train': ArraySplit(train.images[:cut], train.labels[:cut]),
            'validation': ArraySplit(train.images[cut:], train.labels[cut:])}
  else:
    held = {'train': SubsetSplit(train, 0, cut), 'validation': SubsetSplit(train, cut, len(train))}
  return {**splits, **held}


def _decode_record(source, i: int):
  try:
    return source[i]
  except ImportError as e:   # tfds decodes images with opencv or pillow
    raise DataError(f'Decoding TFDS images needs pillow or opencv-python ({e}). '
                    'Install one: pip install pillow') from e


# ----------------------------------------------------------------------------- the source

@dataclasses.dataclass(frozen=True)
class EvalPreprocessing:
  """What evaluation does to an image before the model sees it: fit it to S x S, then scale
  to [0, 1] and standardize per channel. `ImageData` evaluates with it, and a trained
  workdir keeps it as plain values (`to_dict`) so that classifying image files needs no
  dataset (`KeptImages`)."""
  image_size: int
  num_channels: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  native_size: int | None = None       # fixed-size datasets: resized directly
  eval_crop_fraction: float = 0.875    # other images: resize_small, then a central crop

  def fit(self, image: np.ndarray) -> np.ndarray:
    """Resizes to S x S: directly for fixed-size datasets, else resize_small + central crop."""
    s = self.image_size
    if image.shape[:2] == (s, s):
      return image
    if self.native_size is not None:
      return resize_bilinear(image, s, s)
    return central_crop(resize_small(image, max(s, round(s / self.eval_crop_fraction))), s)

  def normalize(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S, C] -> float32, scaled to [0, 1] and standardized per channel."""
    mean = np.asarray(self.mean, np.float32).reshape(1, 1, 1, -1)
    std = np.asarray(self.std, np.float32).reshape(1, 1, 1, -1)
    return ((images.astype(np.float32) * np.float32(1 / 255)) - mean) / std

  def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 HWC images of any size -> the model's float32 input [N, S, S, C]."""
    return self.normalize(np.stack([self.fit(np.asarray(i, np.uint8)) for i in images]))

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d.update(mean=list(self.mean), std=list(self.std))
    return d

  @classmethod
  def from_dict(cls, d: Mapping) -> 'EvalPreprocessing':
    return cls(image_size=int(d['image_size']), num_channels=int(d['num_channels']),
               mean=tuple(float(v) for v in d['mean']), std=tuple(float(v) for v in d['std']),
               native_size=d.get('native_size'),
               eval_crop_fraction=float(d['eval_crop_fraction']))


class ImageData:
  """An image-classification data source (the DataSource protocol); see the module doc.

  Attributes: `name`, `num_classes`, `num_channels`, `image_size` (S), `splits`,
  `augment`, `class_names`, `epoch_size` (train examples), `tokenizer` (None), `preprocess`
  (the evaluation preprocessing: `EvalPreprocessing`).
  """
  tokenizer = None

  def __init__(self, name: str, splits: Mapping[str, ArraySplit | RecordSplit], *,
               num_classes: int, image_size: int, num_channels: int,
               mean: Sequence[float], std: Sequence[float], augment: Augment = Augment(),
               native_size: int | None = None, class_names: Sequence[str] | None = None,
               num_workers: int = 0, prefetch: bool | None = None, worker_processes: int = 0):
    if 'train' not in splits:
      raise ValueError(f'{name}: an image source needs a train split, got {list(splits)}')
    if image_size <= 0:
      raise ValueError(f'image_size must be > 0, got {image_size}')
    self.name, self.num_classes, self.image_size = name, num_classes, image_size
    self.num_channels, self.augment = num_channels, augment
    self.splits = tuple(splits)
    self._splits = dict(splits)
    self.class_names = tuple(class_names or (str(i) for i in range(num_classes)))
    self.preprocess = EvalPreprocessing(
        image_size, num_channels, tuple(float(v) for v in np.ravel(mean)),
        tuple(float(v) for v in np.ravel(std)), native_size, augment.eval_crop_fraction)
    self.epoch_size = len(self._splits['train'])
    if self.epoch_size == 0:
      raise DataError(f'{name}: the train split is empty')
    self._order = EpochOrder(self.epoch_size)   # thread-safe: the prefetcher shares it
    self._pool = (concurrent.futures.ThreadPoolExecutor(num_workers, 'images')
                  if num_workers > 0 else None)
    prefetch = num_workers > 0 if prefetch is None else prefetch
    self._prefetcher = (concurrent.futures.ThreadPoolExecutor(1, 'images-prefetch')
                        if prefetch else None)
    self._prefetched: dict[tuple, concurrent.futures.Future] = {}
    if worker_processes < 0:
      raise ValueError(f'worker_processes must be >= 0, got {worker_processes}')
    self.worker_processes = worker_processes
    self._workers = None     # (batch_size, seed, shard, next step, grain iterator)

  def __getstate__(self):
    """What a grain worker process receives: the data and settings, no threads or workers."""
    state = dict(self.__dict__)
    state.update(_pool=None, _prefetcher=None, _prefetched={}, _workers=None,
                 worker_processes=0)
    return state

  def _close_workers(self) -> None:
    """Stops the worker processes (if any); a later train_batch starts them again."""
    if self._workers is not None:
      self._workers[-1].close()
      self._workers = None

  # -- helpers -----------------------------------------------------------------

  def _split(self, split: str):
    if split not in self._splits:
      raise ValueError(f'{self.name} has no split {split!r}; its splits are {list(self.splits)}')
    return self._splits[split]

  def num_examples(self, split: str) -> int:
    return len(self._split(split))

  def labels(self, split: str) -> np.ndarray:
    """All labels of a split, in order (reads every record of a lazy split)."""
    return np.asarray(self._split(split).labels, np.int32)

  def _map(self, fn, items):
    if self._pool is None:
      return [fn(x) for x in items]
    return list(self._pool.map(fn, items))

  def train_indices(self, step: int, batch_size: int, seed: int,
                    rows: np.ndarray) -> np.ndarray:
    """Train-split indices of global rows `rows` of step `step` (epoch-shuffled order)."""
    return self._order.indices(step, batch_size, seed, np.asarray(rows, np.int64))

  def augment_image(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The training augmentation of one uint8 HWC image (returns uint8 [S, S, C])."""
    a, s = self.augment, self.image_size
    if a.crop == 'inception':
      top, left, h, w = inception_crop_box(image.shape[0], image.shape[1], rng,
                                           a.inception_min_area, a.inception_max_area)
      image = resize_bilinear(image[top:top + h, left:left + w], s, s)
    else:
      image = self.preprocess.fit(image)
      if a.crop == 'random':
        image = pad_random_crop(image, a.crop_padding, rng)
    if a.flip and rng.random() < 0.5:
      image = image[:, ::-1]
    if a.randaugment_layers:
      image = randaugment(image, a.randaugment_layers, a.randaugment_magnitude, rng)
    return np.ascontiguousarray(image)

  def _crop_flip_batch(self, images: np.ndarray, rngs: list) -> np.ndarray:
    """`augment_image` for crop 'none'/'random' and flip on a batch of S x S images, vectorized."""
    a = self.augment
    n, h, w = images.shape[:3]
    p = a.crop_padding if a.crop == 'random' else 0
    offsets = np.array([r.integers(0, 2 * p + 1, size=2) for r in rngs]) if p else None
    flips = np.array([r.random() < 0.5 for r in rngs]) if a.flip else None
    if p:
      padded = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
      ii = offsets[:, :1] + np.arange(h)
      jj = offsets[:, 1:] + np.arange(w)
      images = padded[np.arange(n)[:, None, None], ii[:, :, None], jj[:, None, :]]
    if flips is not None and flips.any():
      images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
    return images

  def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 HWC images of any size -> the model's float32 input [N, S, S, C], as evaluated."""
    return self.preprocess.prepare(images)

  def preprocessing(self) -> dict:
    """What `prepare` does to an image, as plain values (a workdir keeps them: KeptImages)."""
    return self.preprocess.to_dict()

  def _train_images(self, step: int, seed: int, indices: np.ndarray,
                    rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    split = self._split('train')
    a = self.augment
    if isinstance(split, ArraySplit) and a.crop != 'inception' and not a.randaugment_layers \
        and split.images.shape[1:3] == (self.image_size, self.image_size):
      images = split.images[indices]
      if a.per_example:   # crop and flip, vectorized (same draws as augment_image)
        rngs = [np.random.default_rng((seed, step, int(r), _AUG_STREAM)) for r in rows]
        images = self._crop_flip_batch(images, rngs)
      return images, split.labels[indices]

    def one(args):
      index, row = args
      image, label = split.example(int(index))
      rng = np.random.default_rng((seed, step, int(row), _AUG_STREAM))
      return self.augment_image(image, rng), label

    out = self._map(one, list(zip(indices, rows)))
    return np.stack([x[0] for x in out]), np.array([x[1] for x in out], np.int32)

  # -- the DataSource interface -------------------------------------------------

  def train_batch(self, step: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)) -> Batch:
    if step < 0 or batch_size <= 0 or seed < 0:
      raise ValueError(f'need step >= 0, batch_size > 0, seed >= 0; got step={step}, '
                       f'batch_size={batch_size}, seed={seed}')
    if self.worker_processes:
      return self._batch_from_workers(step, batch_size, seed, tuple(shard))
    key = (step, batch_size, seed, tuple(shard))
    future = self._prefetched.pop(key, None)
    self._prefetched.clear()
    batch = future.result() if future is not None else self._make_train_batch(*key)
    if self._prefetcher is not None:
      nxt = (step + 1, batch_size, seed, tuple(shard))
      self._prefetched[nxt] = self._prefetcher.submit(self._make_train_batch, *nxt)
    return batch

  def _batch_from_workers(self, step: int, batch_size: int, seed: int,
                          shard: tuple[int, int]) -> Batch:
    """Training batches made ahead by `worker_processes` grain worker processes.

    Worker w makes steps start + w, start + w + W, ... (each a pure function of
    its step), and grain hands them back in step order, so the batches are those
    of the in-process path. A request for any other step than the next one (a
    resume, an evaluation's interruption does not count) restarts the workers there.
    """
    import grain   # imported on first use: worker processes are spawned, not forked
    from absl import flags
    if not flags.FLAGS.is_parsed():   # grain reads its absl flags; outside an absl app
      flags.FLAGS.mark_as_parsed()    # (tests, notebooks) their defaults are the settings
    w = self._workers
    if w is None or w[:3] != (batch_size, seed, shard) or w[3] != step:
      self._close_workers()
      steps = grain.MapDataset.range(step, 2**62).map(_TrainBatches(self, batch_size, seed,
                                                                      shard))
      # One batch at a time in each worker, at most two waiting: without the ReadOptions,
      # grain's defaults (16 threads, 500 elements) would run hundreds of batches ahead.
      it = iter(steps.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=1))
                .mp_prefetch(grain.MultiprocessingOptions(num_workers=self.worker_processes,
                                                          per_worker_buffer_size=2)))
      w = (batch_size, seed, shard, step, it)
    batch = next(w[-1])
    self._workers = (batch_size, seed, shard, step + 1, w[-1])
    return batch

  def _make_train_batch(self, step: int, batch_size: int, seed: int,
                        shard: tuple[int, int]) -> Batch:
    sl = host_slice(batch_size, shard)
    rows = np.arange(sl.start, sl.stop)
    mix = self.augment.mixup > 0
    if mix:   # the partner of global row r is row r - 1 (wrapping): one extra row
      rows = np.concatenate([[(sl.start - 1) % batch_size], rows])
    indices = self.train_indices(step, batch_size, seed, rows)
    images, labels = self._train_images(step, seed, indices, rows)
    images = self.preprocess.normalize(images)
    if not mix:
      return {'images': images, 'labels': labels, 'weights': np.ones(len(labels), np.float32)}
    lam = np.random.default_rng((seed, step, _MIX_STREAM)).beta(self.augment.mixup,
                                                                 self.augment.mixup)
    lam = np.float32(max(lam, 1 - lam))
    mixed = lam * images[1:] + (1 - lam) * images[:-1]
    n = len(labels) - 1
    return {'images': mixed.astype(np.float32), 'labels': labels[1:],
            'weights': np.ones(n, np.float32), 'mix_labels': labels[:-1],
            'mix_ratio': np.full(n, lam, np.float32)}

  def eval_batches(self, split: str, batch_size: int,
                   shard: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Every example of `split` once, in order; the last batch padded with weight-0 rows."""
    data = self._split(split)
    sl = host_slice(batch_size, shard)
    n = len(data)
    s, c = self.image_size, self.num_channels
    for start in range(0, n, batch_size):
      idx = np.arange(start + sl.start, start + sl.stop)
      real = idx[idx < n]
      if isinstance(data, ArraySplit) and data.images.shape[1:3] == (s, s):
        images, labels = data.images[real], data.labels[real]
      else:
        def fitted(i, data=data):
          image, label = data.example(int(i))
          return self.preprocess.fit(image), label
        out = self._map(fitted, real)
        images = (np.stack([x[0] for x in out]) if out else np.zeros((0, s, s, c), np.uint8))
        labels = np.array([x[1] for x in out], np.int32)
      pad = len(idx) - len(real)
      images = self.preprocess.normalize(images)
      if pad:
        images = np.concatenate([images, np.zeros((pad, s, s, c), np.float32)])
        labels = np.concatenate([labels, np.zeros(pad, np.int32)])
      weights = np.concatenate([np.ones(len(real), np.float32), np.zeros(pad, np.float32)])
      yield {'images': images, 'labels': labels.astype(np.int32), 'weights': weights}

  def close(self) -> None:
    """Stops the worker processes and threads (the training loop's `finally` calls it)."""
    self._close_workers()
    for ex in (self._prefetcher, self._pool):
      if ex is not None:
        ex.shutdown(wait=False, cancel_futures=True)


class KeptImages:
  """The class names and `ImageData.prepare`, from the values a trained workdir keeps
  (`ImageData.preprocessing`): classifying image files needs no dataset. It has no splits."""
  tokenizer = None

  def __init__(self, preprocessing: Mapping, class_names: Sequence[str]):
    self.preprocess = EvalPreprocessing.from_dict(preprocessing)
    self.name, self.class_names = 'kept', tuple(class_names)
    self.num_classes, self.splits, self.epoch_size = len(self.class_names), (), 0
    self.image_size = self.preprocess.image_size
    self.num_channels = self.preprocess.num_channels

  def prepare(self, images: Sequence[np.ndarray]) -> np.ndarray:
    return self.preprocess.prepare(images)

  def preprocessing(self) -> dict:
    return self.preprocess.to_dict()

  def train_batch(self, *args, **kwargs):
    raise DataError('a classifier restored from its workdir alone has no training images')

  def eval_batches(self, split: str, *args, **kwargs):
    raise DataError(f'a classifier restored from its workdir alone has no {split!r} images: '
                    'give the data directory to evaluate it')

  def close(self) -> None:
    pass


# ----------------------------------------------------------------------------- readers

def tfds_sources(name: str, splits: Sequence[str], tfds_data_dir: str | None) -> dict:
  """{split: source} of TFDS dataset `name` (tfds_reader: array_record, tfrecord, or why not)."""
  manual = (' (ImageNet is a manual download: put ILSVRC2012_img_train.tar and '
            'ILSVRC2012_img_val.tar in D/downloads/manual/ first)'
            if name == 'imagenet2012' else '')
  raw = (f'{name}/ with the original IDX .gz files (layout of shared/data/README.md)'
         if INFO[name].raw_dir else '')
  return tfds_reader.open_splits(name, splits, tfds_data_dir, raw_hint=raw, manual_hint=manual)


def _load_into_memory(source, name: str, split: str) -> ArraySplit:
  """Decodes a whole (small) TFDS split into uint8 arrays."""
  n = len(source)
  if n == 0:
    raise DataError(f'TFDS {name} split {split!r} is empty')
  images = np.empty((n, *RecordSplit(source).example(0)[0].shape), np.uint8)
  labels = np.empty(n, np.int32)
  getitems = getattr(source, '__getitems__', None)
  for start in range(0, n, 1024):
    idx = list(range(start, min(n, start + 1024)))
    try:
      chunk = getitems(idx) if getitems else [source[i] for i in idx]
    except ImportError as e:
      raise DataError(f'Decoding TFDS images needs pillow or opencv-python ({e}). '
                      'Install one: pip install pillow') from e
    for i, rec in zip(idx, chunk):
      img = np.asarray(rec['image'])
      images[i] = img[..., None] if img.ndim == 2 else img
      labels[i] = int(rec['label'])
  return ArraySplit(images, labels)


def _class_names_from_tfds(source, info: DatasetInfo):
  try:
    names = source.dataset_info.features['label'].names
    return tuple(names) if len(names) == info.num_classes else info.class_names
  except Exception:  # noqa: BLE001  (older tfds, or sources without dataset_info)
    return info.class_names


class _TrainBatches:
  """step -> training batch of `data` (what each grain worker process runs)."""

  def __init__(self, data: ImageData, batch_size: int, seed: int, shard: tuple[int, int]):
    self.data, self.batch_size, self.seed, self.shard = data, batch_size, seed, shard

  def __call__(self, step: int) -> Batch:
    return self.data._make_train_batch(int(step), self.batch_size, self.seed, self.shard)


def make_image_data(dataset: str, data_dir: str | None = None, *, image_size: int | None = None,
                    augment: Augment | Mapping[str, Any] | None = None,
                    tfds_data_dir: str | None = None, num_workers: int | None = None,
                    prefetch: bool | None = None, validation_holdout: int = 0,
                    worker_processes: int = 0, files=None) -> ImageData:
  """The image data source for `dataset` ('mnist', 'fashion_mnist', 'cifar10', 'imagenet2012',
  or 'files': config.files, a folder per split with a folder per class).

  Args:
    dataset: the dataset name.
    data_dir: a folder laid out like shared/data (`resolve_data_dir`: else
      $TRANSFORMER_DATA_DIR); None reads TFDS by name. Only the MNISTs have raw files.
    image_size: S, the model resolution (default: the dataset's, 224 for ImageNet).
    augment: training augmentation (an `Augment` or a dict of its fields).
    tfds_data_dir: the TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    num_workers: threads reading and augmenting examples (default: 0 for datasets
      held in memory, min(32, CPUs) for ImageNet); > 0 also prefetches the next
      training batch in the background (unless prefetch=False).
    worker_processes: > 0: training batches are made ahead by this many grain worker
      processes (read, decode, augment in parallel, beyond the GIL); 0: in this process.
    validation_holdout: > 0: the last N training examples become the
      'validation' split and are left out of 'train' (for choosing a recipe
      without touching the test split).
  """
  if dataset == files_lib.DATASET:
    return _image_files(files, resolve_data_dir(data_dir), image_size, augment, num_workers,
                        prefetch, validation_holdout, worker_processes)
  if dataset not in DATASETS:
    raise ValueError(f'Unknown image dataset {dataset!r}; known: {list(DATASETS)}')
  info = INFO[dataset]
  if not isinstance(augment, Augment):
    augment = Augment.from_config(augment)
  data_dir = resolve_data_dir(data_dir)
  class_names = info.class_names
  if data_dir and info.raw_dir:
    splits = {s: ArraySplit(*load_idx_split(data_dir, dataset, s)) for s in info.splits}
  elif data_dir:
    raise DataError(f'{dataset} has no raw-file reader: unset data_dir and '
                    f'$TRANSFORMER_DATA_DIR to read it from TFDS by name '
                    f'(data_dir is {data_dir!r}).\n'
                    + tfds_reader.help_text(dataset, tfds_data_dir))
  else:
    sources = tfds_sources(dataset, info.splits, tfds_data_dir)
    class_names = _class_names_from_tfds(sources['train'], info)
    if info.image_size is not None:   # small: decode once into memory
      splits = {s: _load_into_memory(src, dataset, s) for s, src in sources.items()}
    else:
      splits = {s: RecordSplit(src) for s, src in sources.items()}
  if validation_holdout:
    splits = hold_out(splits, validation_holdout)
  lazy = any(isinstance(s, (RecordSplit, SubsetSplit)) for s in splits.values())
  if num_workers is None or num_workers < 0:
    num_workers = min(32, os.cpu_count() or 1) if lazy else 0
  return ImageData(dataset, splits, num_classes=info.num_classes,
                   image_size=image_size or info.image_size or IMAGENET_DEFAULT_SIZE,
                   num_channels=info.num_channels, mean=info.mean, std=info.std,
                   augment=augment, native_size=info.image_size, class_names=class_names,
                   num_workers=num_workers, prefetch=prefetch,
                   worker_processes=worker_processes)


def _image_files(files, data_dir, image_size, augment, num_workers, prefetch,
                 validation_holdout, worker_processes) -> ImageData:
  """dataset='files': a folder per split, a subfolder per class (data/files.py)."""
  if files is None:
    raise DataError("dataset='files' needs config.files (an image folder per split)")
  specs = files_lib.split_specs(files, data_dir)
  train_paths, train_labels, classes = files_lib.image_folder(specs['train'], 'train')
  splits = {'train': FileSplit(train_paths, train_labels)}
  for split, spec in specs.items():
    if split != 'train':
      splits[split] = FileSplit(*files_lib.image_folder(spec, split, classes)[:2])
  if validation_holdout:
    order = np.random.default_rng(0).permutation(len(train_paths))   # folders are sorted
    shuffled = FileSplit([train_paths[i] for i in order], train_labels[order])
    splits = hold_out({**splits, 'train': shuffled}, validation_holdout)
  if not isinstance(augment, Augment):
    augment = Augment.from_config(augment)
  if num_workers is None or num_workers < 0:
    num_workers = min(32, os.cpu_count() or 1)
  return ImageData('files', splits, num_classes=len(classes),
                   image_size=image_size or IMAGENET_DEFAULT_SIZE, num_channels=3,
                   mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), augment=augment,
                   native_size=None, class_names=classes, num_workers=num_workers,
                   prefetch=prefetch, worker_processes=worker_processes)
