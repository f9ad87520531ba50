"""Attention maps and positional-encoding heatmaps, as a library and a command.

  python -m tools.visualize attention --config=configs/NAME.py --workdir=DIR \\
      [--text="..."] [--split=S --index=N] [--layer=-1] [--head=-1] \\
      [--kinds=encoder,decoder,cross] [--step=N] [--out=DIR/attention] [--config.FIELD=VALUE]
  python -m tools.visualize attention --hf=DIR (--text="..." | --ids=101,7592,102 |
      --image=FILE) [--head=-1] [--out=DIR]
  python -m tools.visualize attention --html (--workdir=DIR | --hf=DIR) [the same inputs]
      [--layers=0,5,-1] [--max_mb=16]
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
  config.sample.prompt); with --html also an encoder-only model's (MLM, sentence
  classification), and --split/--index instead of --text take a window of a stream
  dataset or a sentence of a classification dataset.
- ViT: image --index of --split. With a class token (pool='cls'): the class
  token's attention over the patches; with global average pooling
  (pool='gap'): the mean over query positions of the attention each patch
  receives. Drawn over the image.
--head=-1 draws every head of the layer in a grid, --head=H head H (from 0);
--layer counts from 0 like the parameter names `layer_0`, ... (negative: from
the end; default: the last layer). PNG files go to --out (default
DIR/attention), named KIND_layerL_heads.png or KIND_layerL_headH.png.

ViT figures also get vit_rollout.png: attention rollout (Abnar and Zuidema,
2020) through every layer and the last layer's class-token attention per head,
over the image.

`attention --hf=DIR` draws every layer's attention of a Hugging Face
checkpoint (DIR: its directory, or a workdir of `tools.convert import`),
imported by transformer.hf: BERT (bidirectional) and GPT-2 (causal) over the
tokens of --text (by its tokenizer.json with the `tokenizers` package) or over
token ids given with --ids; T5 over a source (--text by tokenizer.json or
spiece.model, or --ids) that it translates greedily, encoder, decoder and
cross-attention; ViT over --image (resized, normalised as its
preprocessor_config.json says), with the rollout figure.

`attention --html` writes OUT/attention.html instead: one self-contained page
(tools/attention_page.py; no network) with every layer of every kind as tabs,
a head view and a model view, and for a ViT the rollout and class-token maps
over the image. --layers keeps only those layers; a page holds at most
--max_mb MB of weights (one byte each), and leaves out evenly spaced layers
beyond it, saying which.

Input that does not fit (text longer than the model's positions, a layer it
does not have, an image it cannot read, a workdir with no checkpoint) is one
line and exit status 2.

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
from typing import Any, Callable, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from PIL import Image

from tools import attention_page
from transformer import host, inference, layers, logs
from transformer import workdir as workdir_lib
from transformer.data.tokenizers import BOS_ID, EOS_ID, PAD_ID, HFTokenizer
from transformer.errors import InputError

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
    raise InputError(f'layer={layer} is out of range: the {stack} has layers 0..{n - 1}')
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


def attention_rollout(layer_weights: Sequence[np.ndarray], residual: float = 0.5) -> np.ndarray:
  """Attention rollout (Abnar and Zuidema, 2020) of one input, from its attention [heads, N, N]
  in every layer, first to last: each layer's mean over heads mixed with the identity for the
  residual connection, A' = residual * I + (1 - residual) * mean_h(A) (rows renormalised),
  multiplied through the layers, R = A'_L ... A'_1 ([N, N], float64). Row i: how much each
  input token flows into position i's output."""
  rollout = None
  for w in layer_weights:
    a = np.asarray(w, np.float64).mean(axis=0)
    a = residual * np.eye(a.shape[-1]) + (1.0 - residual) * a
    a /= a.sum(axis=-1, keepdims=True)
    rollout = a if rollout is None else a @ rollout
  return rollout


def rollout_map(rollout: np.ndarray, grid: tuple[int, int], pool: str) -> np.ndarray:
  """[gh, gw] of a ViT's rollout: with a class token, its row over the patches (the class
  token's own share left out); pool='gap': the mean of the rows (every patch's output)."""
  received = rollout[0, 1:] if pool == 'cls' else rollout.mean(axis=0)
  return received.reshape(grid)


def vit_maps(layer_weights: Sequence[np.ndarray], grid: tuple[int, int],
             pool: str) -> dict[str, np.ndarray]:
  """The maps over the image of one input's ViT attention (each layer [heads, N, N], first to
  last): the rollout through every layer, then the last layer's attention per head
  (`patch_attention`: the class token's, or with pool='gap' the mean received) and their mean."""
  last = patch_attention(np.asarray(layer_weights[-1]), grid, pool)
  n = len(layer_weights) - 1
  what = '[CLS] attention' if pool == 'cls' else 'mean attention received'
  maps = {'attention rollout, all layers': rollout_map(attention_rollout(layer_weights), grid,
                                                       pool)}
  for h, m in enumerate(last):
    maps[f'layer {n} head {h}: {what}'] = m
  maps[f'layer {n}: mean over heads'] = last.mean(axis=0)
  return maps


def patch_labels(grid: tuple[int, int], pool: str) -> list[str]:
  """Token labels of a ViT's sequence: [CLS] (with a class token), then r{row}c{column}."""
  return (['[CLS]'] if pool == 'cls' else []) + [f'r{r}c{c}' for r in range(grid[0])
                                                  for c in range(grid[1])]


def stacked(maps: dict[str, np.ndarray], stack: str, name: str) -> np.ndarray:
  """Every layer's weights of one kind, for the first example: [layers, heads, q, k]."""
  return np.stack([maps[f'{stack}/layer_{i}/{name}'][0] for i in range(layer_count(maps, stack))])


def check_length(n: int, max_len: int, what: str = '--text') -> None:
  if n > max_len:
    raise InputError(f'{what} is {n} tokens; the model has {max_len} positions: shorten it')
  if n == 0:
    raise InputError(f'{what} is empty: pass --text="..."')


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
    raise InputError(f'head={head} is out of range: the layer has heads 0..{n - 1}')
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
                         title: str = '', with_mean: bool = True,
                         names: Sequence[str] | None = None) -> Figure:
  """The image, then each map [gh, gw] of `maps` [len(head_ids), gh, gw] over it (+ their mean).

  Panels after the first hold two images: the picture and exactly that map,
  stretched over the patches it belongs to. `names` titles the panels instead
  of 'head i' (and no mean is added).
  """
  image = np.asarray(image, np.float32)
  h, w = image.shape[:2]
  gray = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
  panels = [(f'head {i}', m) for i, m in zip(head_ids, maps)] if names is None else \
      list(zip(names, maps))
  if with_mean and names is None and len(head_ids) > 1:
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
    ax.set_title(f'{name} (max {m.max():.2f})', fontsize=8 if len(name) < 24 else 6)
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
  source = list(task.data.tokenizer.encode(text)) + [EOS_ID]
  check_length(len(source), task.model_cfg.max_len, 'the source sentence (with its EOS)')
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
  ids = list(tok.encode(text))
  check_length(len(ids), task.model_cfg.max_len)
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
    raise InputError(f'index={index} is out of range: {split!r} has {n} examples')
  image, label = data._split(split).example(index)
  image = data.preprocess.fit(image)
  return image, data.preprocess.normalize(image[None])[0], int(label)


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
  paths = [save(fig, os.path.join(out_dir, _name('vit', i, head, weights.shape[1])))]
  title = (f'{task.config.dataset} {split} #{index}: label {names[label]}, predicted '
           f'{names[pred]}')
  named = vit_maps(list(stacked(maps, 'encoder', 'self_attention')), (g, g), cfg.pool)
  return paths + [rollout_png(image, named, title, out_dir)]


def rollout_png(image: np.ndarray, named_maps: dict[str, np.ndarray], title: str,
                out_dir: str) -> str:
  """vit_rollout.png: each of `named_maps` (`vit_maps`: the rollout and the last layer's
  attention per head) over `image`, titled by its name."""
  fig = plot_patch_attention(image, np.stack(list(named_maps.values())), [], title=title,
                             names=list(named_maps))
  return save(fig, os.path.join(out_dir, 'vit_rollout.png'))


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
      text = source_text(task, split, index)
    return translation_figures(task, params, text, out_dir, layer=layer, head=head, kinds=kinds)
  if makes == 'continuations':
    return lm_figures(task, params, text if text is not None else config.sample.prompt,
                      out_dir, layer=layer, head=head)
  if makes == 'labels':
    return vit_figures(task, params, split, index, out_dir, layer=layer, head=head)
  raise ValueError(f'No attention figures for task {config.task!r}')


def source_text(task, split: str, index: int) -> str:
  """Source sentence `index` of a translation task's `split` (its reference is printed)."""
  sources, references = task.data.texts(split)
  if not 0 <= index < len(sources):
    raise InputError(f'index={index} is out of range: {split!r} has {len(sources)} sentences')
  print(f'{split} #{index} reference: {references[index]}')
  return sources[index]


# ----------------------------------------------------------------------------- interactive page

def translation_views(maps: dict[str, np.ndarray], src: Sequence[str], tgt_in: Sequence[str],
                      out: Sequence[str]) -> list[attention_page.TokenView]:
  """Every layer's encoder self-, decoder self- and cross-attention of an encoder-decoder
  (`attention_maps` of one example), labelled by the source, decoder-input and output tokens."""
  return [
      attention_page.TokenView('encoder self-attention',
                               stacked(maps, 'encoder', 'self_attention'), src, src),
      attention_page.TokenView('decoder self-attention',
                               stacked(maps, 'decoder', 'self_attention'), tgt_in, tgt_in,
                               causal=True, note='The decoder input: the start token, then the '
                               'output so far.'),
      attention_page.TokenView('cross-attention', stacked(maps, 'decoder', 'cross_attention'),
                               out, src, note='Queries: each decoder position, labelled by the '
                               'output token it predicts; keys: the source.')]


def self_attention_view(maps: dict[str, np.ndarray], labels: Sequence[str],
                        causal: bool) -> attention_page.TokenView:
  """Every layer's self-attention of a decoder-only (causal) or encoder-only model."""
  if causal:
    return attention_page.TokenView('decoder self-attention (causal)',
                                    stacked(maps, 'decoder', 'self_attention'), labels, labels,
                                    causal=True)
  return attention_page.TokenView('encoder self-attention (bidirectional)',
                                  stacked(maps, 'encoder', 'self_attention'), labels, labels)


def vit_views(maps: dict[str, np.ndarray], image: np.ndarray, cfg) -> list:
  """A ViT's patch self-attention (every layer) and its maps over the image (`vit_maps`)."""
  g = (cfg.image_size // cfg.patch_size,) * 2
  weights = stacked(maps, 'encoder', 'self_attention')
  labels = patch_labels(g, cfg.pool)
  note = ('Attention rollout (Abnar and Zuidema, 2020): the mean over heads of each layer, '
          'with the identity for the residual (0.5 each), multiplied through the layers; ' +
          ("the class token's row." if cfg.pool == 'cls' else
           'the mean of all rows (no class token: pool=gap).'))
  return [attention_page.TokenView('patch self-attention', weights, labels, labels),
          attention_page.ImageView('attention over the image', image,
                                   vit_maps(list(weights), g, cfg.pool), note=note)]


def run_views(config, task, params, *, text: str | None = None, split: str | None = None,
              index: int = 0) -> tuple[str, list]:
  """(title, views) of every layer's attention of a trained run's model on one input: a
  translation's three kinds, a language model's causal or an encoder's bidirectional
  self-attention over --text (or example --index of --split: `example_ids`), a ViT's
  patches of image --index of --split."""
  from_split, split = split is not None, split or config.eval_split
  model = task.model(train=False)
  kind = type(model).__name__
  if task.generates == 'translations':
    text = source_text(task, split, index) if text is None else text
    r = translate_and_attend(task, params, text)
    tok = task.data.tokenizer
    print(f'source:      {text}\ntranslation: {r["translation"]}')
    return f'{text}  \u2192  {r["translation"]}', translation_views(
        r['maps'], *(token_labels(tok, r[k]) for k in ('source_ids', 'targets_in', 'output_ids')))
  if kind == 'ViT':
    image, x, label = image_example(task.data, split, index)
    logits, maps = attention_maps(model, params, jnp.asarray(x[None]))
    names = task.data.class_names
    pred = int(np.argmax(np.asarray(logits)[0]))
    return (f'{config.dataset} {split} #{index}: label {names[label]}, predicted {names[pred]}',
            vit_views(maps, image, task.model_cfg))
  tok = task.tokenizer
  if kind not in ('DecoderLM', 'EncoderOnly') or tok is None:
    raise InputError(f'no attention view for task {config.task!r} (model {kind})')
  if text is None and from_split:
    ids = example_ids(task, split, index, min(config.seq_len, task.model_cfg.max_len))
    _, maps = attention_maps(model, params, jnp.asarray([ids], jnp.int32))
    return (f'{config.dataset} {split} #{index}',
            [self_attention_view(maps, token_labels(tok, ids), kind == 'DecoderLM')])
  if text is None and kind == 'DecoderLM':
    text = config.sample.prompt
  if text is None:
    raise InputError(f'pass --text="..." (the sentence the {kind} model reads), or '
                     '--split=S --index=N for an example of the dataset')
  lower = getattr(task.data, 'lowercase', False)   # a word vocabulary's sentences (SST-2)
  ids = list(tok.encode(text.lower() if lower else text))
  check_length(len(ids), task.model_cfg.max_len)
  _, maps = attention_maps(model, params, jnp.asarray([ids], jnp.int32))
  return text, [self_attention_view(maps, token_labels(tok, ids), kind == 'DecoderLM')]


def example_ids(task, split: str, index: int, length: int) -> list[int]:
  """Token ids of example `index` of `split` for a text model: window `index` of `length`
  tokens of a stream dataset (Tiny Shakespeare, PTB), or sentence `index` of a sentence
  classification dataset (its padding left out)."""
  data = task.data
  streams = getattr(data, '_streams', None)
  rows = getattr(data, '_rows', None)
  source = streams if streams is not None else rows
  if source is None:
    raise InputError(f'--split/--index: {data.name} has no examples to take here; pass '
                     '--text="..."')
  if split not in source:
    raise InputError(f'--split={split}: {data.name} has the splits {tuple(source)}')
  if streams is not None:
    n = len(streams[split]) // length
    if not 0 <= index < n:
      raise InputError(f'index={index} is out of range: {split!r} has {n} windows of '
                       f'{length} tokens')
    return [int(t) for t in streams[split][index * length:(index + 1) * length]]
  if not 0 <= index < len(rows[split]):
    raise InputError(f'index={index} is out of range: {split!r} has {len(rows[split])} '
                     'sentences')
  pad = getattr(data, 'pad_id', PAD_ID)   # the tokenizer's padding (a tokenizer.json's)
  return [int(t) for t in rows[split][index] if t != pad]


def attention_html(config, workdir: str, path: str, *, step: int | None = None,
                   text: str | None = None, split: str | None = None, index: int = 0,
                   layers: Sequence[int] | None = None,
                   max_mb: float = attention_page.DEFAULT_MAX_MB) -> str:
  """What `python -m tools.visualize attention --html` writes for a trained run: one
  self-contained page (tools/attention_page.py) with every layer's attention of one input."""
  task, params, ckpt_step = restore(config, workdir, step)
  print(f'checkpoint: step {ckpt_step} of {workdir}')
  title, views = run_views(config, task, params, text=text, split=split, index=index)
  explorer = attention_page.Explorer(f'{config.task}: {title}', views,
                                     notes=[f'{workdir}, checkpoint step {ckpt_step}'])
  return attention_page.write([explorer], path, layers=layers, max_mb=max_mb)


# ----------------------------------------------------------------------------- Hugging Face

def _hf_tokenizer(hf_dir: str, eos_id: int | None = None):
  """(encode: text -> ids, label: id -> str) of the checkpoint's own tokenizer: its
  tokenizer.json (HFTokenizer: the file's own special tokens), or T5's spiece.model
  (SentencePiece, with `eos_id` appended as T5's tokenizer does); None when it has neither."""
  json_path, spm_path = (os.path.join(hf_dir, f) for f in ('tokenizer.json', 'spiece.model'))
  if os.path.isfile(json_path):
    try:
      tok = HFTokenizer(json_path)
    except ValueError as e:   # no tokenizers package, or an unreadable file
      raise InputError(f'{e}; or pass token ids with --ids') from None
    return tok.encode, lambda i: tok.id_to_token(i) or str(i)
  if os.path.isfile(spm_path):
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=spm_path)
    end = [] if eos_id is None else [eos_id]
    return (lambda text: list(sp.encode(text)) + end), (lambda i: sp.id_to_piece(int(i)))
  return None


def hf_tokens(hf_dir: str, text: str | None, ids: Sequence[int] | None,
              eos_id: int | None = None) -> tuple[list, list, Callable[[int], str]]:
  """(token ids, their labels, id -> label) of `text` by the checkpoint's own tokenizer
  (`_hf_tokenizer`), or of the given `ids` (labelled by number)."""
  if ids:
    return [int(i) for i in ids], [str(int(i)) for i in ids], str
  if text is None:
    raise InputError('pass --text="..." (tokenized by the model\'s tokenizer.json or '
                     'spiece.model) or --ids=1,2,3')
  tokenizer = _hf_tokenizer(hf_dir, eos_id)
  if tokenizer is None:
    raise InputError(f'{hf_dir} has no tokenizer.json or spiece.model: download the tokenizer '
                     'with the model, or pass token ids with --ids')
  encode, label = tokenizer
  out = encode(text)
  return out, [label(i) for i in out], label


def hf_image(path: str, cfg, hf_dir: str) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [S, S, C] resized to the model's resolution, the model's input) of an image file,
  normalised as the checkpoint's preprocessor_config.json says (default: Hugging Face's ViT
  image processor: x / 255, then mean 0.5 and std 0.5 per channel)."""
  try:
    with Image.open(path) as im:
      im = im.convert('RGB' if cfg.num_channels == 3 else 'L')
      im = im.resize((cfg.image_size, cfg.image_size), Image.BILINEAR)
      pixels = np.asarray(im, np.uint8)
  except (OSError, ValueError) as e:
    raise InputError(f'--image={path}: cannot read it as an image ({e})') from None
  pixels = pixels.reshape(cfg.image_size, cfg.image_size, cfg.num_channels)
  proc = {}
  proc_path = os.path.join(hf_dir, 'preprocessor_config.json')
  if os.path.isfile(proc_path):
    with open(proc_path, encoding='utf-8') as f:
      proc = json.load(f)
  x = pixels.astype(np.float32) * float(proc.get('rescale_factor', 1 / 255))
  if proc.get('do_normalize', True):
    x = (x - np.asarray(proc.get('image_mean', 0.5), np.float32)) / \
        np.asarray(proc.get('image_std', 0.5), np.float32)
  return pixels, x


def _is_converted_workdir(path: str) -> bool:
  """Whether `path` is a workdir of `tools.convert import` (not a Hugging Face folder)."""
  from transformer import convert
  return workdir_lib.has_checkpoints(path) and convert.is_converted(
      workdir_lib.read_config(path), path)


def hf_model(hf_dir: str):
  """(TransformerConfig, params, model class name, Hugging Face config.json, folder of its
  tokenizer files) of a Hugging Face checkpoint folder or a workdir of `tools.convert import`."""
  from transformer import convert, hf
  if _is_converted_workdir(hf_dir):
    cfg, params, kind = inference.load_model(hf_dir)
    files = os.path.join(hf_dir, convert.HF_SUBDIR)
    with open(os.path.join(files, 'config.json'), encoding='utf-8') as f:
      return cfg, params, kind, json.load(f), files
  hf_config, tensors = hf.read_checkpoint(hf_dir)
  cfg, params = hf.from_hf(hf_config, tensors)
  return cfg, params, hf.ARCHITECTURES[hf_config['model_type']].model, hf_config, hf_dir


def hf_views(hf_dir: str, *, text: str | None = None, ids: Sequence[int] | None = None,
             image: str | None = None) -> tuple[str, list]:
  """(title, views) of every layer's attention of a Hugging Face checkpoint on one input: BERT
  (bidirectional) and GPT-2 (causal) over --text or --ids; T5 over a source it translates
  greedily (encoder, decoder and cross-attention); ViT over --image."""
  from transformer import decoding, models
  cfg, params, kind, hf_config, files = hf_model(hf_dir)
  model_type = hf_config.get('model_type')
  model = getattr(models, kind)(cfg)
  if kind == 'ViT':
    if not image:
      raise InputError(f'a {model_type} checkpoint looks at an image: pass --image=FILE '
                       '(PNG or JPEG)')
    pixels, x = hf_image(image, cfg, files)
    logits, maps = attention_maps(model, params, jnp.asarray(x[None]))
    pred = int(np.argmax(np.asarray(logits)[0]))
    name = hf_config.get('id2label', {}).get(str(pred), str(pred))
    return (f'{model_type}: {os.path.basename(image)}, predicted {name}',
            vit_views(maps, pixels, cfg))
  if image:
    raise InputError(f'--image is for ViT checkpoints; this one is {model_type!r}')
  if kind == 'EncoderDecoder':
    eos, start = int(hf_config.get('eos_token_id', 1)), int(
        hf_config.get('decoder_start_token_id', 0))
    src, src_labels, label = hf_tokens(files, text, ids, eos_id=eos)
    check_length(len(src), cfg.max_len)
    out = np.asarray(decoding.translate_greedy(params, cfg, jnp.asarray([src], jnp.int32),
                                               bos_id=start, eos_id=eos))[0].tolist()
    out = out[:out.index(eos) + 1] if eos in out else out
    tgt_in = [start] + out[:-1]
    _, maps = attention_maps(model, params, jnp.asarray([src], jnp.int32),
                             jnp.asarray([tgt_in], jnp.int32))
    outputs = [label(i) for i in out]
    return (f'{model_type}: {" ".join(src_labels)}  \u2192  {" ".join(outputs)}',
            translation_views(maps, src_labels, [label(i) for i in tgt_in], outputs))
  tokens, labels, _ = hf_tokens(files, text, ids)
  check_length(len(tokens), cfg.max_len, '--text' if text is not None and not ids else '--ids')
  _, maps = attention_maps(model, params, jnp.asarray([tokens], jnp.int32))
  return (f'{model_type}: {" ".join(labels)}',
          [self_attention_view(maps, labels, causal=kind == 'DecoderLM')])


def hf_attention_figures(hf_dir: str, out_dir: str, *, text: str | None = None,
                         ids: Sequence[int] | None = None, image: str | None = None,
                         head: int = -1) -> list[str]:
  """PNGs of every layer's attention of a Hugging Face checkpoint (`hf_views`): one per layer
  and kind (all heads in a grid, or `head`), named like a trained run's; a ViT's rollout and
  last-layer attention per head over the image (vit_rollout.png)."""
  title, views = hf_views(hf_dir, text=text, ids=ids, image=image)
  paths = []
  for view in views:
    if isinstance(view, attention_page.ImageView):
      paths.append(rollout_png(view.image, view.maps, title, out_dir))
      continue
    if len(views) > 1 and view.name.startswith('patch'):
      continue   # a ViT's token-to-token grids: in the page, not as PNGs
    prefix = view.name.split()[0].split('-')[0]   # encoder, decoder or cross
    for i, weights in zip(view.layers, view.weights):
      fig = plot_attention(weights, view.keys, view.queries, head=head,
                           title=f'{view.name}, layer {i}'
                                 f'{"" if head == -1 else f", head {head % weights.shape[0]}"}'
                                 f'\n{title}')
      paths.append(save(fig, os.path.join(out_dir, _name(prefix, i, head, weights.shape[0]))))
  return paths


def hf_attention_html(hf_dir: str, path: str, *, text: str | None = None,
                      ids: Sequence[int] | None = None, image: str | None = None,
                      layers: Sequence[int] | None = None,
                      max_mb: float = attention_page.DEFAULT_MAX_MB) -> str:
  """`attention --html --hf=DIR`: the page of `hf_views`."""
  title, views = hf_views(hf_dir, text=text, ids=ids, image=image)
  return attention_page.write([attention_page.Explorer(title, views, notes=[hf_dir])], path,
                              layers=layers, max_mb=max_mb)


# ----------------------------------------------------------------------------- command line

def _define_flags():
  from absl import flags
  flags.DEFINE_string('workdir', None, 'Directory the model was trained in.')
  flags.DEFINE_string('hf', None, 'attention: a Hugging Face model directory (BERT, GPT-2, '
                      'T5 or ViT: config.json + model.safetensors), or a workdir of '
                      'tools.convert import, instead of --workdir; every layer.')
  flags.DEFINE_list('ids', None, '--hf: token ids to attend over (instead of --text).')
  flags.DEFINE_string('image', None, '--hf of a ViT: the image file (PNG or JPEG) to look at.')
  flags.DEFINE_bool('html', False, 'attention: one self-contained interactive page '
                    '(OUT/attention.html: head view, model view, every layer; ViT: rollout '
                    'over the image) instead of PNG files.')
  flags.DEFINE_list('layers', None, '--html: only these layers (from 0; negative: from the '
                    'end); default: all that fit --max_mb.')
  flags.DEFINE_float('max_mb', attention_page.DEFAULT_MAX_MB, '--html: the most MB of '
                     'attention weights (one byte each) a page holds; layers beyond it are '
                     'left out, evenly spaced, and the page says which.')
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
  if _is_converted_workdir(hf_dir):
    return os.path.join(hf_dir, 'attention')
  raise app.UsageError(f'--hf={hf_dir} is a Hugging Face model folder, which is never written '
                       'into: pass --out=DIR for the figures (or convert it first with '
                       'python -m tools.convert import and pass that workdir).')


def _int_list(name: str, values: Sequence[str] | None) -> list[int] | None:
  from absl import app
  try:
    return [int(v) for v in values] if values else None
  except ValueError:
    raise app.UsageError(f'--{name}={",".join(values)}: give whole numbers, e.g. '
                         f'--{name}=0,3,-1') from None


def main(argv):
  from absl import app
  if len(argv) != 2 or argv[1] not in ('attention', 'posenc'):
    raise app.UsageError('Usage: python -m tools.visualize attention|posenc --flags ...')
  host.tune_allocator()   # CPU: step temporaries stay in the heap (transformer/host.py)
  logs.setup_logging()
  config, workdir = FLAGS.config, FLAGS.workdir
  out = FLAGS.out or (os.path.join(workdir, 'attention') if workdir else '.')
  layers = _int_list('layers', FLAGS.layers)
  ids = _int_list('ids', FLAGS.ids)
  if FLAGS.max_mb <= 0:
    raise app.UsageError(f'--max_mb={FLAGS.max_mb}: must be positive')
  if argv[1] == 'attention' and FLAGS.hf:
    out = FLAGS.out or _hf_out(FLAGS.hf)
    if FLAGS.html:
      paths = [hf_attention_html(FLAGS.hf, os.path.join(out, 'attention.html'), text=FLAGS.text,
                                 ids=ids, image=FLAGS.image, layers=layers,
                                 max_mb=FLAGS.max_mb)]
    else:
      paths = hf_attention_figures(FLAGS.hf, out, text=FLAGS.text, ids=ids, image=FLAGS.image,
                                   head=FLAGS.head)
  elif argv[1] == 'attention':
    if config is None or not workdir:
      raise app.UsageError('attention needs --workdir (a trained run; its config.json is the '
                           'config unless --config names a file) or --hf.')
    unknown = sorted(set(FLAGS.kinds) - set(ATTENTION_KINDS))
    if unknown:
      raise app.UsageError(f'--kinds: {unknown} not in {ATTENTION_KINDS}')
    if FLAGS.html:
      paths = [attention_html(config, workdir, os.path.join(out, 'attention.html'),
                              step=FLAGS.step, text=FLAGS.text, split=FLAGS.split,
                              index=FLAGS.index, layers=layers, max_mb=FLAGS.max_mb)]
    else:
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
