"""Geometric image operations in NumPy on uint8 HWC arrays: resizing and the crops of the
training and evaluation preprocessing (`transformer.data.images`)."""

from __future__ import annotations

import math

import numpy as np

def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize of an HWC image with half-pixel centers (tf.image.resize, no antialiasing).

  Returns uint8 for uint8 input (rounded), float32 otherwise.
  """
  h, w = image.shape[:2]
  if (h, w) == (height, width):
    return image

  def axis(n_in, n_out):
    pos = (np.arange(n_out, dtype=np.float32) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0, n_in - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (pos - lo).astype(np.float32)

  y0, y1, wy = axis(h, height)
  x0, x1, wx = axis(w, width)
  img = image.astype(np.float32)
  rows = img[y0] * (1 - wy)[:, None, None] + img[y1] * wy[:, None, None]
  out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
  if image.dtype == np.uint8:
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
  return out


def resize_small(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes so that the shorter side is `size`, keeping the aspect ratio."""
  h, w = image.shape[:2]
  ratio = size / min(h, w)
  return resize_bilinear(image, max(1, round(h * ratio)), max(1, round(w * ratio)))


def central_crop(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def pad_random_crop(image: np.ndarray, padding: int, rng: np.random.Generator) -> np.ndarray:
  """Zero-pads each side by `padding` pixels and crops back to the original size at random."""
  h, w = image.shape[:2]
  if padding == 0:
    return image
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  top, left = rng.integers(0, 2 * padding + 1, size=2)
  return padded[top:top + h, left:left + w]


def inception_crop_box(height: int, width: int, rng: np.random.Generator,
                       min_area: float = 0.05, max_area: float = 1.0,
                       ratio: tuple[float, float] = (3 / 4, 4 / 3),
                       attempts: int = 10) -> tuple[int, int, int, int]:
  """(top, left, h, w) of a random box covering min_area..max_area of the image.

  Aspect ratio log-uniform in `ratio`; up to `attempts` tries, else the whole image.
  """
  area = height * width
  log_ratio = np.log(ratio)
  for _ in range(attempts):
    target = area * rng.uniform(min_area, max_area)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = round(math.sqrt(target * aspect))
    h = round(math.sqrt(target / aspect))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return top, left, h, w
  return 0, 0, height, width
