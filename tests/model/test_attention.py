"""Tests of transformer.attention: masks, scaled dot-product attention, multi-head attention.

Every numeric check compares against an independent NumPy float64 reference
written from the formulas of Vaswani et al. (2017), never against stored outputs.
"""

import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers
from transformer.attention import (MultiHeadAttention, cached_attention, causal_mask,
                                   combine_masks, cross_attention_mask, dot_product_attention,
                                   fused_attention, padding_mask)

# The shapes of the models' tests (batch 2, length 7, 2 heads of 8): op-by-op dispatch then
# reuses compiled primitives across test files. Keys are one shorter than queries, so that
# a transposed attention matrix cannot go unnoticed.
B, Q, K, H, D = 2, 7, 6, 2, 8   # batch, query len, key len, heads, head dim
D_MODEL = H * D


def tiny_cfg(**kw):
  return helpers.tiny_model_cfg(**{'d_model': D_MODEL, 'num_heads': H, 'max_len': Q, **kw})


# ---------------------------------------------------------------------------
# NumPy float64 references (np_mha and np_softmax are in tests/helpers.py).
# ---------------------------------------------------------------------------

def np_attention(q, k, v, bias=None, mask=None):
  """softmax(Q K^T / sqrt(d_k) + bias) V, per batch and head, in float64."""
  q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
  b, lq, h, d = q.shape
  lk = k.shape[1]
  logits = np.zeros((b, h, lq, lk))
  for bi in range(b):
    for hi in range(h):
      logits[bi, hi] = q[bi, :, hi, :] @ k[bi, :, hi, :].T / np.sqrt(d)
  if bias is not None:
    logits = logits + np.asarray(bias, np.float64)
  if mask is not None:
    logits = np.where(np.asarray(mask), logits, -np.inf)
  weights = helpers.np_softmax(logits)
  out = np.zeros((b, lq, h, v.shape[-1]))
  for bi in range(b):
    for hi in range(h):
      out[bi, :, hi, :] = weights[bi, hi] @ v[bi, :, hi, :]
  return out, weights


def random_qkv(seed, b=B, lq=Q, lk=K, h=H, d=D):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(b, lq, h, d)).astype(np.float32)
  k = rng.normal(size=(b, lk, h, d)).astype(np.float32)
  v = rng.normal(size=(b, lk, h, d)).astype(np.float32)
  return q, k, v


def np_key_padding(lengths, lk):
  """[b, 1, 1, lk] boolean, True at the first `length` keys of each row."""
  return (np.arange(lk)[None, :] < np.asarray(lengths)[:, None])[:, None, None, :]


def np_causal(n):
  return np.tril(np.ones((n, n), dtype=bool))[None, None]


def mask_case(name, lq, lk):
  """Returns (mask, bias) for a named test case (numpy arrays or None)."""
  rng = np.random.default_rng(7)
  pad = np_key_padding([lk - 2, lk], lk)          # batch 0 has two padded keys
  bias = rng.normal(size=(B, H, lq, lk)).astype(np.float32)
  causal = np_causal(lq) if lq == lk else None
  return {
      'none': (None, None),
      'padding': (pad, None),
      'causal': (causal, None),
      'padding_and_causal': (None if causal is None else pad & causal, None),
      'bias': (None, bias),
      'bias_and_padding': (pad, bias),
  }[name]


def fan_in_kernels(names, z):
  """random_params' fill here: kernels ~ N(0, 1/fan_in); biases random too (0.5 * N(0, 1)),
  since zero biases would hide bias bugs."""
  if names[-1] == 'kernel':
    # query/key/value kernels are [d_model, heads, head_dim]; out is [heads, head_dim, d_model].
    fan_in = math.prod(z.shape[:-1]) if names[-2] == 'out' else z.shape[0]
    return z / math.sqrt(fan_in)
  return 0.5 * z


# ---------------------------------------------------------------------------
# Masks.
# ---------------------------------------------------------------------------

def test_padding_mask_shape_and_values():
  tokens = np.array([[5, 3, 0, 0], [1, 0, 2, 7]])
  m = padding_mask(jnp.asarray(tokens))
  chex.assert_shape(m, (2, 1, 1, 4))
  assert m.dtype == jnp.bool_
  np.testing.assert_array_equal(np.asarray(m), (tokens != 0)[:, None, None, :])
  # A different pad id.
  m7 = padding_mask(jnp.asarray(tokens), pad_id=7)
  np.testing.assert_array_equal(np.asarray(m7), (tokens != 7)[:, None, None, :])


def test_causal_mask_shape_and_values():
  n = 5
  m = np.asarray(causal_mask(n))
  assert m.shape == (1, 1, n, n)
  expected = np.array([[j <= i for j in range(n)] for i in range(n)])
  np.testing.assert_array_equal(m[0, 0], expected)


def test_cross_attention_mask_shape_and_values():
  q_tok = np.array([[4, 2, 0], [9, 0, 0]])
  k_tok = np.array([[1, 0, 0, 0], [3, 8, 6, 0]])
  m = np.asarray(cross_attention_mask(jnp.asarray(q_tok), jnp.asarray(k_tok)))
  assert m.shape == (2, 1, 3, 4)
  expected = np.zeros((2, 1, 3, 4), bool)
  for b in range(2):
    for i in range(3):
      for j in range(4):
        expected[b, 0, i, j] = q_tok[b, i] != 0 and k_tok[b, j] != 0
  np.testing.assert_array_equal(m, expected)


def test_combine_masks():
  rng = np.random.default_rng(0)
  a = rng.random((2, 1, 1, 4)) > 0.3
  c = np.asarray(causal_mask(4))
  got = combine_masks(jnp.asarray(a), None, jnp.asarray(c))
  assert got.shape == (2, 1, 4, 4)
  np.testing.assert_array_equal(np.asarray(got), np.logical_and(a, c))
  # A single mask is returned as is; no masks (or only None) gives None.
  np.testing.assert_array_equal(np.asarray(combine_masks(None, jnp.asarray(a))), a)
  assert combine_masks() is None
  assert combine_masks(None, None) is None


# ---------------------------------------------------------------------------
# Scaled dot-product attention.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('case', ['none', 'padding', 'causal', 'padding_and_causal', 'bias',
                                  'bias_and_padding'])
def test_dot_product_attention_matches_numpy(case):
  lk = Q if 'causal' in case else K
  q, k, v = random_qkv(1, lk=lk)
  mask, bias = mask_case(case, Q, lk)
  out, weights = dot_product_attention(
      jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
      bias=None if bias is None else jnp.asarray(bias),
      mask=None if mask is None else jnp.asarray(mask), return_weights=True)
  ref_out, ref_w = np_attention(q, k, v, bias=bias, mask=mask)
  chex.assert_shape(out, (B, Q, H, D))
  chex.assert_shape(weights, (B, H, Q, lk))
  chex.assert_trees_all_close(out, ref_out, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(weights, ref_w, rtol=1e-5, atol=1e-6)
  if mask is not None:
    # Masked keys get exactly zero weight.
    full = np.broadcast_to(mask, weights.shape)
    assert np.all(np.asarray(weights)[~full] == 0.0)
  # Without return_weights only the output comes back.
  out_only = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                   bias=None if bias is None else jnp.asarray(bias),
                                   mask=None if mask is None else jnp.asarray(mask))
  chex.assert_trees_all_close(out_only, out, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('case', ['padding', 'bias_and_padding'])
@pytest.mark.parametrize('kv_heads', [H, 1])
def test_cached_attention_on_a_heads_major_cache_matches_numpy(case, kv_heads):
  """The decoding path reads keys/values [batch, kv_heads, slots, head_dim]; query head h
  reads key/value head h // (H // kv_heads), as the float64 reference with repeated heads."""
  q, k, v = random_qkv(3, lk=K, h=H)
  k, v = k[:, :, :kv_heads], v[:, :, :kv_heads]
  mask, bias = mask_case(case, Q, K)
  out, weights = cached_attention(
      jnp.asarray(q), jnp.asarray(k.transpose(0, 2, 1, 3)), jnp.asarray(v.transpose(0, 2, 1, 3)),
      bias=None if bias is None else jnp.asarray(bias), mask=jnp.asarray(mask))
  groups = H // kv_heads
  ref_out, ref_w = np_attention(q, np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2),
                                bias=bias, mask=mask)
  chex.assert_shape(out, (B, Q, H, D))
  chex.assert_trees_all_close(out, ref_out, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(weights, ref_w, rtol=1e-5, atol=1e-6)


def test_dot_product_attention_fully_masked_row_is_finite_and_zero_weight():
  q, k, v = random_qkv(2)
  mask = np.ones((B, 1, Q, K), bool)
  mask[0, 0, 1, :] = False          # query 1 of batch 0 may see nothing
  out, w = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                 mask=jnp.asarray(mask), return_weights=True)
  assert np.all(np.isfinite(np.asarray(out)))
  np.testing.assert_array_equal(np.asarray(w)[0, :, 1, :], 0.0)
  # The other rows are unaffected by that row's mask.
  ref_out, _ = np_attention(q, k, v)
  keep = np.ones((B, Q), bool)
  keep[0, 1] = False
  np.testing.assert_allclose(np.asarray(out)[keep], ref_out[keep], rtol=1e-5, atol=1e-5)


def test_attention_dropout_formula():
  """With value = one-hot(key index), the output exposes the dropped-out probabilities.

  Each must be either 0 or weight / (1 - rate) (inverted dropout), some must be dropped,
  and deterministic=True must ignore dropout entirely.
  """
  rate = 0.5
  lk = Q
  q, k, _ = random_qkv(3, lk=lk)
  # value[b, k, h] = e_k (value head dim = kv_len), so out[b, q, h, k] = probs[b, h, q, k].
  v = np.broadcast_to(np.eye(lk, dtype=np.float32)[None, :, None, :], (B, lk, H, lk)).copy()
  _, ref_w = np_attention(q, k, v)
  args = (jnp.asarray(q), jnp.asarray(k), jnp.asarray(v))
  out = np.asarray(dot_product_attention(*args, dropout_rate=rate,
                                         dropout_rng=helpers.key(0),
                                         deterministic=False), np.float64)
  probs = out.transpose(0, 2, 1, 3)            # [b, h, q, k]
  kept = np.isclose(probs, ref_w / (1 - rate), rtol=1e-5, atol=1e-6)
  dropped = probs == 0.0
  assert np.all(kept | dropped)
  assert 0.2 < dropped.mean() < 0.8
  # Deterministic: no dropout at all, even with a rate and an rng.
  det = dot_product_attention(*args, dropout_rate=rate, dropout_rng=helpers.key(0),
                              deterministic=True)
  np.testing.assert_allclose(np.asarray(det).transpose(0, 2, 1, 3), ref_w, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='dropout_rng'):
    dot_product_attention(*args, dropout_rate=rate, deterministic=False)


@pytest.mark.parametrize('case', ['none', 'padding', 'bias', 'bias_and_padding',
                                  'is_causal', 'is_causal_and_padding'])
def test_fused_attention_matches_einsum(case):
  causal = case.startswith('is_causal')
  lk = Q if causal else K
  q, k, v = random_qkv(4, lk=lk)
  mask, bias = mask_case(case.replace('is_causal_and_', '').replace('is_causal', 'none'), Q, lk)
  jm = None if mask is None else jnp.asarray(mask)
  jb = None if bias is None else jnp.asarray(bias)
  fused = fused_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), bias=jb, mask=jm,
                          is_causal=causal, implementation='xla')
  einsum_mask = combine_masks(jm, causal_mask(Q) if causal else None)
  ref = dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), bias=jb,
                              mask=einsum_mask)
  chex.assert_shape(fused, (B, Q, H, D))
  chex.assert_trees_all_close(fused, ref, rtol=1e-5, atol=1e-5)
  # And both agree with NumPy.
  ref_np, _ = np_attention(q, k, v, bias=bias,
                           mask=None if einsum_mask is None else np.asarray(einsum_mask))
  chex.assert_trees_all_close(fused, ref_np, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Multi-head attention.
# ---------------------------------------------------------------------------

def init_mha(cfg, x, kv=None, seed=0):
  return helpers.random_params(MultiHeadAttention(cfg), x, kv, seed=seed, fill=fan_in_kernels)


def mha_apply(cfg, causal=False, **kw):
  return functools.partial(MultiHeadAttention(cfg).apply, causal=causal, **kw)


def test_mha_parameter_shapes():
  cfg = tiny_cfg(d_model=12, num_heads=3, head_dim=5)
  variables = jax.eval_shape(MultiHeadAttention(cfg).init, jax.random.PRNGKey(0),
                             jnp.ones((1, 4, 12)))
  p = nn.meta.unbox(variables['params'])
  for name in ('query', 'key', 'value'):
    chex.assert_shape(p[name]['kernel'], (12, 3, 5))
    chex.assert_shape(p[name]['bias'], (3, 5))
  chex.assert_shape(p['out']['kernel'], (3, 5, 12))
  chex.assert_shape(p['out']['bias'], (12,))


@pytest.mark.parametrize('kind', ['self', 'self_padding', 'self_causal', 'cross', 'cross_padding',
                                  'self_head_dim_5', 'cross_head_dim_5'])
def test_mha_matches_per_head_numpy(kind):
  cfg = tiny_cfg()
  if kind.endswith('head_dim_5'):
    cfg = cfg.replace(head_dim=5)   # heads * head_dim != d_model: catches any mix-up of the two
  rng = np.random.default_rng(11)
  x = rng.normal(size=(B, Q, D_MODEL)).astype(np.float32)
  kv = rng.normal(size=(B, K, D_MODEL)).astype(np.float32) if kind.startswith('cross') else None
  lk = Q if kv is None else K
  mask = np_key_padding([lk - 2, lk], lk) if kind.endswith('padding') else None
  causal = kind == 'self_causal'
  p = init_mha(cfg, jnp.asarray(x), None if kv is None else jnp.asarray(kv))
  out = mha_apply(cfg, causal)({'params': p}, jnp.asarray(x),
                              None if kv is None else jnp.asarray(kv),
                              mask=None if mask is None else jnp.asarray(mask))
  ref_mask = np_causal(Q) if causal else mask
  ref = helpers.np_mha(p, x, kv, mask=ref_mask)
  chex.assert_shape(out, (B, Q, D_MODEL))
  chex.assert_trees_all_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kind', ['self_padding', 'causal', 'causal_padding', 'cross'])
def test_mha_einsum_and_xla_agree(kind):
  cfg = tiny_cfg()
  rng = np.random.default_rng(12)
  x = jnp.asarray(rng.normal(size=(B, Q, D_MODEL)).astype(np.float32))
  kv = (jnp.asarray(rng.normal(size=(B, K, D_MODEL)).astype(np.float32)) if kind == 'cross'
        else None)
  lk = Q if kv is None else K
  mask = None if kind == 'causal' else jnp.asarray(np_key_padding([lk - 3, lk], lk))
  causal = kind.startswith('causal')
  p = init_mha(cfg, x, kv)
  out_e = mha_apply(cfg, causal)({'params': p}, x, kv, mask=mask)
  out_x = mha_apply(cfg.replace(attention_impl='xla'), causal)({'params': p}, x, kv, mask=mask)
  chex.assert_trees_all_close(out_e, out_x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('impl', ['einsum', 'xla'])
def test_mha_causal_future_tokens_do_not_leak(impl):
  cfg = tiny_cfg(attention_impl=impl)
  rng = np.random.default_rng(13)
  x = rng.normal(size=(B, Q, D_MODEL)).astype(np.float32)
  p = init_mha(cfg, jnp.asarray(x))
  apply = mha_apply(cfg, causal=True)
  base = np.asarray(apply({'params': p}, jnp.asarray(x)))
  for i in (0, 3, Q - 2):
    x2 = x.copy()
    x2[:, i + 1:] = rng.normal(size=x2[:, i + 1:].shape)
    changed = np.asarray(apply({'params': p}, jnp.asarray(x2)))
    np.testing.assert_allclose(changed[:, :i + 1], base[:, :i + 1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(changed[:, i + 1:], base[:, i + 1:], atol=1e-3)


def test_mha_sows_weights_with_zeros_at_padded_keys():
  cfg = tiny_cfg()
  rng = np.random.default_rng(14)
  x = jnp.asarray(rng.normal(size=(B, Q, D_MODEL)).astype(np.float32))
  mask = np_key_padding([4, Q], Q)
  p = init_mha(cfg, x)
  _, state = mha_apply(cfg, mutable=['intermediates'])({'params': p}, x, mask=jnp.asarray(mask))
  (w,) = state['intermediates']['attention_weights']
  w = np.asarray(w)
  chex.assert_shape(w, (B, H, Q, Q))
  np.testing.assert_array_equal(w[0, :, :, 4:], 0.0)
  assert np.all(w[0, :, :, :4] > 0) and np.all(w[1] > 0)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)


def test_mha_attention_dropout_only_when_not_deterministic():
  cfg = tiny_cfg(attention_dropout_rate=0.5)
  rng = np.random.default_rng(15)
  x = jnp.asarray(rng.normal(size=(B, Q, D_MODEL)).astype(np.float32))
  p = init_mha(cfg, x)

  def run(c, seed):
    return np.asarray(mha_apply(c)({'params': p}, x, rngs={'dropout': helpers.key(seed)}))

  no_dropout = run(cfg.replace(attention_dropout_rate=0.0), 0)
  train = cfg.replace(deterministic=False)
  a, b = run(train, 1), run(train, 2)
  assert not np.allclose(a, b, atol=1e-4)
  assert not np.allclose(a, no_dropout, atol=1e-4)
  # Deterministic: the rng does not matter and the result equals rate 0.
  e1, e2 = run(cfg, 1), run(cfg, 2)
  np.testing.assert_array_equal(e1, e2)
  np.testing.assert_allclose(e1, no_dropout, rtol=1e-6, atol=1e-6)
  # The xla implementation has no attention dropout: with dropout active it must fall
  # back to the einsum path, so rngs still matter.
  xla_train = train.replace(attention_impl='xla')
  assert not np.allclose(run(xla_train, 1), run(xla_train, 2), atol=1e-4)


def test_mha_causal_needs_equal_lengths():
  cfg = tiny_cfg()
  x = jnp.ones((1, 3, D_MODEL))
  kv = jnp.ones((1, 4, D_MODEL))
  with pytest.raises(ValueError, match='causal'):
    jax.eval_shape(functools.partial(MultiHeadAttention(cfg).init, causal=True),
                   jax.random.PRNGKey(0), x, kv)
