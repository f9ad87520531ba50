"""Scaled dot-product attention, attention masks, and multi-head attention.

Shapes: queries [batch, q_len, heads, head_dim], keys and values
[batch, kv_len, heads, head_dim]. Masks are boolean, True where a query may
attend to a key, broadcastable to [batch, heads, q_len, kv_len].
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer.model_config import TransformerConfig
from transformer.layers import Dense, rotary

Array = jax.Array


# ---------------------------------------------------------------------------
# Masks.
# ---------------------------------------------------------------------------

def padding_mask(tokens: Array, pad_id: int = 0) -> Array:
  """[batch, len] tokens -> [batch, 1, 1, len]: True at real (non-pad) keys."""
  return (tokens != pad_id)[:, None, None, :]


def causal_mask(length: int) -> Array:
  """[1, 1, len, len]: query i may attend to keys j <= i."""
  return jnp.tril(jnp.ones((length, length), dtype=jnp.bool_))[None, None]


def cross_attention_mask(query_tokens: Array, key_tokens: Array, pad_id: int = 0) -> Array:
  """Decoder queries over encoder keys: [batch, 1, q_len, kv_len].

  A key is visible when it is not padding; padded queries see nothing (their
  outputs are ignored by the loss).
  """
  q = (query_tokens != pad_id)[:, None, :, None]
  k = (key_tokens != pad_id)[:, None, None, :]
  return q & k


def segment_mask(query_segments: Array, key_segments: Array) -> Array:
  """Packed rows: [batch, 1, q_len, kv_len], True where query and key share a segment.

  Segment ids number the sequences packed into a row (1, 2, ...; 0 is padding),
  so no token attends across sequences.
  """
  return (query_segments[:, :, None] == key_segments[:, None, :])[:, None]


def combine_masks(*masks: Array | None) -> Array | None:
  """Logical AND of the given masks (None entries are ignored)."""
  masks = [m for m in masks if m is not None]
  if not masks:
    return None
  return functools.reduce(jnp.logical_and, masks)


# ---------------------------------------------------------------------------
# Scaled dot-product attention.
# ---------------------------------------------------------------------------

def _mask_value(dtype) -> float:
  """The logit of a masked key: finite in `dtype` (half its lowest value, so that adding
  a bias cannot overflow it to -inf), so a fully masked row gives uniform weights, not NaN.
  Callers zero those rows' outputs."""
  return float(jnp.finfo(dtype).min) / 2


def _masked_softmax(logits: Array, bias: Array | None, mask: Array | None) -> Array:
  """softmax(logits + bias) over the keys in float32, masked keys at weight 0."""
  if bias is not None:
    logits = logits + bias.astype(jnp.float32)
  if mask is not None:
    logits = jnp.where(mask, logits, _mask_value(jnp.float32))
  weights = jax.nn.softmax(logits, axis=-1)
  if mask is not None:
    weights = jnp.where(mask, weights, 0.0)
  return weights


def dot_product_attention(query: Array, key: Array, value: Array, *,
                          bias: Array | None = None, mask: Array | None = None,
                          dropout_rate: float = 0.0, dropout_rng: Array | None = None,
                          deterministic: bool = True, dtype=jnp.float32,
                          return_weights: bool = False, scale: float | None = None):
  """softmax(Q K^T * scale + bias) V (scale: 1 / sqrt(d_k) unless given), the reference
  einsum implementation.

  Logits and softmax are computed in float32. Masked positions get zero weight, so a
  query that may see no key at all gets an output of zeros.
  Returns the output [batch, q_len, heads, head_dim], and the weights
  [batch, heads, q_len, kv_len] as well when `return_weights`.
  """
  if scale is None:
    scale = 1.0 / float(query.shape[-1]) ** 0.5
  logits = jnp.einsum('bqhd,bkhd->bhqk', query, key,
                      preferred_element_type=jnp.float32) * jnp.float32(scale)
  weights = _masked_softmax(logits, bias, mask)
  probs = weights
  if not deterministic and dropout_rate > 0.0:
    if dropout_rng is None:
      raise ValueError('dropout_rng is required for attention dropout when not deterministic')
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
    probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
  out = jnp.einsum('bhqk,bkhd->bqhd', probs.astype(dtype), value.astype(dtype))
  return (out, weights) if return_weights else out


def cached_attention(query: Array, key: Array, value: Array, *, bias: Array | None = None,
                     mask: Array | None = None, dtype=jnp.float32,
                     scale: float | None = None) -> tuple[Array, Array]:
  """Attention of queries [batch, q_len, heads, head_dim] over a key/value cache kept
  heads-major, keys and values [batch, kv_heads, slots, head_dim], the layout in which
  both products are batched matrix products that read the cache as it lies (a cache
  [batch, slots, heads, head_dim] is transposed whole at every decoding step: measured
  3.7x slower for a 64 x 128-slot cache on the CPU). Query head h reads key/value head
  h // (heads // kv_heads). Same numerics as `dot_product_attention` (float32 logits and
  softmax, masked keys at weight 0). Returns the output [batch, q_len, heads, head_dim]
  and the weights [batch, heads, q_len, slots].
  """
  batch, q_len, heads, head_dim = query.shape
  kv_heads = key.shape[1]
  groups = heads // kv_heads
  if scale is None:
    scale = 1.0 / float(head_dim) ** 0.5
  q = query.reshape(batch, q_len, kv_heads, groups, head_dim)
  logits = jnp.einsum('bqhgd,bhkd->bhgqk', q, key, preferred_element_type=jnp.float32)
  logits = logits.reshape(batch, heads, q_len, -1) * jnp.float32(scale)
  weights = _masked_softmax(logits, bias, mask)
  probs = weights.reshape(batch, kv_heads, groups, q_len, -1).astype(dtype)
  out = jnp.einsum('bhgqk,bhkd->bqhgd', probs, value.astype(dtype))
  return out.reshape(batch, q_len, heads, head_dim), weights


def fused_attention(query: Array, key: Array, value: Array, *, bias: Array | None = None,
                    mask: Array | None = None, is_causal: bool = False,
                    implementation: str | None = None, dtype=jnp.float32,
                    scale: float | None = None) -> Array:
  """`jax.nn.dot_product_attention`: XLA's fused path, or cuDNN flash attention.

  `is_causal` lets the kernel skip masked blocks (and is ANDed with `mask`). A query
  that may see no key gets an output of zeros, as on the einsum path (the kernels
  would give it the mean of the values: uniform weights over masked keys).
  """
  kernel_mask = mask
  if implementation == 'cudnn' and mask is not None:
    # cuDNN takes masks as an additive bias, in the compute dtype: its mask value must be
    # finite there (float32's would be -inf in float16).
    bias = combine_bias(bias, jnp.where(mask, 0.0, _mask_value(dtype)).astype(dtype))
    kernel_mask = None
  out = jax.nn.dot_product_attention(
      query.astype(dtype), key.astype(dtype), value.astype(dtype),
      bias=None if bias is None else bias.astype(dtype),
      mask=kernel_mask, is_causal=is_causal, scale=scale, implementation=implementation)
  if mask is not None:
    # Causal alone always leaves key 0 visible; with a mask, a row may see nothing.
    q_len, k_len = query.shape[1], key.shape[1]
    visible = combine_masks(
        mask, jnp.tril(jnp.ones((q_len, k_len), jnp.bool_))[None, None] if is_causal else None)
    any_key = jnp.any(visible, axis=-1)                   # [batch, heads, q_len] (or 1s)
    out = jnp.where(jnp.swapaxes(any_key, 1, 2)[..., None], out, jnp.zeros((), out.dtype))
  return out


def combine_bias(a: Array | None, b: Array | None) -> Array | None:
  if a is None:
    return b
  if b is None:
    return a
  return a + b


def relative_position_bucket(relative: Array, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> Array:
  """T5's bucket of each relative position (key position - query position).

  Bidirectional: half the buckets for keys after the query, half for those at or
  before it; causal: only distances to earlier keys count (later ones are bucket 0,
  and masked anyway). In each half, distances below half of its buckets get a
  bucket each; longer ones share logarithmically wider buckets up to
  `max_distance`, beyond which all share the last.
  """
  bucket = jnp.zeros_like(relative)
  if bidirectional:
    num_buckets //= 2
    bucket = bucket + (relative > 0).astype(relative.dtype) * num_buckets
    n = jnp.abs(relative)
  else:
    n = jnp.maximum(-relative, 0)
  exact = num_buckets // 2
  log_ratio = (jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / exact)
               / np.log(max_distance / exact))
  large = exact + (log_ratio * (num_buckets - exact)).astype(relative.dtype)
  large = jnp.minimum(large, num_buckets - 1)
  return bucket + jnp.where(n < exact, n, large)


class RelativePositionBias(nn.Module):
  """T5's position bias: a learned scalar per (bucket of key - query position, head).

  `__call__(query_positions [b or 1, q], key_positions [b or 1, k])` ->
  [b or 1, heads, q, k], added to the attention logits of every layer of a stack.
  """
  cfg: TransformerConfig
  bidirectional: bool = True

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array) -> Array:
    cfg = self.cfg
    table = self.param('rel_embedding', nn.with_logical_partitioning(
        nn.initializers.normal(stddev=1.0), (None, 'heads')),
                       (cfg.relative_buckets, cfg.num_heads), cfg.param_dtype)
    relative = key_positions[:, None, :] - query_positions[:, :, None]      # [b, q, k]
    buckets = relative_position_bucket(relative.astype(jnp.int32), self.bidirectional,
                                       cfg.relative_buckets, cfg.relative_max_distance)
    return jnp.transpose(jnp.take(table, buckets, axis=0), (0, 3, 1, 2)).astype(jnp.float32)


# ---------------------------------------------------------------------------
# Multi-head attention.
# ---------------------------------------------------------------------------

class MultiHeadAttention(nn.Module):
  """Multi-head attention: project to heads, attend, concatenate, project back.

  Self-attention: `mha(x)`; cross-attention: `mha(x, kv=encoded, cross=True)`;
  causal self-attention: `mha(x, causal=True)`. With `cfg.use_cache`, causal
  self-attention, keys and values are kept in the `cache` collection and each
  call appends its (single) position, so decoding one token at a time
  gives the logits of the full forward pass. With `cfg.use_cache` and
  `cfg.cache_cross_kv`, cross-attention keeps the keys and values of the
  encoder output in the cache too (`cross_key`, `cross_value`): a call with
  `kv` projects and stores them (`x=None`: store only, return None), a call
  with `kv=None` reads them, so a decoding step does not project the whole
  source again.

  Positions enter self-attention in one place, after the projections: with
  `cfg.positional='rope'` the queries and keys are rotated by `positions`
  [batch or 1, length] (each token's position, from the model's input layer)
  before keys are cached, so a cached key keeps its own position; a position
  bias (T5's relative bias, [batch or 1, heads, q_len, kv_len], computed once
  per stack by `RelativePositionBias`) is added to the logits via `bias`.

  Grouped-query attention (`cfg.num_kv_heads` < num_heads; 1: multi-query):
  keys and values have num_kv_heads heads, each shared by num_heads //
  num_kv_heads consecutive query heads; the cache holds num_kv_heads heads,
  heads-major: [batch, kv_heads, slots, head_dim] (see `cached_attention`).

  The attention weights of the einsum path are sown into `intermediates`
  (name `attention_weights`) for visualization.
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x: Array | None, kv: Array | None = None, *, mask: Array | None = None,
               causal: bool = False, cross: bool = False,
               positions: Array | None = None, bias: Array | None = None) -> Array | None:
    cfg = self.cfg
    head_dim = cfg.qkv_dim

    qkv_bias = cfg.use_bias if cfg.qkv_bias is None else cfg.qkv_bias

    def proj(heads, name):
      return Dense((heads, head_dim), ('embed',), ('heads', 'kv'), use_bias=qkv_bias,
                   dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name)

    kv_proj = functools.partial(proj, cfg.kv_heads)
    if cross and cfg.use_cache and cfg.cache_cross_kv:
      key, value = self._cross_cache(kv, kv_proj)
      if x is None:
        return None
    else:
      if x is None or (cross and kv is None):
        raise ValueError('attention needs queries x, and cross-attention its kv (the encoder '
                         'output) unless cfg.use_cache and cfg.cache_cross_kv keep it cached')
      kv_in = x if kv is None else kv
      key = kv_proj('key')(kv_in)
      value = kv_proj('value')(kv_in)
    query = proj(cfg.num_heads, 'query')(x)
    query = nn.with_logical_constraint(query, ('batch', 'length', 'heads', 'kv'))
    if cfg.positional == 'rope' and not cross:
      if positions is None:
        raise ValueError("positional='rope' needs each token's positions: pass positions= "
                         '(the models take them from their input layer)')
      query = rotary(query, positions, cfg.rope_base)
      key = rotary(key, positions, cfg.rope_base)

    overflow = None
    cached = cross and cfg.use_cache and cfg.cache_cross_kv   # keys/values heads-major
    if cfg.use_cache and causal and kv is None:
      key, value, cache_mask, overflow = self._update_cache(key, value)
      mask = combine_masks(mask, cache_mask)
      causal, cached = False, True  # the cache mask already hides future positions
    elif causal:
      q_len, k_len = query.shape[1], key.shape[1]
      if q_len != k_len:
        raise ValueError('causal attention needs queries and keys of the same length')

    dropout_active = not cfg.deterministic and cfg.attention_dropout_rate > 0.0
    impl = cfg.attention_impl
    scale = None if cfg.scale_attention else 1.0
    if cached:   # decoding: one path for every attention_impl, on the cache as it lies
      out, weights = cached_attention(query, key, value, bias=bias, mask=mask, scale=scale,
                                      dtype=cfg.dtype)
      if impl == 'einsum':
        self.sow('intermediates', 'attention_weights', weights)
    elif impl == 'einsum' or dropout_active:
      # Attention dropout is only available on the reference path.
      groups = cfg.num_heads // cfg.kv_heads
      if groups > 1:   # query head h reads key/value head h // groups
        key, value = jnp.repeat(key, groups, axis=2), jnp.repeat(value, groups, axis=2)
      full_mask = combine_masks(mask, causal_mask(query.shape[1]) if causal else None)
      dropout_rng = self.make_rng('dropout') if dropout_active else None
      out, weights = dot_product_attention(
          query, key, value, bias=bias, mask=full_mask, scale=scale,
          dropout_rate=cfg.attention_dropout_rate, dropout_rng=dropout_rng,
          deterministic=cfg.deterministic, dtype=cfg.dtype, return_weights=True)
      self.sow('intermediates', 'attention_weights', weights)
    else:   # jax.nn.dot_product_attention groups query heads over fewer key/value heads
      out = fused_attention(query, key, value, bias=bias, mask=mask, is_causal=causal, scale=scale,
                            implementation=None if impl == 'auto' else impl, dtype=cfg.dtype)

    if overflow is not None:   # a write past the cache under jit: never a silent wrong answer
      out = jnp.where(overflow, jnp.asarray(jnp.nan, out.dtype), out)
    out = nn.with_logical_constraint(out, ('batch', 'length', 'heads', 'kv'))
    return Dense(cfg.d_model, ('heads', 'kv'), ('embed',), num_contract=2,
                 use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                 name='out')(out)

  def _cross_cache(self, kv: Array | None, proj) -> tuple[Array, Array]:
    """Cross-attention keys/values: projected from kv and stored, or (kv None) read back."""
    if kv is None:
      if not self.has_variable('cache', 'cross_key'):
        raise ValueError('the cross-attention keys/values are not in the cache yet: fill it '
                         'once per source with decoding.prime_cross_cache (or pass the '
                         'encoder output to EncoderDecoder.decode)')
      return (self.get_variable('cache', 'cross_key'),
              self.get_variable('cache', 'cross_value'))
    # Stored heads-major, [batch, kv_heads, source length, head_dim] (see cached_attention).
    key = jnp.swapaxes(proj('key')(kv), 1, 2)
    value = jnp.swapaxes(proj('value')(kv), 1, 2)
    for name, array in (('cross_key', key), ('cross_value', value)):
      var = self.variable('cache', name, jnp.zeros, array.shape, array.dtype)
      var.value = array
    return key, value

  def _update_cache(self, key: Array, value: Array):
    """Writes this step's keys/values into the cache.

    Returns the full cache, its mask, and `overflow`: None, or (under jit, where
    the write index is not known while tracing) a traced flag that the write
    went past the cache, which turns this layer's output into NaN.
    """
    cfg = self.cfg
    is_initialized = self.has_variable('cache', 'cached_key')
    batch, length, heads, head_dim = key.shape
    slots = cfg.cache_positions
    # Heads-major, the layout cached_attention reads without a transpose.
    key, value = jnp.swapaxes(key, 1, 2), jnp.swapaxes(value, 1, 2)
    cache_shape = (batch, heads, slots, head_dim)
    cached_key = self.variable('cache', 'cached_key', jnp.zeros, cache_shape, key.dtype)
    cached_value = self.variable('cache', 'cached_value', jnp.zeros, cache_shape, value.dtype)
    index = self.variable('cache', 'cache_index', lambda: jnp.zeros((), jnp.int32))
    if not is_initialized:
      # Initialization call (with the full-length dummy input): just make the cache.
      return key, value, causal_mask(length), None
    i = index.value
    # A write past the end would be clamped by dynamic_update_slice (silently
    # overwriting the last slots). The decoders in transformer.decoding check
    # their lengths before tracing. Here: a block longer than the cache, or an
    # overflow at a concrete index (eager), raises; under jit the index is a
    # tracer, so the overflow becomes a flag that makes the output NaN.
    traced = isinstance(i, jax.core.Tracer)
    if length > slots or (not traced and int(i) + length > slots):
      raise ValueError(
          f'key/value cache overflow: writing {length} position(s) at index '
          f'{"?" if traced else int(i)} of a cache of {slots} positions (cfg.cache_len, '
          f'else cfg.max_len={cfg.max_len}); decode fewer tokens or raise model.max_len')
    overflow = (i + length > slots) if traced else None
    key = jax.lax.dynamic_update_slice(cached_key.value, key.astype(cached_key.value.dtype),
                                       (0, 0, i, 0))
    value = jax.lax.dynamic_update_slice(cached_value.value,
                                         value.astype(cached_value.value.dtype), (0, 0, i, 0))
    cached_key.value, cached_value.value = key, value
    index.value = i + length
    # Query t (absolute position i + t) sees cache slots <= i + t.
    q_pos = i + jnp.arange(length)[:, None]
    k_pos = jnp.arange(slots)[None, :]
    return key, value, (k_pos <= q_pos)[None, None], overflow
