"""ImageNet-style input throughput: images/s of the vit_s16 training pipeline, side by side.

  python benchmarks/image_pipeline.py [--images=256] [--batch=64] [--steps=6] [--workers=2]

Synthetic JPEGs stand in for ImageNet (no ImageNet here): --images smooth random
RGB images of ImageNet's typical 375 x 500, JPEG-encoded with pillow (quality
90) and decoded per example, as a TFDS record would be. The pipeline is
configs/vit_s16_imagenet.py's augmentation (inception crop to 224, flip,
RandAugment(2, 10), mixup 0.2) through transformer.data.images.ImageData, in
three ways:
  in-process      one thread makes each batch (data_workers=0, no prefetch)
  threads         --workers threads share each batch (data_workers=W, prefetching)
  processes       --workers grain worker processes make whole batches ahead
                  (data_processes=W)
Each way makes --steps training batches of --batch images from the data
source's construction. Two numbers: the steady rate, batches 10 .. --steps
(by batch 10 the batches a worker made ahead during start-up, at most three
per worker, are used up, so this is the rate the workers sustain), and the
end-to-end time per batch including the start (spawning worker processes,
each importing the library, takes seconds: it counts against them over a
short run and vanishes over a long one). The table gives images/s, images/s per core of the machine, and
the ratio to in-process. The batches of every way are checked identical (a
batch is a pure function of (seed, step)).
"""

import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from absl import app, flags

from configs import vit_s16_imagenet
from transformer.data import images

flags.DEFINE_integer('images', 256, 'Synthetic JPEGs in the split.')
flags.DEFINE_integer('batch', 64, 'Images per training batch.')
flags.DEFINE_integer('steps', 40, 'Timed batches per way.')
flags.DEFINE_integer('workers', 2, 'Threads / worker processes.')
FLAGS = flags.FLAGS


class JpegSplit:
  """An in-memory split of JPEG bytes, decoded (pillow) each time an example is read."""

  def __init__(self, jpegs, labels):
    self.jpegs, self._labels = jpegs, np.asarray(labels, np.int32)

  def __len__(self):
    return len(self.jpegs)

  def example(self, i):
    from PIL import Image
    with Image.open(io.BytesIO(self.jpegs[i])) as im:
      return np.asarray(im.convert('RGB')), int(self._labels[i])

  @property
  def labels(self):
    return self._labels


def synthetic_jpegs(n, height=375, width=500, seed=0):
  """Smooth random images (low-frequency noise upsampled), so JPEG sizes are photo-like."""
  from PIL import Image
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    small = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((width, height), Image.BILINEAR)
    noise = rng.normal(0, 12, (height, width, 3))
    arr = np.clip(np.asarray(im, np.float64) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format='JPEG', quality=90)
    out.append(buf.getvalue())
  return out


def make_data(split, augment, **kw):
  info = images.INFO['imagenet2012']
  return images.ImageData('synthetic_jpegs', {'train': split}, num_classes=1000,
                          image_size=224, num_channels=3, mean=info.mean, std=info.std,
                          augment=augment, native_size=None, **kw)


def time_way(make, batch, steps):
  """(steady seconds per batch, end-to-end seconds per batch, the batches)."""
  t0 = time.perf_counter()
  data = make()
  batches, done = [], []
  for step in range(steps):
    batches.append(data.train_batch(step, batch, seed=0))
    done.append(time.perf_counter())
  data.close()
  return (done[-1] - done[9]) / (steps - 10), (done[-1] - t0) / steps, batches


def main(argv):
  del argv
  cores = os.cpu_count() or 1
  t0 = time.perf_counter()
  jpegs = synthetic_jpegs(FLAGS.images)
  print(f'{FLAGS.images} synthetic 375x500 JPEGs ({np.mean([len(j) for j in jpegs]) / 1e3:.0f} '
        f'kB each) in {time.perf_counter() - t0:.1f} s; {cores} cores', flush=True)
  split = JpegSplit(jpegs, np.arange(FLAGS.images) % 1000)
  augment = images.Augment.from_config(vit_s16_imagenet.get_config().augment)
  print(f'augmentation (vit_s16_imagenet): {augment}', flush=True)
  ways = [('in-process', dict(num_workers=0, prefetch=False)),
          (f'threads ({FLAGS.workers})', dict(num_workers=FLAGS.workers)),
          (f'processes ({FLAGS.workers}, grain)', dict(worker_processes=FLAGS.workers))]
  rows, reference = [], None
  for name, kw in ways:
    seconds, end_to_end, batches = time_way(lambda kw=kw: make_data(split, augment, **kw),
                                            FLAGS.batch, FLAGS.steps)
    if reference is None:
      reference = batches
    same = all(np.array_equal(a[k], b[k]) for a, b in zip(batches, reference) for k in a)
    rate = FLAGS.batch / seconds
    rows.append((name, seconds, rate, end_to_end, same))
    print(f'{name:>24}: {seconds * 1e3:8.0f} ms/batch  {rate:7.1f} images/s  '
          f'{rate / cores:6.1f} images/s/core  x{rate / rows[0][2]:.2f}  end to end '
          f'{end_to_end * 1e3:.0f} ms/batch  same batches: {same}', flush=True)
  print('\n| way | steady ms per batch of %d | images/s | images/s per core | vs in-process | '
        'end to end ms per batch (%d batches, with start-up) | same batches |'
        % (FLAGS.batch, FLAGS.steps))
  print('|---|---|---|---|---|---|---|')
  for name, seconds, rate, end_to_end, same in rows:
    print(f'| {name} | {seconds * 1e3:.0f} | {rate:.1f} | {rate / cores:.1f} | '
          f'{rate / rows[0][2]:.2f}x | {end_to_end * 1e3:.0f} | {same} |')


if __name__ == '__main__':
  app.run(main)
