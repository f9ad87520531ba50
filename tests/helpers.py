"""Helpers shared by the test files (plain functions; fixtures stay in conftest.py).

Imported as `from tests import helpers`: pytest.ini puts the repository on sys.path,
and tests/sharding_checks.py (a script run in a subprocess) puts it there itself.

- REPO, subprocess runs of the entry points (`run_python`), metrics by split (`records`),
  a free localhost port for two-process jobs (`free_port`);
- experiment configs: `tiny_config` (a config module's get_config() made tiny),
  `set_field` (a possibly dotted field);
- models: `tiny_model_cfg`, `key`, `init_variables`, `init_params`, `random_params`,
  `by_path`;
- NumPy float64 references written from the papers: `np64`, `np_softmax`, `np_mha`,
  `np_layernorm`, `np_rmsnorm`, `np_gelu_tanh`. They never call the library.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer.metric_writer import read_metrics
from transformer.model_config import TransformerConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------
# Runs and their metrics.
# ---------------------------------------------------------------------------

def run_python(args, env_extra=None, **kw):
  """`python *args` in the repository (train.py, eval.py, -m tools...), output captured."""
  env = dict(os.environ, **(env_extra or {}))
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300, **kw)


def free_port() -> int:
  """A TCP port free on localhost now (for a jax.distributed coordinator)."""
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def records(workdir, split):
  """The metrics records of `workdir` for one split, in order."""
  return [r for r in read_metrics(workdir) if r['split'] == split]


# ---------------------------------------------------------------------------
# Experiment configs.
# ---------------------------------------------------------------------------

def set_field(config, field, value):
  """config.<field> = value, where `field` may be dotted ('model.num_heads', 'mesh.fsdp')."""
  *parents, name = field.split('.')
  for parent in parents:
    config = config[parent]
  config.update({name: value})


def tiny_config(config_module, model=None, **overrides):
  """`config_module.get_config()` with `model` fields, then `overrides`, set.

  An override may name a field of a sub-config with a dotted key, passed as
  `**{'decoding.method': 'greedy'}`.
  """
  c = config_module.get_config()
  c.model.update(model or {})
  for field, value in overrides.items():
    set_field(c, field, value)
  return c


# ---------------------------------------------------------------------------
# Models.
# ---------------------------------------------------------------------------

def tiny_model_cfg(**fields):
  """A tiny TransformerConfig in the shapes of the models' tests (d_model 16, 2 heads, d_ff
  24, length 7): op-by-op dispatch then reuses compiled primitives across test files."""
  base = dict(vocab_size=13, d_model=16, num_heads=2, d_ff=24, num_encoder_layers=1,
              num_decoder_layers=1, max_len=7, dropout_rate=0.0, deterministic=True)
  base.update(fields)
  return TransformerConfig(**base)


def key(seed):
  """A PRNG key of the 'rbg' implementation: on CPU, XLA compiles its random bits in a
  fraction of the time threefry's take (each new shape of random numbers is a compile)."""
  return jax.random.key(seed, impl='rbg')


def init_variables(module, *args, seed=0):
  return module.init(key(seed), *args)


def init_params(module, *args, seed=0):
  """The module's own initial parameters, unboxed."""
  return nn.meta.unbox(init_variables(module, *args, seed=seed)['params'])


def half_normal(names, z):
  """random_params' default: 0.5 * N(0, 1) for every leaf, biases included (the
  initializer's zeros would hide a missing bias)."""
  del names
  return 0.5 * z


def random_params(module, *args, seed=0, fill=half_normal):
  """Random parameters of the module's shapes (jax.eval_shape: nothing is compiled).

  Leaf by leaf, in tree order, z ~ N(0, 1) of the leaf's shape is drawn (float64) from
  np.random.default_rng(seed); the leaf is `fill(names, z)` as float32, where `names`
  is the leaf's path of keys, e.g. ('decoder', 'layer_0', 'mlp', 'wi', 'kernel').
  """
  shapes = nn.meta.unbox(jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)['params'])
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    names = tuple(str(getattr(k, 'key', k)) for k in path)
    return jnp.asarray(fill(names, rng.normal(size=s.shape)), jnp.float32)

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def by_path(tree, is_leaf=None):
  """{jax.tree_util.keystr(path): leaf} of a tree."""
  return {jax.tree_util.keystr(p): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]}


# ---------------------------------------------------------------------------
# NumPy float64 references.
# ---------------------------------------------------------------------------

def np64(tree):
  return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def np_softmax(x, axis=-1):
  x = x - np.max(x, axis=axis, keepdims=True)
  e = np.exp(x)
  return e / np.sum(e, axis=axis, keepdims=True)


def np_rotate(v, positions, base=1e4):
  """Rotary positions (Su et al. 2021) in float64, as complex multiplication: features
  (j, j + d/2) are the complex number v_j + i v_{j+d/2}, turned by angle pos * base^(-2j/d).

  v [len, d], positions [len].
  """
  v = np.asarray(v, np.float64)
  half = v.shape[-1] // 2
  z = v[:, :half] + 1j * v[:, half:]
  inv_wavelength = base ** (-2.0 * np.arange(half) / (2 * half))
  theta = np.asarray(positions, np.float64)[:, None] * inv_wavelength
  z = z * np.exp(1j * theta)
  return np.concatenate([z.real, z.imag], axis=-1)


def np_mha(p, x, kv=None, mask=None, positions=None, rope_base=1e4):
  """Per-head attention written out by hand from the module's parameters (float64).

  head_i = Attention(x Wq_i + bq_i, kv Wk_j + bk_j, kv Wv_j + bv_j) with j = i // (h / g)
  for g key/value heads (g = h: Vaswani et al. 2017, section 3.2.2; g < h: grouped-query
  attention, Ainslie et al. 2023); out = Concat(head_1, ..., head_h) Wo + bo.
  kv: None for self-attention. mask: boolean, broadcastable to
  [batch, heads, q_len, kv_len], True where attention is allowed. positions
  [batch, len] (self-attention): queries and keys rotated (np_rotate).
  """
  p = np64(p)
  x = np.asarray(x, np.float64)
  kv = x if kv is None else np.asarray(kv, np.float64)
  heads = p['query']['kernel'].shape[1]
  kv_heads = p['key']['kernel'].shape[1]
  d_k = p['query']['kernel'].shape[2]
  b = x.shape[0]

  def bias(name, h):
    return p[name]['bias'][h] if 'bias' in p[name] else 0.0

  outs = []
  for bi in range(b):
    per_head = []
    for h in range(heads):
      j = h // (heads // kv_heads)
      qh = x[bi] @ p['query']['kernel'][:, h, :] + bias('query', h)
      kh = kv[bi] @ p['key']['kernel'][:, j, :] + bias('key', j)
      vh = kv[bi] @ p['value']['kernel'][:, j, :] + bias('value', j)
      if positions is not None:
        qh = np_rotate(qh, positions[bi], rope_base)
        kh = np_rotate(kh, positions[bi], rope_base)
      logits = qh @ kh.T / np.sqrt(d_k)
      if mask is not None:
        m = np.broadcast_to(mask, (b, heads, x.shape[1], kv.shape[1]))[bi, h]
        logits = np.where(m, logits, -np.inf)
      per_head.append(np_softmax(logits) @ vh)
    concat = np.concatenate(per_head, axis=-1)                 # [len, heads * d_k]
    w_o = p['out']['kernel'].reshape(heads * d_k, -1)          # rows ordered (head, d_k)
    outs.append(concat @ w_o + (p['out']['bias'] if 'bias' in p['out'] else 0.0))
  return np.stack(outs)


def np_layernorm(x, scale, bias, eps):
  """LayerNorm (Ba et al. 2016) over the last axis."""
  x = np.asarray(x, np.float64)
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * scale + bias


def np_rmsnorm(x, scale, eps):
  """RMSNorm (Zhang & Sennrich 2019) over the last axis."""
  x = np.asarray(x, np.float64)
  return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * scale


def np_gelu_tanh(x):
  # Hendrycks & Gimpel's tanh approximation (flax's and the ViT reference's nn.gelu).
  return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
