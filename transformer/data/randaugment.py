"""RandAugment in NumPy on uint8 HWC images (a port of the TPU EfficientNet / big_vision
autoaugment ops).

`randaugment(image, num_layers, magnitude, rng)` follows the TPU EfficientNet /
big_vision `distort_image_with_randaugment`: each of N layers picks one op uniformly and
applies it with a probability drawn from U(0.2, 0.8). All 16 ops of that list are
implemented: AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd,
Color, Contrast, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY, Cutout,
with the same magnitude-to-argument rules (rotation up to 30 degrees, shear up to 0.3,
translation up to 100/224 and cutout half-size up to 40/224 of the image size, i.e.
big_vision's pixels at 224, enhancement factors 0.1..1.9; fill value 128). Geometric ops
use nearest-neighbour sampling.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

_FILL = 128
_MAX_LEVEL = 10.0
_TRANSLATE_FRACTION = 100 / 224   # big_vision translate_const=100 pixels at 224
_CUTOUT_FRACTION = 40 / 224       # big_vision cutout_const=40 pixels at 224


def _blend(degenerate: np.ndarray, image: np.ndarray, factor: float) -> np.ndarray:
  """degenerate + factor * (image - degenerate), rounded and clipped to uint8."""
  if factor == 1.0:
    return image
  degenerate = degenerate.astype(np.float32)
  out = degenerate + np.float32(factor) * (image.astype(np.float32) - degenerate)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _grayscale(image: np.ndarray) -> np.ndarray:
  """[H, W, 1] float32 luminance (tf.image.rgb_to_grayscale weights); C=1 images as they are."""
  if image.shape[-1] == 1:
    return image.astype(np.float32)
  weights = np.array([0.2989, 0.587, 0.114], np.float32)
  return (image[..., :3].astype(np.float32) @ weights)[..., None]


def _affine(image: np.ndarray, matrix: Sequence[float]) -> np.ndarray:
  """Output pixel (x, y) takes input pixel (a0 x + a1 y + a2, b0 x + b1 y + b2); else fill."""
  a0, a1, a2, b0, b1, b2 = matrix
  h, w = image.shape[:2]
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  src_x = np.rint(a0 * x + a1 * y + a2).astype(np.int64)
  src_y = np.rint(b0 * x + b1 * y + b2).astype(np.int64)
  valid = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
  out = np.full_like(image, _FILL)
  out[valid] = image[src_y[valid], src_x[valid]]
  return out


def autocontrast(image, _=None):
  out = np.empty_like(image)
  for c in range(image.shape[-1]):
    ch = image[..., c]
    lo, hi = int(ch.min()), int(ch.max())
    if hi > lo:
      out[..., c] = np.clip((ch.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255)
    else:
      out[..., c] = ch
  return out


def equalize(image, _=None):
  """Per-channel histogram equalization as PIL.ImageOps.equalize."""
  out = np.empty_like(image)
  for c in range(image.shape[-1]):
    ch = image[..., c]
    hist = np.bincount(ch.ravel(), minlength=256)
    nonzero = hist[hist > 0]
    step = (nonzero.sum() - nonzero[-1]) // 255
    if step == 0:
      out[..., c] = ch
      continue
    lut = (np.cumsum(hist) + step // 2) // step
    lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255).astype(np.uint8)
    out[..., c] = lut[ch]
  return out


def invert(image, _=None):
  return 255 - image


def rotate(image, degrees):
  h, w = image.shape[:2]
  cy, cx = (h - 1) / 2, (w - 1) / 2
  t = math.radians(degrees)
  cos, sin = math.cos(t), math.sin(t)
  # Inverse map: rotate the output coordinates by -degrees about the center.
  return _affine(image, (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy))


def posterize(image, bits):
  shift = 8 - int(bits)
  return ((image >> shift) << shift).astype(np.uint8)


def solarize(image, threshold):
  return np.where(image < threshold, image, 255 - image).astype(np.uint8)


def solarize_add(image, addition, threshold=128):
  added = np.clip(image.astype(np.int32) + int(addition), 0, 255).astype(np.uint8)
  return np.where(image < threshold, added, image)


def color(image, factor):
  return _blend(np.broadcast_to(_grayscale(image), image.shape), image, factor)


def contrast(image, factor):
  mean = float(np.mean(_grayscale(image)))
  return _blend(np.full(image.shape, mean, np.float32), image, factor)


def brightness(image, factor):
  return _blend(np.zeros_like(image), image, factor)


def sharpness(image, factor):
  """Blend with a 3x3 smoothed image (kernel [[1,1,1],[1,5,1],[1,1,1]]/13); border kept."""
  h, w = image.shape[:2]
  if h < 3 or w < 3:
    return image
  img = image.astype(np.float32)
  smooth = img.copy()
  acc = 4 * img[1:-1, 1:-1]   # center weight 5 = 1 (in the 3x3 sum) + 4
  for dy in (-1, 0, 1):
    for dx in (-1, 0, 1):
      acc = acc + img[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
  smooth[1:-1, 1:-1] = np.rint(acc / 13)
  return _blend(smooth, image, factor)


def shear_x(image, level):
  return _affine(image, (1, level, 0, 0, 1, 0))


def shear_y(image, level):
  return _affine(image, (1, 0, 0, level, 1, 0))


def translate_x(image, pixels):
  return _affine(image, (1, 0, -pixels, 0, 1, 0))


def translate_y(image, pixels):
  return _affine(image, (1, 0, 0, 0, 1, -pixels))


def cutout(image, half_size, rng):
  h, w = image.shape[:2]
  cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
  out = image.copy()
  out[max(0, cy - half_size):min(h, cy + half_size),
      max(0, cx - half_size):min(w, cx + half_size)] = _FILL
  return out


def _signed(value, rng):
  return -value if rng.random() < 0.5 else value


def _enhance_factor(level):
  return level / _MAX_LEVEL * 1.8 + 0.1


# name -> (op, argument from (level, image size, rng))
RANDAUGMENT_OPS: dict[str, tuple[Callable, Callable]] = {
    'AutoContrast': (autocontrast, lambda lv, s, r: None),
    'Equalize': (equalize, lambda lv, s, r: None),
    'Invert': (invert, lambda lv, s, r: None),
    'Rotate': (rotate, lambda lv, s, r: _signed(lv / _MAX_LEVEL * 30.0, r)),
    'Posterize': (posterize, lambda lv, s, r: int(lv / _MAX_LEVEL * 4)),
    'Solarize': (solarize, lambda lv, s, r: int(lv / _MAX_LEVEL * 256)),
    'SolarizeAdd': (solarize_add, lambda lv, s, r: int(lv / _MAX_LEVEL * 110)),
    'Color': (color, lambda lv, s, r: _enhance_factor(lv)),
    'Contrast': (contrast, lambda lv, s, r: _enhance_factor(lv)),
    'Brightness': (brightness, lambda lv, s, r: _enhance_factor(lv)),
    'Sharpness': (sharpness, lambda lv, s, r: _enhance_factor(lv)),
    'ShearX': (shear_x, lambda lv, s, r: _signed(lv / _MAX_LEVEL * 0.3, r)),
    'ShearY': (shear_y, lambda lv, s, r: _signed(lv / _MAX_LEVEL * 0.3, r)),
    'TranslateX': (translate_x,
                   lambda lv, s, r: _signed(lv / _MAX_LEVEL * _TRANSLATE_FRACTION * s, r)),
    'TranslateY': (translate_y,
                   lambda lv, s, r: _signed(lv / _MAX_LEVEL * _TRANSLATE_FRACTION * s, r)),
    'Cutout': (None, lambda lv, s, r: int(lv / _MAX_LEVEL * _CUTOUT_FRACTION * s)),
}
_RANDAUGMENT_NAMES = tuple(RANDAUGMENT_OPS)


def apply_randaugment_op(image: np.ndarray, name: str, magnitude: float,
                         rng: np.random.Generator) -> np.ndarray:
  op, arg = RANDAUGMENT_OPS[name]
  value = arg(magnitude, min(image.shape[:2]), rng)
  if name == 'Cutout':
    return cutout(image, value, rng)
  return op(image, value)


def randaugment(image: np.ndarray, num_layers: int, magnitude: float,
                rng: np.random.Generator) -> np.ndarray:
  """RandAugment (uint8 HWC): each layer applies a random op with probability U(0.2, 0.8)."""
  for _ in range(num_layers):
    name = _RANDAUGMENT_NAMES[int(rng.integers(len(_RANDAUGMENT_NAMES)))]
    prob = rng.uniform(0.2, 0.8)
    if rng.random() < prob:
      image = apply_randaugment_op(image, name, magnitude, rng)
  return image
