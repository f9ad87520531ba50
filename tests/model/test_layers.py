"""Tests of transformer.layers: Dense, norms, feed-forward, embeddings, positional encodings.

References are written independently in NumPy float64 from the formulas in the papers
(Vaswani et al. 2017; Ba et al. 2016; Zhang & Sennrich 2019; Dosovitskiy et al. 2021).
"""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers
from transformer.layers import (Dense, Embed, FeedForward, LayerNorm, PositionalEncoding,
                                RMSNorm, make_norm, resize_posemb, rotary, sincos_2d,
                                sinusoidal_encoding)


def tiny_cfg(**kw):
  return helpers.tiny_model_cfg(**{'max_len': 10, **kw})


# ---------------------------------------------------------------------------
# Norms.
# ---------------------------------------------------------------------------

def norm_inputs(seed=0, shape=(2, 7, 16)):
  rng = np.random.default_rng(seed)
  # A non-zero mean and a large spread, so that centring and scaling both matter.
  x = (3.0 + 2.5 * rng.normal(size=shape)).astype(np.float32)
  scale = rng.normal(size=shape[-1:]).astype(np.float32)
  bias = rng.normal(size=shape[-1:]).astype(np.float32)
  return x, scale, bias


@pytest.mark.parametrize('eps', [1e-6, 0.5])
def test_layernorm_matches_numpy(eps):
  x, scale, bias = norm_inputs()
  ln = LayerNorm(epsilon=eps)
  p = helpers.init_params(ln, jnp.asarray(x))
  chex.assert_trees_all_close(p, {'scale': np.ones(16), 'bias': np.zeros(16)})
  y = ln.apply({'params': {'scale': jnp.asarray(scale), 'bias': jnp.asarray(bias)}},
               jnp.asarray(x))
  assert y.dtype == jnp.float32
  chex.assert_shape(y, x.shape)
  chex.assert_trees_all_close(y, helpers.np_layernorm(x, scale, bias, eps), rtol=1e-5, atol=1e-5)


def test_layernorm_without_bias():
  x, scale, _ = norm_inputs(1)
  ln = LayerNorm(use_bias=False)
  p = helpers.init_params(ln, jnp.asarray(x))
  assert set(p) == {'scale'}
  y = ln.apply({'params': {'scale': jnp.asarray(scale)}}, jnp.asarray(x))
  chex.assert_trees_all_close(y, helpers.np_layernorm(x, scale, 0.0, 1e-6), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('eps', [1e-6, 0.5])
def test_rmsnorm_matches_numpy(eps):
  x, scale, _ = norm_inputs(2)
  rms = RMSNorm(epsilon=eps)
  p = helpers.init_params(rms, jnp.asarray(x))
  chex.assert_trees_all_close(p, {'scale': np.ones(16)})
  y = rms.apply({'params': {'scale': jnp.asarray(scale)}}, jnp.asarray(x))
  assert y.dtype == jnp.float32
  chex.assert_trees_all_close(y, helpers.np_rmsnorm(x, scale, eps), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kind', ['layernorm', 'rmsnorm'])
def test_norms_in_bfloat16(kind):
  x, scale, bias = norm_inputs(3)
  if kind == 'layernorm':
    mod, params = LayerNorm(dtype=jnp.bfloat16), {'scale': scale, 'bias': bias}
    ref = helpers.np_layernorm(x.astype(jnp.bfloat16).astype(np.float64), scale, bias, 1e-6)
  else:
    mod, params = RMSNorm(dtype=jnp.bfloat16), {'scale': scale}
    ref = helpers.np_rmsnorm(x.astype(jnp.bfloat16).astype(np.float64), scale, 1e-6)
  p = helpers.init_params(mod, jnp.asarray(x, jnp.bfloat16))
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(p))  # param_dtype
  y = mod.apply({'params': jax.tree_util.tree_map(jnp.asarray, params)},
                jnp.asarray(x, jnp.bfloat16))
  assert y.dtype == jnp.bfloat16
  # bfloat16 has an 8-bit mantissa: relative error ~ 2^-8 on the output.
  chex.assert_trees_all_close(np.asarray(y, np.float32), ref, rtol=2e-2, atol=2e-2)


def test_make_norm_follows_config():
  cfg = tiny_cfg(norm_epsilon=0.25)
  ln = make_norm(cfg)
  rms = make_norm(cfg.replace(norm='rmsnorm'))
  assert isinstance(ln, LayerNorm) and ln.epsilon == 0.25
  assert isinstance(rms, RMSNorm) and rms.epsilon == 0.25
  bf = make_norm(cfg.replace(dtype=jnp.bfloat16))
  assert bf.dtype == jnp.bfloat16


# ---------------------------------------------------------------------------
# Dense and feed-forward.
# ---------------------------------------------------------------------------

def test_dense_matches_numpy():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(2, 3, 5)).astype(np.float32)
  dense = Dense(7, ('embed',), ('mlp',))
  p = helpers.random_params(dense, jnp.asarray(x), seed=5)
  chex.assert_shape(p['kernel'], (5, 7))
  chex.assert_shape(p['bias'], (7,))
  y = dense.apply({'params': p}, jnp.asarray(x))
  q = helpers.np64(p)
  chex.assert_shape(y, (2, 3, 7))
  chex.assert_trees_all_close(y, np.asarray(x, np.float64) @ q['kernel'] + q['bias'],
                              rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('use_bias', [True, False])
def test_dense_num_contract_2_equals_einsum(use_bias):
  rng = np.random.default_rng(6)
  x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)    # [batch, len, heads, head_dim]
  dense = Dense(6, ('heads', 'kv'), ('embed',), num_contract=2, use_bias=use_bias)
  p = helpers.random_params(dense, jnp.asarray(x), seed=7)
  chex.assert_shape(p['kernel'], (4, 5, 6))
  assert ('bias' in p) == use_bias
  y = dense.apply({'params': p}, jnp.asarray(x))
  q = helpers.np64(p)
  ref = np.einsum('blhd,hde->ble', np.asarray(x, np.float64), q['kernel'])
  if use_bias:
    ref = ref + q['bias']
  chex.assert_shape(y, (2, 3, 6))
  chex.assert_trees_all_close(y, ref, rtol=1e-5, atol=1e-5)


def test_dense_multi_dim_features():
  rng = np.random.default_rng(8)
  x = rng.normal(size=(2, 3, 6)).astype(np.float32)
  dense = Dense((2, 4), ('embed',), ('heads', 'kv'))
  p = helpers.random_params(dense, jnp.asarray(x), seed=9)
  chex.assert_shape(p['kernel'], (6, 2, 4))
  chex.assert_shape(p['bias'], (2, 4))
  y = dense.apply({'params': p}, jnp.asarray(x))
  q = helpers.np64(p)
  ref = np.einsum('ble,ehd->blhd', np.asarray(x, np.float64), q['kernel']) + q['bias']
  chex.assert_trees_all_close(y, ref, rtol=1e-5, atol=1e-5)


def test_dense_init_uses_2d_fans():
  """Xavier-uniform on the (fan_in, fan_out) matrix: |w| <= sqrt(6 / (fan_in + fan_out))."""
  # The attention output projection: kernel (heads=2, head_dim=8, d_model=16), so
  # fan_in = 2*8 = 16 and fan_out = 16. (Flax's fans of the 3-D shape would be 16 and 32.)
  dense = Dense(16, ('heads', 'kv'), ('embed',), num_contract=2)
  p = helpers.init_params(dense, jnp.ones((1, 2, 8)))
  limit = math.sqrt(6.0 / (16 + 16))
  w = np.asarray(p['kernel'])
  assert w.shape == (2, 8, 16)
  assert np.abs(w).max() <= limit
  assert np.abs(w).max() > 0.9 * limit                   # uses the whole range
  np.testing.assert_allclose(w.std(), limit / math.sqrt(3), rtol=0.1)


@pytest.mark.parametrize('activation', ['relu', 'gelu'])
def test_feed_forward_matches_numpy(activation):
  cfg = tiny_cfg(activation=activation)
  rng = np.random.default_rng(10)
  x = rng.normal(size=(2, 7, cfg.d_model)).astype(np.float32)
  ffn = FeedForward(cfg)
  p = helpers.random_params(ffn, jnp.asarray(x), seed=11)
  chex.assert_shape(p['wi']['kernel'], (cfg.d_model, cfg.d_ff))
  chex.assert_shape(p['wo']['kernel'], (cfg.d_ff, cfg.d_model))
  y = ffn.apply({'params': p}, jnp.asarray(x))
  q = helpers.np64(p)
  h = np.asarray(x, np.float64) @ q['wi']['kernel'] + q['wi']['bias']
  h = np.maximum(h, 0.0) if activation == 'relu' else helpers.np_gelu_tanh(h)
  ref = h @ q['wo']['kernel'] + q['wo']['bias']
  chex.assert_shape(y, x.shape)
  chex.assert_trees_all_close(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('activation', ['silu', 'gelu'])
def test_gated_feed_forward_matches_numpy(activation):
  """SwiGLU / GEGLU (Shazeer 2020): (act(x W_gate + b_gate) * (x W1 + b1)) W2 + b2."""
  cfg = tiny_cfg(activation=activation, gated_ffn=True)
  x = np.random.default_rng(12).normal(size=(2, 7, cfg.d_model)).astype(np.float32)
  ffn = FeedForward(cfg)
  p = helpers.random_params(ffn, jnp.asarray(x), seed=13)
  q, x64 = helpers.np64(p), np.asarray(x, np.float64)
  gate = x64 @ q['wi_gate']['kernel'] + q['wi_gate']['bias']
  gate = gate / (1 + np.exp(-gate)) if activation == 'silu' else helpers.np_gelu_tanh(gate)
  ref = (gate * (x64 @ q['wi']['kernel'] + q['wi']['bias'])) @ q['wo']['kernel'] + q['wo']['bias']
  chex.assert_trees_all_close(ffn.apply({'params': p}, jnp.asarray(x)), ref, rtol=1e-5, atol=1e-5)


def test_rotary_matches_complex_rotation_and_depends_on_relative_position():
  rng = np.random.default_rng(14)
  q, k = rng.normal(size=(2, 2, 5, 3, 8))            # [batch, length, heads, dim] each
  pos = np.array([[0, 1, 2, 3, 4], [7, 3, 0, 11, 2]])
  rq = np.asarray(rotary(jnp.asarray(q, jnp.float32), jnp.asarray(pos), 100.0))
  for b in range(2):
    for h in range(3):
      np.testing.assert_allclose(rq[b, :, h], helpers.np_rotate(q[b, :, h], pos[b], 100.0),
                                 rtol=1e-5, atol=1e-5)
  # Norms are kept, and q . k depends on the positions only through their difference.
  np.testing.assert_allclose(np.linalg.norm(rq, axis=-1), np.linalg.norm(q, axis=-1), rtol=1e-5)

  def scores(shift):
    p = jnp.asarray(pos + shift)
    return np.einsum('blhd,bmhd->bhlm', np.asarray(rotary(jnp.asarray(q, jnp.float32), p)),
                     np.asarray(rotary(jnp.asarray(k, jnp.float32), p)))
  np.testing.assert_allclose(scores(37), scores(0), rtol=1e-4, atol=1e-4)
  plain = np.einsum('blhd,bmhd->bhlm', q, k)
  assert np.abs(scores(0) - plain).max() > 0.1       # the rotation does change the scores


def test_embed_lookup_and_attend():
  emb = Embed(13, 16)
  tokens = jnp.asarray([[1, 0, 12, 5, 5, 7, 2], [3, 3, 2, 0, 0, 0, 0]])
  p = helpers.init_params(emb, tokens)
  table = np.asarray(p['embedding'], np.float64)
  chex.assert_shape(table, (13, 16))
  # Initialized as normal(d^-0.5).
  np.testing.assert_allclose(table.std(), 16 ** -0.5, rtol=0.25)
  y = emb.apply({'params': p}, tokens)
  chex.assert_trees_all_close(y, table[np.asarray(tokens)], rtol=1e-6)
  x = np.random.default_rng(12).normal(size=(2, 7, 16)).astype(np.float32)
  logits = emb.apply({'params': p}, jnp.asarray(x), method='attend')
  chex.assert_shape(logits, (2, 7, 13))
  chex.assert_trees_all_close(logits, np.asarray(x, np.float64) @ table.T, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Positional encodings.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('d_model', [16, 7])
def test_sinusoidal_encoding_matches_paper_formula(d_model):
  length = 50
  pe = sinusoidal_encoding(length, d_model)
  assert pe.shape == (length, d_model) and pe.dtype == np.float32
  ref = np.zeros((length, d_model))
  for pos in range(length):
    for i in range((d_model + 1) // 2):
      ref[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d_model))
      if 2 * i + 1 < d_model:
        ref[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d_model))
  np.testing.assert_allclose(pe, ref, rtol=1e-5, atol=1e-5)
  # PE(0) = [0, 1, 0, 1, ...]
  np.testing.assert_array_equal(pe[0, 0::2], 0.0)
  np.testing.assert_array_equal(pe[0, 1::2], 1.0)


def test_sincos_2d_shape_and_values():
  h, w, d = 3, 4, 8
  pe = sincos_2d(h, w, d)
  assert pe.shape == (h * w, d) and pe.dtype == np.float32
  quarter = d // 4
  omega = [1.0 / 10000 ** (k / (quarter - 1)) for k in range(quarter)]
  ref = np.zeros((h * w, d))
  for row in range(h):
    for col in range(w):
      n = row * w + col                    # patches in raster (row-major) order
      for k in range(quarter):
        ref[n, k] = math.sin(col * omega[k])
        ref[n, quarter + k] = math.cos(col * omega[k])
        ref[n, 2 * quarter + k] = math.sin(row * omega[k])
        ref[n, 3 * quarter + k] = math.cos(row * omega[k])
  np.testing.assert_allclose(pe, ref, rtol=1e-6, atol=1e-6)
  assert len({tuple(r) for r in pe.round(5)}) == h * w   # every patch is distinct
  with pytest.raises(ValueError, match='d_model % 4'):
    sincos_2d(2, 2, 6)


def test_positional_encoding_sinusoidal_adds_table():
  cfg = tiny_cfg(positional='sinusoidal')
  x = np.random.default_rng(13).normal(size=(2, 6, cfg.d_model)).astype(np.float32)
  pe_mod = PositionalEncoding(cfg)
  variables = pe_mod.init(helpers.key(0), jnp.asarray(x))
  assert not variables.get('params')     # the sinusoidal table is not a parameter
  y, positions = pe_mod.apply(variables, jnp.asarray(x))
  np.testing.assert_array_equal(np.asarray(positions), np.arange(6)[None])
  ref = np.zeros((6, cfg.d_model))
  for pos in range(6):
    for j in range(cfg.d_model):
      angle = pos / 10000 ** (2 * (j // 2) / cfg.d_model)
      ref[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
  chex.assert_trees_all_close(y, x + ref[None], rtol=1e-5, atol=1e-5)


def test_positional_encoding_learned_adds_learned_table():
  cfg = tiny_cfg(positional='learned')
  x = np.random.default_rng(14).normal(size=(2, 6, cfg.d_model)).astype(np.float32)
  pe_mod = PositionalEncoding(cfg)
  p = helpers.init_params(pe_mod, jnp.asarray(x))
  chex.assert_shape(p['pos_embedding'], (cfg.max_len, cfg.d_model))
  table = np.random.default_rng(15).normal(size=(cfg.max_len, cfg.d_model)).astype(np.float32)
  y, _ = pe_mod.apply({'params': {'pos_embedding': jnp.asarray(table)}}, jnp.asarray(x))
  chex.assert_trees_all_close(y, x + table[None, :6], rtol=1e-6, atol=1e-6)


def test_positional_encoding_none_is_identity():
  cfg = tiny_cfg(positional='none')
  x = jnp.asarray(np.random.default_rng(16).normal(size=(1, 4, cfg.d_model)), jnp.float32)
  variables = PositionalEncoding(cfg).init(helpers.key(0), x)
  assert not variables.get('params')
  np.testing.assert_array_equal(np.asarray(PositionalEncoding(cfg).apply(variables, x)[0]),
                                np.asarray(x))


def test_positional_encoding_too_long_raises():
  cfg = tiny_cfg(max_len=4)
  with pytest.raises(ValueError, match='max_len'):
    PositionalEncoding(cfg).init(helpers.key(0), jnp.zeros((1, 5, cfg.d_model)))


def test_positional_encoding_decode_tracks_position():
  """With use_cache each one-token call gets the encoding of the next position."""
  cfg = tiny_cfg(positional='sinusoidal', use_cache=True)
  mod = PositionalEncoding(cfg, use_cache=True)
  variables = mod.init(helpers.key(0), jnp.zeros((1, cfg.max_len, cfg.d_model)))
  cache = variables['cache']
  table = sinusoidal_encoding(cfg.max_len, cfg.d_model)
  step = lambda c, x: mod.apply({'cache': c}, x, mutable=['cache'])
  for t in range(3):
    (y, positions), new = step(cache, jnp.zeros((1, 1, cfg.d_model)))
    cache = new['cache']
    np.testing.assert_allclose(np.asarray(y)[0, 0], table[t], rtol=1e-6, atol=1e-6)
    assert np.asarray(positions).tolist() == [[t]]
    assert int(cache['position']) == t + 1


def test_resize_posemb_same_grid_is_identity():
  rng = np.random.default_rng(17)
  posemb = jnp.asarray(rng.normal(size=(1, 1 + 16, 8)), jnp.float32)
  out = resize_posemb(posemb, (4, 4), num_prefix_tokens=1)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(posemb))


def test_resize_posemb_new_grid():
  rng = np.random.default_rng(18)
  d = 8
  cls = rng.normal(size=(1, 1, d))
  # A grid that is constant along columns and linear along rows: bilinear resizing
  # must keep it constant along columns and monotone along rows.
  rows = np.linspace(-1.0, 1.0, 4)
  grid = np.broadcast_to(rows[:, None, None] * np.ones(d), (4, 4, d)).reshape(1, 16, d)
  posemb = jnp.asarray(np.concatenate([cls, grid], axis=1), jnp.float32)
  out = np.asarray(resize_posemb(posemb, (6, 6), num_prefix_tokens=1))
  assert out.shape == (1, 1 + 36, d)
  np.testing.assert_allclose(out[:, :1], cls, rtol=1e-6)     # class token kept as is
  new = out[0, 1:].reshape(6, 6, d)
  np.testing.assert_allclose(new, new[:, :1, :].repeat(6, axis=1), atol=1e-6)
  assert np.all(np.diff(new[:, 0, 0]) > 0)
  assert new[0, 0, 0] >= -1.0 - 1e-6 and new[-1, 0, 0] <= 1.0 + 1e-6
  # Without a prefix, and to a smaller grid.
  out2 = resize_posemb(jnp.asarray(grid, jnp.float32), (2, 3))
  assert out2.shape == (1, 6, d)
  with pytest.raises(ValueError, match='square'):
    resize_posemb(jnp.zeros((1, 1 + 15, d)), (4, 4), num_prefix_tokens=1)


def test_feed_forward_logical_axis_names():
  x = jnp.ones((1, 2, 16))
  variables = jax.eval_shape(FeedForward(tiny_cfg()).init, jax.random.PRNGKey(0), x)
  names = [n for box in jax.tree_util.tree_leaves(
      variables['params'], is_leaf=lambda b: isinstance(b, nn.LogicallyPartitioned))
           for n in box.names]
  assert set(names) == {'embed', 'mlp'}
