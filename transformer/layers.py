"""Building blocks: Dense projections, norms, feed-forward, embeddings, positions.

Every parameter is created with logical axis names (`embed`, `mlp`, `heads`,
`kv`, `vocab`, ...). `transformer.sharding` maps them onto mesh axes; nothing
here names a mesh axis.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer.model_config import TransformerConfig

Array = jax.Array

# Initializers. Xavier-uniform for projections (as in the tensor2tensor
# Transformer), normal(d_model^-0.5) for embeddings shared with the output layer.
default_kernel_init = nn.initializers.xavier_uniform()


def _as_tuple(x) -> tuple:
  return tuple(x) if isinstance(x, Sequence) else (x,)


class Dense(nn.Module):
  """A projection from the last `len(in_axes)` axes of x to `features`.

  The kernel has shape (*in_features, *features) and logical axis names
  `in_axes + out_axes`. The matmul is done on a 2-D view of the input
  (batch*time, in) which is the shape XLA's CPU backend handles fastest
  (see docs/ARCHITECTURE.md, "Performance notes").
  """
  features: int | Sequence[int]
  in_axes: Sequence[str]
  out_axes: Sequence[str]
  num_contract: int = 1          # how many trailing axes of x are contracted
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = default_kernel_init

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = _as_tuple(self.features)
    in_shape = x.shape[-self.num_contract:]
    batch_shape = x.shape[:-self.num_contract]
    n_in, n_out = math.prod(in_shape), math.prod(features)

    def init(key, shape, dtype):
      # Initialize as a 2-D (fan_in, fan_out) matrix so fans are right.
      return self.kernel_init(key, (n_in, n_out), dtype).reshape(shape)

    kernel = self.param(
        'kernel', nn.with_logical_partitioning(init, tuple(self.in_axes) + tuple(self.out_axes)),
        in_shape + features, self.param_dtype)
    y = jnp.dot(x.reshape(-1, n_in).astype(self.dtype),
                kernel.reshape(n_in, n_out).astype(self.dtype))
    if self.use_bias:
      bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros,
                                                             tuple(self.out_axes)),
                        features, self.param_dtype)
      y = y + bias.reshape(n_out).astype(self.dtype)
    return y.reshape(batch_shape + features)


class LayerNorm(nn.Module):
  """y = (x - mean) / sqrt(var + eps) * scale + bias over the last axis.

  Statistics are computed in float32 whatever the computation dtype.
  """
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: Array) -> Array:
    features = x.shape[-1]
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones, ('norm',)),
                       (features,), self.param_dtype)
    y = y * scale.astype(jnp.float32)
    if self.use_bias:
      bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, ('norm',)),
                        (features,), self.param_dtype)
      y = y + bias.astype(jnp.float32)
    return y.astype(self.dtype)


class RMSNorm(nn.Module):
  """y = x / sqrt(mean(x^2) + eps) * scale (Zhang & Sennrich 2019)."""
  epsilon: float = 1e-6
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.epsilon)
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones, ('norm',)),
                       (x.shape[-1],), self.param_dtype)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


def make_norm(cfg: TransformerConfig, name: str | None = None) -> nn.Module:
  if cfg.norm == 'rmsnorm':
    return RMSNorm(cfg.norm_epsilon, cfg.dtype, cfg.param_dtype, name=name)
  return LayerNorm(cfg.norm_epsilon, cfg.dtype, cfg.param_dtype, name=name)


ACTIVATION_FNS = {'relu': nn.relu, 'gelu': nn.gelu, 'silu': nn.silu,
                  'gelu_exact': functools.partial(nn.gelu, approximate=False)}


class FeedForward(nn.Module):
  """FFN(x) = act(x W1 + b1) W2 + b2, applied at every position.

  `cfg.gated_ffn`: FFN(x) = (act(x W_gate + b_gate) * (x W1 + b1)) W2 + b2, the gated
  linear units of Shazeer 2020 (act 'silu': SwiGLU, as in LLaMA; 'gelu': GEGLU, as in
  T5 v1.1). W1 is `wi`, W_gate `wi_gate`, W2 `wo`.
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.cfg
    dense = functools.partial(Dense, cfg.d_ff, ('embed',), ('mlp',), use_bias=cfg.use_bias,
                              dtype=cfg.dtype, param_dtype=cfg.param_dtype)
    h = dense(name='wi')(x)
    if cfg.gated_ffn:
      h = ACTIVATION_FNS[cfg.activation](dense(name='wi_gate')(x)) * h
    else:
      h = ACTIVATION_FNS[cfg.activation](h)
    h = nn.with_logical_constraint(h, ('batch', 'length', 'mlp'))
    return Dense(cfg.d_model, ('mlp',), ('embed',), use_bias=cfg.use_bias, dtype=cfg.dtype,
                 param_dtype=cfg.param_dtype, name='wo')(h)


class Embed(nn.Module):
  """Token embedding table, usable in reverse as the output projection."""
  num_embeddings: int
  features: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.embedding = self.param(
        'embedding',
        nn.with_logical_partitioning(nn.initializers.normal(stddev=self.features ** -0.5),
                                     ('vocab', 'embed')),
        (self.num_embeddings, self.features), self.param_dtype)

  def __call__(self, tokens: Array) -> Array:
    return jnp.take(self.embedding, tokens, axis=0).astype(self.dtype)

  def attend(self, x: Array) -> Array:
    """Logits x E^T: the output projection tied to this embedding."""
    n = self.features
    y = jnp.dot(x.reshape(-1, n).astype(self.dtype), self.embedding.astype(self.dtype).T)
    return y.reshape(x.shape[:-1] + (self.num_embeddings,))


# ---------------------------------------------------------------------------
# Positional encodings.
# ---------------------------------------------------------------------------

def sinusoidal_encoding(length: int, d_model: int, max_timescale: float = 1e4) -> np.ndarray:
  """The paper's table: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...).

  Sines at even feature indices and cosines at odd ones, interleaved as in the
  paper's formula. Returns float32 [length, d_model].
  """
  pos = np.arange(length, dtype=np.float64)[:, None]
  two_i = np.arange(0, d_model, 2, dtype=np.float64)[None, :]
  angle = pos / np.power(max_timescale, two_i / d_model)
  pe = np.zeros((length, d_model), dtype=np.float64)
  pe[:, 0::2] = np.sin(angle)
  pe[:, 1::2] = np.cos(angle[:, : d_model // 2])
  return pe.astype(np.float32)


def sincos_2d(height: int, width: int, d_model: int, temperature: float = 1e4) -> np.ndarray:
  """2-D sin-cos embedding for a (height, width) grid of patches: [h*w, d_model].

  A quarter of the features encode sin/cos of the row, a quarter sin/cos of the
  column (as in MoCo v3 and big_vision's `posemb_sincos_2d`).
  """
  if d_model % 4:
    raise ValueError(f'2-D sin-cos position embedding needs d_model % 4 == 0, got {d_model}')
  y, x = np.mgrid[:height, :width].astype(np.float64)
  omega = 1.0 / temperature ** (np.arange(d_model // 4, dtype=np.float64) / (d_model // 4 - 1 or 1))
  y = y.reshape(-1)[:, None] * omega[None, :]
  x = x.reshape(-1)[:, None] * omega[None, :]
  pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
  return pe.astype(np.float32)


def rotary(x: Array, positions: Array, base: float = 1e4) -> Array:
  """Rotary position embedding (RoFormer, Su et al. 2021) of x [batch, length, heads, dim].

  Feature i of the first half and feature i of the second half form a pair
  (the GPT-NeoX / LLaMA layout), rotated by the angle positions * base^(-2i/dim);
  `positions` [batch or 1, length]. The dot product of a rotated query and key
  then depends on their positions only through the difference. Angles and the
  rotation are computed in float32.
  """
  dim = x.shape[-1]
  inv_freq = base ** (-jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)      # [dim/2]
  angle = positions.astype(jnp.float32)[..., None, None] * inv_freq         # [b, l, 1, dim/2]
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  x32 = x.astype(jnp.float32)
  x1, x2 = x32[..., :dim // 2], x32[..., dim // 2:]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


class PositionalEncoding(nn.Module):
  """Adds sinusoidal or learned position embeddings to [batch, length, d] inputs.

  Returns (x, positions): positions [batch or 1, length] are each token's
  position, which rotary attention (`positional='rope'`: nothing is added
  here) applies to queries and keys.
  With `use_cache` the position is the number of tokens already decoded, kept in
  the `cache` collection, so a single-token step gets the right encoding.
  `left_pad` [batch] (left-padded rows of ragged prompts): row b's position p
  is encoded as p - left_pad[b], so its first real token is position 0.
  `positions` [batch, length] gives every token's position explicitly (packed
  rows: positions restart at each packed sequence).
  """
  cfg: TransformerConfig
  use_cache: bool = False  # track the position in the cache (decoder side, cfg.use_cache)

  @nn.compact
  def __call__(self, x: Array, left_pad: Array | None = None,
               positions: Array | None = None) -> tuple[Array, Array]:
    cfg = self.cfg
    length, d = x.shape[-2], x.shape[-1]
    start = 0
    if self.use_cache:
      is_initialized = self.has_variable('cache', 'position')
      position = self.variable('cache', 'position', lambda: jnp.zeros((), jnp.int32))
      if is_initialized:
        start = position.value
        position.value = position.value + length
    if positions is None:
      positions = start + jnp.arange(length, dtype=jnp.int32)[None]
      if left_pad is not None:   # per-row positions [batch, length]
        positions = jnp.maximum(positions - left_pad[:, None], 0)
    if cfg.positional == 'none':   # (T5's relative bias: max_len sizes only the cache)
      return x, positions
    if length > cfg.max_len:   # rotary too: max_len is the longest sequence it was made for
      raise ValueError(f'Sequence length {length} exceeds model max_len={cfg.max_len}; '
                       'raise model.max_len in the config.')
    if cfg.positional == 'rope':
      return x, positions
    if cfg.positional == 'learned':
      table = self.param('pos_embedding',
                         nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02),
                                                      ('length', 'embed')),
                         (cfg.max_len, d), cfg.param_dtype)
    else:
      table = jnp.asarray(sinusoidal_encoding(cfg.max_len, d))
    return x + jnp.take(table, positions, axis=0).astype(x.dtype), positions


def resize_posemb(posemb: Array, new_grid: tuple[int, int], num_prefix_tokens: int = 0) -> Array:
  """Resizes a learned ViT position embedding [1, prefix + h*w, d] to a new grid.

  Bilinear interpolation over the square patch grid, prefix tokens (the class
  token) kept as they are. Used to fine-tune at another resolution.
  """
  prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
  old = int(round(math.sqrt(grid.shape[1])))
  if old * old != grid.shape[1]:
    raise ValueError(f'Position embedding of {grid.shape[1]} patches is not a square grid')
  grid = grid.reshape(1, old, old, -1)
  if (old, old) != tuple(new_grid):
    grid = jax.image.resize(grid, (1, *new_grid, grid.shape[-1]), method='bilinear')
  return jnp.concatenate([prefix, grid.reshape(1, new_grid[0] * new_grid[1], -1)], axis=1)
