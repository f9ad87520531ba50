"""IDX files (LeCun's MNIST format), read with NumPy and checked.

IDX: two zero bytes, a dtype code (0x08 = uint8), the number of dimensions, then
each dimension as a big-endian uint32, then the data; optionally gzipped.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib

import numpy as np

from transformer.data import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
               0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path: str, ndim: int | None = None) -> np.ndarray:
  """The array in an IDX file (optionally gzipped), checking its magic number and size.

  IDX (LeCun's MNIST format): two zero bytes, a dtype code (0x08 = uint8), the
  number of dimensions, then each dimension as a big-endian uint32, then the data.
  `ndim` (3 for images, 1 for labels) is checked when given. Any problem is a
  DataError naming the file.
  """
  if not os.path.exists(path):
    raise DataError(f'IDX file {path} does not exist')
  try:
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(f'{path} cannot be read as {"gzip" if path.endswith(".gz") else "IDX"}: '
                    f'{type(e).__name__}: {e}. The file is corrupt or truncated; '
                    'download it again.') from e
  if len(data) < 4:
    raise DataError(f'{path} is too short to be an IDX file ({len(data)} bytes)')
  magic = struct.unpack('>I', data[:4])[0]
  code, dims = data[2], data[3]
  if data[:2] != b'\0\0' or code not in _IDX_DTYPES or dims == 0:
    raise DataError(f'{path} has IDX magic number 0x{magic:08x}, which is not valid '
                    '(expected 0x00000801 for labels or 0x00000803 for images)')
  if ndim is not None and dims != ndim:
    raise DataError(f'{path} has IDX magic number 0x{magic:08x} ({dims} dimensions); '
                    f'expected 0x{0x800 + ndim:08x} ({ndim} dimensions)')
  header = 4 + 4 * dims
  if len(data) < header:
    raise DataError(f'{path} is truncated inside its IDX header')
  shape = struct.unpack(f'>{dims}I', data[4:header])
  dtype = np.dtype(_IDX_DTYPES[code])
  expected = math.prod(shape) * dtype.itemsize
  if len(data) - header != expected:
    raise DataError(f'{path}: the IDX header says shape {shape} ({expected} bytes of data) '
                    f'but the file holds {len(data) - header} bytes; it is corrupt or truncated')
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))
