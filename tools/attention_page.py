"""A self-contained HTML page for exploring attention: head view, model view, image view.

  page = attention_page.Explorer('bert-base-uncased, "the cat sat"', [
      attention_page.TokenView('self-attention', weights, tokens, tokens)])   # [L, H, q, k]
  attention_page.write([page], 'attention.html')

The file needs no network: its script, style and data are inline (no `src` or
`href` anywhere), so it opens offline, from a mail attachment or in a notebook
front end. Several explorers may share one page: every element id carries its
explorer's prefix, and each explorer keeps its own state.

The data is stored compactly: each head's weights [q, k] as bytes, quantized
against that head's largest weight (`scale`): w ~= byte / 255 * scale, which is
within half a quantization step (scale / 510) of the model's weight. `decode`
reads a page's data back (what the tests compare with the model's weights).
A size cap drops whole layers, evenly spaced, and the page says which; a layer
filter (`layers=`) chooses them instead.

Views:
- `TokenView`: attention between two token sequences, [layers, heads, q, k]
  (self-attention: the same tokens on both sides; cross-attention: outputs over
  the source). The page shows it as a head view (queries left, keys right, one
  line per weight, one colour per head; a layer selector; click a head to toggle
  it; hover a token to see only its lines) and a model view (every layer and
  head as a small heatmap; click one to open it in the head view).
- `ImageView`: maps over an image's patch grid (attention rollout, the class
  token's attention per head), each drawn over the image.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import re
from typing import Sequence

import numpy as np

from transformer.errors import InputError

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MAX_MB = 16.0   # quantized bytes of attention weights per page, before base64


class PageError(InputError):
  """A page cannot be made as asked (e.g. a layer filter naming layers that do not exist)."""


@dataclasses.dataclass
class TokenView:
  """Attention weights [layers, heads, q, k] between `queries` and `keys` (their labels).

  `layers`: the model's index of each layer given (default 0, 1, ...); `causal`
  marks a causal self-attention (the page says so; the weights show it anyway).
  """
  name: str
  weights: np.ndarray
  queries: Sequence[str]
  keys: Sequence[str]
  layers: Sequence[int] | None = None
  causal: bool = False
  note: str = ''

  def __post_init__(self):
    self.weights = np.asarray(self.weights, np.float32)
    if self.weights.ndim != 4:
      raise PageError(f'{self.name}: weights must be [layers, heads, queries, keys], got shape '
                      f'{self.weights.shape}')
    n, _, q, k = self.weights.shape
    if (len(self.queries), len(self.keys)) != (q, k):
      raise PageError(f'{self.name}: {len(self.queries)} query and {len(self.keys)} key labels '
                      f'for weights of {q} x {k}')
    self.layers = list(range(n)) if self.layers is None else [int(i) for i in self.layers]
    if len(self.layers) != n:
      raise PageError(f'{self.name}: {len(self.layers)} layer indices for {n} layers')


@dataclasses.dataclass
class ImageView:
  """`maps` (name -> [gh, gw] patch grid) drawn over `image` (uint8 [H, W] or [H, W, C])."""
  name: str
  image: np.ndarray
  maps: dict[str, np.ndarray]
  note: str = ''


@dataclasses.dataclass
class Explorer:
  """One explorer on a page: a title, notes shown under it, and its views as tabs."""
  title: str
  views: list
  notes: list[str] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------- encoding

def quantize(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 bytes, scale) of non-negative weights [..., q, k], one scale per [q, k] block (its
  maximum): byte = round(w / scale * 255)."""
  w = np.asarray(weights, np.float64)
  if w.size and w.min() < 0:
    raise PageError('attention weights must be non-negative')
  scale = w.max(axis=(-2, -1)) if w.size else np.zeros(w.shape[:-2])
  safe = np.where(scale > 0, scale, 1.0)[..., None, None]
  return np.rint(w / safe * 255).astype(np.uint8), scale


def dequantize(data: np.ndarray, scale: np.ndarray) -> np.ndarray:
  return data.astype(np.float64) / 255 * np.asarray(scale, np.float64)[..., None, None]


def _b64(a: np.ndarray) -> str:
  return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode('ascii')


def _token_payload(view: TokenView) -> dict:
  data, scale = quantize(view.weights)
  n, h, q, k = view.weights.shape
  return dict(kind='tokens', name=view.name, queries=[str(t) for t in view.queries],
              keys=[str(t) for t in view.keys], layers=list(view.layers), heads=h,
              shape=[n, h, q, k], causal=bool(view.causal), note=view.note,
              scale=np.round(scale, 8).tolist(), data=_b64(data))


def _image_payload(view: ImageView) -> dict:
  image = np.asarray(view.image)
  if image.dtype != np.uint8:
    raise PageError(f'{view.name}: the image must be uint8, got {image.dtype}')
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
    raise PageError(f'{view.name}: the image must be [H, W], [H, W, 1] or [H, W, 3], '
                    f'got {image.shape}')
  maps = []
  for name, m in view.maps.items():
    m = np.asarray(m, np.float64)
    data, scale = quantize(m[None])
    maps.append(dict(name=name, grid=list(m.shape), scale=float(scale[0]), data=_b64(data)))
  return dict(kind='image', name=view.name, note=view.note, height=image.shape[0],
              width=image.shape[1], channels=1 if image.ndim == 2 else 3, pixels=_b64(image),
              maps=maps)


# ----------------------------------------------------------------------------- layers and size

def layer_filter(views: Sequence, layers: Sequence[int] | None,
                 max_bytes: float) -> tuple[list, list[str]]:
  """`views` keeping the layers asked for (`layers`, model indices; negative: from the end of
  the deepest stack), then as many evenly spaced layers as fit `max_bytes` of quantized
  weights; and notes saying what was dropped."""
  token_views = [v for v in views if isinstance(v, TokenView)]
  if not token_views:
    return list(views), []
  depth = max(max(v.layers) + 1 for v in token_views)
  notes = []
  if layers:
    bad = [i for i in layers if not -depth <= i < depth]
    if bad:
      raise PageError(f'--layers={",".join(map(str, layers))}: no layer {bad[0]}; the model '
                      f'has layers 0..{depth - 1}')
    keep = sorted({i % depth for i in layers})
  else:
    keep = list(range(depth))
  cost = {i: sum(v.weights[0, ...].size for v in token_views if i in v.layers) for i in keep}
  if sum(cost.values()) > max_bytes:
    per_layer = max(cost.values())
    fit = max(1, int(max_bytes // per_layer))
    picked = sorted({keep[round(j * (len(keep) - 1) / max(fit - 1, 1))] for j in range(fit)})
    dropped = [i for i in keep if i not in picked]
    notes.append(f'Layers {_ranges(dropped)} left out to keep the page under '
                 f'{max_bytes / 2**20:.0f} MB of weights ({_ranges(picked)} kept); choose '
                 f'others with --layers=..., or raise --max_mb.')
    keep = picked
  out = []
  for v in views:
    if isinstance(v, TokenView):
      idx = [j for j, i in enumerate(v.layers) if i in keep]
      if not idx:
        notes.append(f'{v.name}: none of its layers is kept.')
        continue
      v = dataclasses.replace(v, weights=v.weights[idx], layers=[v.layers[j] for j in idx])
    out.append(v)
  return out, notes


def _ranges(ids: Sequence[int]) -> str:
  """'0-3, 7, 9-10' of sorted ints."""
  parts, ids = [], list(ids)
  i = 0
  while i < len(ids):
    j = i
    while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
      j += 1
    parts.append(str(ids[i]) if i == j else f'{ids[i]}-{ids[j]}')
    i = j + 1
  return ', '.join(parts)


# ----------------------------------------------------------------------------- the page

def _asset(name: str) -> str:
  with open(os.path.join(_HERE, name), encoding='utf-8') as f:
    return f.read()


def _script_json(obj) -> str:
  """JSON safe inside <script>: no '</' (ends the element) or '<!--'."""
  return json.dumps(obj, separators=(',', ':')).replace('<', '\\u003c')


def render(explorers: Sequence[Explorer], *, layers: Sequence[int] | None = None,
           max_mb: float = DEFAULT_MAX_MB, page_title: str | None = None,
           id_prefix: str = 'attn') -> str:
  """The HTML text of a page holding `explorers` (each its own tabs and state)."""
  blocks = []
  for n, ex in enumerate(explorers):
    views, notes = layer_filter(ex.views, layers, max_mb * 2**20)
    payload = dict(title=ex.title, notes=list(ex.notes) + notes, views=[
        _token_payload(v) if isinstance(v, TokenView) else _image_payload(v) for v in views])
    uid = f'{id_prefix}{n}'
    blocks.append(f'<div class="attn-explorer" id="{uid}" data-payload="{uid}-data"></div>\n'
                  f'<script type="application/json" id="{uid}-data">{_script_json(payload)}'
                  '</script>')
  title = html.escape(page_title or (explorers[0].title if explorers else 'attention'))
  return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
          f'<title>{title}</title>\n<style>\n{_asset("attention_page.css")}</style>\n'
          '</head>\n<body>\n' + '\n'.join(blocks) +
          f'\n<script>\n{_asset("attention_page.js")}</script>\n</body>\n</html>\n')


def write(explorers: Sequence[Explorer], path: str, **kw) -> str:
  """Writes `render(explorers, **kw)` to `path`; returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write(render(explorers, **kw))
  return path


# ----------------------------------------------------------------------------- reading back

_PAYLOAD = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.S)


def decode(page: str) -> dict[str, dict]:
  """Every explorer's data in a page, by element id, with each view's weights as float64
  ([layers, heads, q, k] for token views; each map [gh, gw] and the image for image views)."""
  out = {}
  for uid, text in _PAYLOAD.findall(page):
    payload = json.loads(text)
    for v in payload['views']:
      if v['kind'] == 'tokens':
        raw = np.frombuffer(base64.b64decode(v['data']), np.uint8).reshape(v['shape'])
        v['weights'] = dequantize(raw, np.asarray(v['scale']))
      else:
        shape = (v['height'], v['width']) + ((3,) if v['channels'] == 3 else ())
        v['image'] = np.frombuffer(base64.b64decode(v['pixels']), np.uint8).reshape(shape)
        for m in v['maps']:
          raw = np.frombuffer(base64.b64decode(m['data']), np.uint8).reshape(m['grid'])
          m['values'] = raw.astype(np.float64) / 255 * m['scale']
    out[uid] = payload
  return out
