"""Attention maps and positional-encoding heatmaps, as a library and a command.

  python -m tools.visualize attention --config=configs/NAME.py --workdir=DIR \\
      [--text="..."] [--split=S --index=N] [--layer=-1] [--head=-1] \\
      [--kinds=encoder,decoder,cross] [--step=N] [--out=DIR/attention] [--config.FIELD=VALUE]
  python -m tools.visualize attention --hf=DIR (--text="..." | --ids=101,7592,102) [--head=-1]
  python -m tools.visualize posenc [--length=100] [--width=512] \\
      [--config=configs/NAME.py --workdir=DIR] [--out=...]

`attention` restores the latest checkpoint of DIR (or --step=N) and draws the
attention weights the model itself computes: `MultiHeadAttention` sows them
into the `intermediates` collection on the reference einsum path, which is
forced here (`attention_impl='einsum'`, deterministic, no cache).
- translation: --text is a source sentence (default: source --index of
  --split). It is decoded with the configured method (config.decoding), then the
  full forward pass runs on targets_in = BOS + output (without its EOS), as in
  training, to collect the encoder self-attention, the decoder (causal)
  self-attention and the cross-attention of --layer. Axes carry the
  SentencePiece pieces: the decoder self-attention shows the decoder's input
  tokens on both axes; the cross-attention's rows are the output tokens, each
  drawn at the position that predicts it.
- language models: the causal self-attention of the prompt --text (default:
  config.sample.prompt).
- ViT: image --index of --split. With a class token (pool='cls'): the class
  token's attention over the patches; with global average pooling
  (pool='gap'): the mean over query positions of the attention each patch
  receives. Drawn over the image.
--head=-1 draws every head of the layer in a grid, --head=H head H (from 0);
--layer counts from 0 like the parameter names `layer_0`, ... (negative: from
the end; default: the last layer). PNG files go to --out (default
DIR/attention), named KIND_layerL_heads.png or KIND_layerL_headH.png.

`attention --hf=DIR` draws every layer's self-attention of a Hugging Face
checkpoint (DIR: its directory, or a workdir of `tools.convert import`),
imported by transformer.hf (BERT: over the word pieces of --text, tokenized by
its tokenizer.json with the `tokenizers` package; GPT-2: causal), or over token
ids given with --ids.

`posenc` draws the paper's sinusoidal table for --length positions and
--width features (default width: the config's d_model, else 512); given a
workdir whose model learns its positions, it draws the learned tables instead
(for a ViT also the cosine similarity of each patch's embedding to every
other's, as in Dosovitskiy et al. 2021, Figure 7).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from transformer import host, inference, layers, logs
from transformer import workdir as workdir_lib
from transformer.data.tokenizers import BOS_ID, EOS_ID, PAD_ID

ATTENTION_KINDS = ('encoder', 'decoder', 'cross')   # encoder self, decoder self, cross
_KIND_PATH = {'encoder': ('encoder', 'self_attention'), 'decoder': ('decoder', 'self_attention'),
              'cross': ('decoder', 'cross_attention')}
_KIND_TITLE = {'encoder': 'encoder self-attention', 'decoder': 'decoder self-attention',
               'cross': 'cross-attention (decoder over encoder)'}


# ----------------------------------------------------------------------------- weights

def visualization_config(cfg):
  """The model config whose forward pass sows its attention weights."""
  return cfg.replace(attention_impl='einsum', deterministic=True, use_cache=False, remat=False)


_APPLY: dict = {}


def attention_maps(model, params, *inputs) -> tuple[Any, dict[str, np.ndarray]]:
  """Runs `model` on `inputs`; returns (its output, its attention weights by module path).

  The model runs on the einsum path (`visualization_config`); the weights are
  those `MultiHeadAttention` sows: NumPy [batch, heads, q_len, kv_len] under
  paths such as 'encoder/layer_0/self_attention' or
  'decoder/layer_2/cross_attention'.
  """
  model = model.clone(cfg=visualization_config(model.cfg))
  key = (type(model), model.cfg)
  if key not in _APPLY:   # one jitted function per model: compiled once per input shape
    _APPLY[key] = jax.jit(lambda p, *x: model.apply({'params': p}, *x, mutable=['intermediates']))
  out, state = _APPLY[key](params, *inputs)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(state.get('intermediates', {})))
  maps = {}
  for path, value in flat.items():
    if path[-1] == 'attention_weights':
      (weights,) = value   # sown once per call
      maps['/'.join(path[:-1])] = np.asarray(jax.device_get(weights), np.float32)
  return out, maps


def layer_count(maps: dict[str, np.ndarray], stack: str) -> int:
  return len({p.split('/')[1] for p in maps if p.startswith(stack + '/')})


def select_layer(maps: dict[str, np.ndarray], kind: str, layer: int) -> tuple[int, np.ndarray]:
  """(layer index >= 0, weights [batch, heads, q, kv]) of `kind` ('encoder'|'decoder'|'cross')."""
  stack, name = _KIND_PATH[kind]
  n = layer_count(maps, stack)
  if not -n <= layer < n:
    raise ValueError(f'layer={layer} is out of range: the {stack} has layers 0..{n - 1}')
  layer %= n
  return layer, maps[f'{stack}/layer_{layer}/{name}']


def patch_attention(weights: np.ndarray, grid: tuple[int, int], pool: str) -> np.ndarray:
  """ViT attention [heads, N, N] (N = patches, + 1 first with a class token) -> [heads, gh, gw].

  pool='cls': the class token's attention to each patch (its weight on itself
  is left out, so a map sums to 1 minus that weight); pool='gap': the mean over
  query positions of the attention each patch receives (sums to 1).
  """
  if pool == 'cls':
    received = weights[:, 0, 1:]
  else:
    received = weights.mean(axis=1)
  return received.reshape(weights.shape[0], *grid)


# ----------------------------------------------------------------------------- labels

def token_labels(tokenizer, ids: Sequence[int]) -> list[str]:
  """One readable label per token id (SentencePiece pieces, characters or words)."""
  sp = getattr(tokenizer, '_sp', None)   # SentencePieceTokenizer's processor
  out = []
  for i in (int(x) for x in ids):
    if i == PAD_ID:
      out.append('<pad>')
    elif sp is not None:
      out.append(sp.id_to_piece(i))
    else:
      s = tokenizer.decode([i])
      out.append({' ': '\u2423', '\n': '\\n', '\t': '\\t'}.get(s, s) or f'<{i}>')
  return out


# ----------------------------------------------------------------------------- figures

def _grid(n: int) -> tuple[int, int]:
  cols = math.ceil(math.sqrt(n))
  return math.ceil(n / cols), cols


def _heads(weights: np.ndarray, head: int) -> list[int]:
  """Head indices to draw: all for head=-1, else the one (negative: from the end)."""
  n = weights.shape[0]
  if head == -1:
    return list(range(n))
  if not -n <= head < n:
    raise ValueError(f'head={head} is out of range: the layer has heads 0..{n - 1}')
  return [head % n]


def plot_attention(weights: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str], *,
                   head: int = -1, title: str = '', xlabel: str = 'key',
                   ylabel: str = 'query') -> Figure:
  """Heatmaps of attention weights [heads, q, kv]: one head, or every head (head=-1) in a grid.

  Panel i holds exactly weights[head_i] (rows: queries, columns: keys); all
  panels share one color scale from 0 to the largest weight shown.
  """
  heads = _heads(weights, head)
  q, k = weights.shape[1:]
  if len(x_labels) != k or len(y_labels) != q:
    raise ValueError(f'{len(y_labels)} x {len(x_labels)} labels for weights of {q} x {k}')
  rows, cols = _grid(len(heads))
  cell = 0.3 if len(heads) == 1 else 0.17
  w, h = max(3.0, 1.2 + cell * k), max(2.5, 1.0 + cell * q)
  fig = Figure(figsize=(cols * w + 1.0, rows * h + 0.8), layout='constrained')
  axes = fig.subplots(rows, cols, squeeze=False)
  vmax = float(max(weights[i].max() for i in heads)) or 1.0
  fontsize = 8 if len(heads) == 1 else 6
  image = None
  for ax, i in zip(axes.flat, heads):
    image = ax.imshow(weights[i], cmap='viridis', vmin=0.0, vmax=vmax, aspect='equal',
                      interpolation='nearest')
    ax.set_xticks(range(k), x_labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(q), y_labels, fontsize=fontsize)
    if len(heads) > 1:
      ax.set_title(f'head {i}', fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
  for ax in list(axes.flat)[len(heads):]:
    ax.axis('off')
  fig.suptitle(title, fontsize=10)
  fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label='attention weight')
  return fig


def plot_patch_attention(image: np.ndarray, maps: np.ndarray, head_ids: Sequence[int], *,
                         title: str = '', with_mean: bool = True) -> Figure:
  """The image, then each map [gh, gw] of `maps` [len(head_ids), gh, gw] over it (+ their mean).

  Panels after the first hold two images: the picture and exactly that map,
  stretched over the patches it belongs to.
  """
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  gray = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
  panels = [(f'head {i}', m) for i, m in zip(head_ids, maps)]
  if with_mean and len(head_ids) > 1:
    panels.append(('mean over heads', maps.mean(axis=0)))
  rows, cols = _grid(len(panels) + 1)
  fig = Figure(figsize=(2.3 * cols, 2.3 * rows + 0.6), layout='constrained')
  axes = fig.subplots(rows, cols, squeeze=False)
  axes = list(axes.flat)
  kw = dict(cmap='gray') if gray.ndim == 2 else {}
  axes[0].imshow(gray / max(float(gray.max()), 1e-9), **kw)
  axes[0].set_title('input', fontsize=9)
  extent = (-0.5, w - 0.5, h - 0.5, -0.5)
  for ax, (name, m) in zip(axes[1:], panels):
    ax.imshow(gray / max(float(gray.max()), 1e-9), **kw)
    ax.imshow(m, cmap='inferno', alpha=0.6, extent=extent, interpolation='nearest',
              vmin=0.0, vmax=float(m.max()) or 1.0)
    ax.set_title(f'{name} (max {m.max():.2f})', fontsize=8)
  for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
  for ax in axes[len(panels) + 1:]:
    ax.axis('off')
  fig.suptitle(title, fontsize=9)
  return fig


def plot_positions(table: np.ndarray, title: str, *, symmetric: bool = True) -> Figure:
  """A heatmap of a position table [positions, features]."""
  n, d = table.shape
  fig = Figure(figsize=(min(12.0, 3.0 + d / 64), min(8.0, 2.5 + n / 25)), layout='constrained')
  ax = fig.subplots()
  lim = float(np.abs(table).max()) or 1.0
  image = ax.imshow(table, cmap='RdBu_r', aspect='auto', interpolation='nearest',
                    vmin=-lim if symmetric else None, vmax=lim if symmetric else None)
  ax.set_xlabel('feature (dimension)')
  ax.set_ylabel('position')
  ax.set_title(title, fontsize=10)
  fig.colorbar(image, ax=ax)
  return fig


def plot_position_similarity(table: np.ndarray, grid: tuple[int, int], title: str) -> Figure:
  """Cosine similarity of each patch's position embedding to every patch's, on the grid."""
  unit = table / np.maximum(np.linalg.norm(table, axis=-1, keepdims=True), 1e-12)
  sim = (unit @ unit.T).reshape(grid[0], grid[1], grid[0], grid[1])
  fig = Figure(figsize=(0.9 * grid[1] + 1, 0.9 * grid[0] + 0.8), layout='constrained')
  axes = fig.subplots(grid[0], grid[1], squeeze=False)
  image = None
  for r in range(grid[0]):
    for c in range(grid[1]):
      image = axes[r, c].imshow(sim[r, c], cmap='viridis', vmin=-1, vmax=1)
      axes[r, c].set_xticks([])
      axes[r, c].set_yticks([])
  fig.suptitle(title, fontsize=9)
  fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label='cosine similarity')
  return fig


def plot_confusion(matrix: np.ndarray, names: Sequence[str], title: str = '') -> Figure:
  """A confusion matrix (rows: true class, columns: predicted), each row as fractions of its class."""
  matrix = np.asarray(matrix, np.float64)
  fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
  n = len(names)
  fig = Figure(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n), layout='constrained')
  ax = fig.subplots()
  image = ax.imshow(fractions, cmap='Blues', vmin=0.0, vmax=1.0)
  if n <= 30:
    for i in range(n):
      for j in range(n):
        if matrix[i, j]:
          ax.text(j, i, f'{int(matrix[i, j])}', ha='center', va='center', fontsize=6,
                  color='white' if fractions[i, j] > 0.5 else 'black')
    ax.set_xticks(range(n), names, rotation=90, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title, fontsize=9)
  fig.colorbar(image, ax=ax, label='fraction of the true class')
  return fig


def confusion_png(csv_path: str) -> str:
  """Draws a confusion-matrix CSV (written by the classification task) as a PNG beside it."""
  import csv
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  names = rows[0][1:]
  matrix = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
  accuracy = np.trace(matrix) / max(matrix.sum(), 1)
  title = f'{os.path.basename(csv_path)[:-4]}: accuracy {100 * accuracy:.2f}%'
  return save(plot_confusion(matrix, names, title), csv_path[:-4] + '.png')


def save(fig: Figure, path: str, dpi: int = 110) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=dpi, bbox_inches='tight')   # a bare Figure: no pyplot, no backend
  return path


# ----------------------------------------------------------------------------- per task

def translate_and_attend(task, params, text: str) -> dict[str, Any]:
  """Decodes `text` with the task's method, then collects every attention map of the full pass.

  Returns source_ids (pieces + EOS), output_ids (y1 ... EOS), targets_in
  (BOS y1 ... yn: the decoder input that predicts output_ids), translation
  (detokenized) and maps (see `attention_maps`, batch of 1).
  """
  source = list(task.data.tokenizer.encode(text))[:task.config.seq_len - 1] + [EOS_ID]
  tokens = np.asarray(task.translate_tokens(params, np.asarray([source], np.int32))[0]).tolist()
  output = tokens[:tokens.index(EOS_ID) + 1] if EOS_ID in tokens else \
      [t for t in tokens if t != PAD_ID]
  targets_in = [BOS_ID] + output[:-1]
  _, maps = attention_maps(task.model(train=False), params,
                           jnp.asarray([source], jnp.int32), jnp.asarray([targets_in], jnp.int32))
  return dict(source_ids=source, output_ids=output, targets_in=targets_in,
              translation=task.detokenize(output), maps=maps)


def translation_figures(task, params, text: str, out_dir: str, *, layer: int = -1,
                        head: int = -1, kinds: Sequence[str] = ATTENTION_KINDS) -> list[str]:
  """PNGs of the encoder self-, decoder self- and cross-attention of `layer` for `text`."""
  result = translate_and_attend(task, params, text)
  print(f'source:      {text}\ntranslation: {result["translation"]}')
  return draw_translation(result, task.data.tokenizer, text, out_dir, layer=layer, head=head,
                          kinds=kinds)


def draw_translation(result: dict[str, Any], tokenizer, text: str, out_dir: str, *,
                     layer: int = -1, head: int = -1,
                     kinds: Sequence[str] = ATTENTION_KINDS) -> list[str]:
  """PNGs of `kinds` of attention of `layer` from a `translate_and_attend` result."""
  src, tin, out = (token_labels(tokenizer, result[k])
                   for k in ('source_ids', 'targets_in', 'output_ids'))
  axes = {'encoder': (src, src, 'source (key)', 'source (query)'),
          'decoder': (tin, tin, 'decoder input (key)', 'decoder input (query)'),
          'cross': (src, out, 'source (key)', 'output token predicted (query)')}
  paths = []
  for kind in kinds:
    i, weights = select_layer(result['maps'], kind, layer)
    x, y, xl, yl = axes[kind]
    title = (f'{_KIND_TITLE[kind]}, layer {i}'
             f'{"" if head == -1 else f", head {head % weights.shape[1]}"}\n'
             f'{text}  \u2192  {result["translation"]}')
    fig = plot_attention(weights[0], x, y, head=head, title=title, xlabel=xl, ylabel=yl)
    paths.append(save(fig, os.path.join(out_dir, _name(kind, i, head, weights.shape[1]))))
  return paths


def lm_figures(task, params, text: str, out_dir: str, *, layer: int = -1,
               head: int = -1) -> list[str]:
  """PNG of the causal self-attention of `layer` over the prompt `text`."""
  tok = task.data.tokenizer
  ids = list(tok.encode(text))[:task.model_cfg.max_len]
  if not ids:
    raise ValueError('The prompt is empty: pass --text="..."')
  _, maps = attention_maps(task.model(train=False), params, jnp.asarray([ids], jnp.int32))
  i, weights = select_layer(maps, 'decoder', layer)
  labels = token_labels(tok, ids)
  title = (f'self-attention (causal), layer {i}'
           f'{"" if head == -1 else f", head {head % weights.shape[1]}"}')
  fig = plot_attention(weights[0], labels, labels, head=head, title=title)
  return [save(fig, os.path.join(out_dir, _name('decoder', i, head, weights.shape[1])))]


def image_example(data, split: str, index: int) -> tuple[np.ndarray, np.ndarray, int]:
  """(uint8 image [S, S, C] at the model's resolution, the model's input [S, S, C], label)."""
  n = data.num_examples(split)
  if not 0 <= index < n:
    raise ValueError(f'index={index} is out of range: {split!r} has {n} examples')
  image, label = data._split(split).example(index)
  image = data._fit(image)
  return image, data._normalize(image[None])[0], int(label)


def vit_figures(task, params, split: str, index: int, out_dir: str, *, layer: int = -1,
                head: int = -1) -> list[str]:
  """PNG of the patch attention of `layer` over image `index` of `split`."""
  cfg = task.model_cfg
  image, x, label = image_example(task.data, split, index)
  logits, maps = attention_maps(task.model(train=False), params, jnp.asarray(x[None]))
  i, weights = select_layer(maps, 'encoder', layer)
  g = cfg.image_size // cfg.patch_size
  received = patch_attention(weights[0], (g, g), cfg.pool)
  heads = _heads(received, head)
  names = task.data.class_names
  pred = int(np.argmax(np.asarray(logits)[0]))
  what = ("the class token's attention to each patch" if cfg.pool == 'cls' else
          "mean attention each patch receives, over all query patches (pool='gap': no class token)")
  title = (f'{task.config.dataset} {split} #{index}: label {names[label]}, predicted '
           f'{names[pred]}\nlayer {i}: {what}')
  fig = plot_patch_attention(image, received[heads], heads, title=title)
  return [save(fig, os.path.join(out_dir, _name('vit', i, head, weights.shape[1])))]


def _name(kind: str, layer: int, head: int, num_heads: int) -> str:
  which = 'heads' if head == -1 else f'head{head % num_heads}'
  return f'{kind}_layer{layer}_{which}.png'


def sinusoidal_figure(length: int, width: int) -> Figure:
  """The heatmap of `layers.sinusoidal_encoding(length, width)`, the table the models add."""
  return plot_positions(layers.sinusoidal_encoding(length, width),
                        f'sinusoidal positional encoding ({length} positions x {width} features)\n'
                        'PE(pos, 2i) = sin(pos / 10000^(2i/d)),  '
                        'PE(pos, 2i+1) = cos(pos / 10000^(2i/d))')


def posenc_figures(out_dir: str, length: int, width: int, params=None, model_cfg=None) -> list[str]:
  """The learned position tables in `params`, if any; else the sinusoidal table [length, width]."""
  learned = learned_position_tables(params) if params is not None else {}
  if not learned:
    if params is not None:
      print(f"The model has no learned position embeddings (positional="
            f"{getattr(model_cfg, 'positional', '?')!r}): drawing the sinusoidal table.")
    return [save(sinusoidal_figure(length, width),
                 os.path.join(out_dir, f'posenc_sinusoidal_{length}x{width}.png'))]
  paths = []
  for name, t in learned.items():
    slug = name.replace('/', '_')
    paths.append(save(plot_positions(t, f'learned position embeddings: {name} '
                                        f'({t.shape[0]} positions x {t.shape[1]} features)'),
                      os.path.join(out_dir, f'posenc_{slug}.png')))
    side = math.isqrt(t.shape[0])
    if name == 'pos_embedding' and side * side == t.shape[0]:   # a ViT's patch grid
      paths.append(save(plot_position_similarity(
          t, (side, side), 'cosine similarity of each patch position embedding to all others'),
          os.path.join(out_dir, 'posenc_vit_similarity.png')))
  return paths


def learned_position_tables(params) -> dict[str, np.ndarray]:
  """Every `pos_embedding` parameter, as NumPy [positions, features], by its path."""
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(nn.meta.unbox(params)))
  return {'/'.join(p): np.asarray(jax.device_get(v), np.float32).reshape(-1, v.shape[-1])
          for p, v in flat.items() if p[-1] == 'pos_embedding'}


# ----------------------------------------------------------------------------- restoring

def restore(config, workdir: str, step: int | None = None):
  """(task, params, step) of the newest good (or `step`) checkpoint of `workdir`, plain layout
  (inference.load_trained: verified; an error when there is none)."""
  exp, state = inference.load_trained(config, workdir, step)
  return exp.task, state.params, int(state.step)


def attention_figures(config, workdir: str, out_dir: str, *, step: int | None = None,
                      text: str | None = None, split: str | None = None, index: int = 0,
                      layer: int = -1, head: int = -1,
                      kinds: Sequence[str] = ATTENTION_KINDS) -> list[str]:
  """What `python -m tools.visualize attention` does; returns the PNG paths."""
  task, params, ckpt_step = restore(config, workdir, step)
  print(f'checkpoint: step {ckpt_step} of {workdir}')
  split = split or config.eval_split
  makes = task.generates   # the model family, by what it makes
  if makes == 'translations':
    if text is None:
      sources, references = task.data.texts(split)
      if not 0 <= index < len(sources):
        raise ValueError(f'index={index} is out of range: {split!r} has {len(sources)} sentences')
      text = sources[index]
      print(f'{split} #{index} reference: {references[index]}')
    return translation_figures(task, params, text, out_dir, layer=layer, head=head, kinds=kinds)
  if makes == 'continuations':
    return lm_figures(task, params, text if text is not None else config.sample.prompt,
                      out_dir, layer=layer, head=head)
  if makes == 'labels':
    return vit_figures(task, params, split, index, out_dir, layer=layer, head=head)
  raise ValueError(f'No attention figures for task {config.task!r}')


# ----------------------------------------------------------------------------- Hugging Face

def hf_tokens(hf_dir: str, text: str | None, ids: Sequence[int] | None) -> tuple[list, list]:
  """(token ids, labels) of `text` by the checkpoint's own tokenizer.json (needs the
  `tokenizers` package), or the given `ids` (labelled by number)."""
  if ids:
    return [int(i) for i in ids], [str(int(i)) for i in ids]
  if text is None:
    raise ValueError('pass --text="..." (tokenized by DIR/tokenizer.json) or --ids=1,2,3')
  path = os.path.join(hf_dir, 'tokenizer.json')
  try:
    from tokenizers import Tokenizer
  except ImportError:
    raise ValueError('tokenizing --text needs the tokenizers package (pip install tokenizers); '
                     'or pass token ids with --ids') from None
  if not os.path.isfile(path):
    raise ValueError(f'{path} does not exist: download the tokenizer with the model, or pass '
                     'token ids with --ids')
  encoding = Tokenizer.from_file(path).encode(text)
  return list(encoding.ids), list(encoding.tokens)


def hf_attention_figures(hf_dir: str, out_dir: str, *, text: str | None = None,
                         ids: Sequence[int] | None = None, head: int = -1) -> list[str]:
  """Every layer's self-attention of a Hugging Face checkpoint (BERT: bidirectional over
  the word pieces; GPT-2: causal), one PNG per layer (all heads in a grid, or `head`)."""
  from transformer import convert, hf, models
  if workdir_lib.has_checkpoints(hf_dir) and convert.is_converted(
      workdir_lib.read_config(hf_dir), hf_dir):   # a workdir of `tools.convert import`
    cfg, params, kind = inference.load_model(hf_dir)
    with open(os.path.join(hf_dir, convert.HF_SUBDIR, 'config.json'), encoding='utf-8') as f:
      hf_config = json.load(f)
    hf_dir = os.path.join(hf_dir, convert.HF_SUBDIR)   # its tokenizer files
  else:
    hf_config, tensors = hf.read_checkpoint(hf_dir)
    cfg, params = hf.from_hf(hf_config, tensors)
    kind = hf.ARCHITECTURES[hf_config['model_type']].model
  if kind not in ('EncoderOnly', 'DecoderLM'):
    raise ValueError(f'attention figures of imported checkpoints: BERT and GPT-2 (a '
                     f'{hf_config["model_type"]!r} checkpoint has no text-only input here)')
  tokens, labels = hf_tokens(hf_dir, text, ids)
  if len(tokens) > cfg.max_len:
    raise ValueError(f'{len(tokens)} tokens; the model has {cfg.max_len} positions')
  model = getattr(models, kind)(cfg)
  _, maps = attention_maps(model, params, jnp.asarray([tokens], jnp.int32))
  stack = 'encoder' if kind == 'EncoderOnly' else 'decoder'
  paths = []
  for i in range(layer_count(maps, stack)):
    weights = maps[f'{stack}/layer_{i}/self_attention']
    what = 'self-attention' + ('' if stack == 'encoder' else ' (causal)')
    title = (f'{hf_config["model_type"]} {what}, layer {i}'
             f'{"" if head == -1 else f", head {head % weights.shape[1]}"}')
    fig = plot_attention(weights[0], labels, labels, head=head, title=title)
    paths.append(save(fig, os.path.join(out_dir, _name(stack, i, head, weights.shape[1]))))
  return paths


# ----------------------------------------------------------------------------- command line

def _define_flags():
  from absl import flags
  flags.DEFINE_string('workdir', None, 'Directory the model was trained in.')
  flags.DEFINE_string('hf', None, 'attention: a Hugging Face model directory (BERT or GPT-2: '
                      'config.json + model.safetensors), or a workdir of tools.convert import, '
                      'instead of --workdir; every layer.')
  flags.DEFINE_list('ids', None, '--hf: token ids to attend over (instead of --text).')
  flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).')
  flags.DEFINE_string('out', None, 'Folder for the PNG files (default: WORKDIR/attention; '
                      'posenc without --workdir: the current folder).')
  flags.DEFINE_string('text', None, 'Translation: the source sentence; LM: the prompt.')
  flags.DEFINE_string('split', None, 'Split to take the example from (default: eval_split).')
  flags.DEFINE_integer('index', 0, 'Index of the example (image or sentence) in --split.')
  flags.DEFINE_integer('layer', -1, 'Layer, from 0 (negative: from the end).')
  flags.DEFINE_integer('head', -1, 'Head, from 0; -1: every head of the layer in a grid.')
  flags.DEFINE_list('kinds', list(ATTENTION_KINDS),
                    'Translation: which of encoder, decoder, cross to draw.')
  flags.DEFINE_integer('length', 100, 'posenc: number of positions.')
  flags.DEFINE_integer('width', None, "posenc: number of features (default: the config's "
                       'd_model, else 512).')
  from tools import cli
  cli.define_config_flag(sys.argv, from_workdir=True)   # default: WORKDIR/config.json
  return flags.FLAGS


FLAGS = None   # the absl flags, defined only when run as a command (see the end of the file)


def _hf_out(hf_dir: str) -> str:
  """Where `attention --hf=DIR` writes without --out: WORKDIR/attention for a workdir of
  `tools.convert import`; a Hugging Face model folder is never written into."""
  from absl import app

  from transformer import convert
  if workdir_lib.has_checkpoints(hf_dir) and convert.is_converted(
      workdir_lib.read_config(hf_dir), hf_dir):
    return os.path.join(hf_dir, 'attention')
  raise app.UsageError(f'--hf={hf_dir} is a Hugging Face model folder, which is never written '
                       'into: pass --out=DIR for the figures (or convert it first with '
                       'python -m tools.convert import and pass that workdir).')


def main(argv):
  from absl import app
  if len(argv) != 2 or argv[1] not in ('attention', 'posenc'):
    raise app.UsageError('Usage: python -m tools.visualize attention|posenc --flags ...')
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  logs.setup_logging()
  config, workdir = FLAGS.config, FLAGS.workdir
  out = FLAGS.out or (os.path.join(workdir, 'attention') if workdir else '.')
  if argv[1] == 'attention' and FLAGS.hf:
    paths = hf_attention_figures(FLAGS.hf, FLAGS.out or _hf_out(FLAGS.hf),
                                 text=FLAGS.text, ids=FLAGS.ids, head=FLAGS.head)
  elif argv[1] == 'attention':
    if config is None or not workdir:
      raise app.UsageError('attention needs --workdir (a trained run; its config.json is the '
                           'config unless --config names a file).')
    unknown = sorted(set(FLAGS.kinds) - set(ATTENTION_KINDS))
    if unknown:
      raise app.UsageError(f'--kinds: {unknown} not in {ATTENTION_KINDS}')
    paths = attention_figures(config, workdir, out, step=FLAGS.step, text=FLAGS.text,
                              split=FLAGS.split, index=FLAGS.index, layer=FLAGS.layer,
                              head=FLAGS.head, kinds=FLAGS.kinds)
  else:
    params = model_cfg = None
    if workdir:
      if config is None:
        raise app.UsageError(f'{workdir} has no config.json: pass --config too.')
      task, params, _ = restore(config, workdir, FLAGS.step)
      model_cfg = task.model_cfg
    width = FLAGS.width or (config.model.get('d_model') if config is not None else None) or 512
    paths = posenc_figures(out, FLAGS.length, width, params, model_cfg)
  for p in paths:
    print(f'wrote {p}')


if __name__ == '__main__':
  from tools import cli
  FLAGS = _define_flags()
  cli.run(main)
