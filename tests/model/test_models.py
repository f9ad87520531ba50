"""Tests of transformer.models (EncoderDecoder, DecoderLM, ViT) and transformer.model_config.

Models are tiny and share their shapes (batch 2, length 7, d_model 16) so that the
file runs in seconds on a small CPU.
"""

import functools
import math

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import transformer
from tests import helpers
from transformer.attention import padding_mask
from transformer.model_config import TransformerConfig, from_dict, preset
from transformer.models import ConvStem, DecoderLM, EncoderDecoder, EncoderOnly, ViT

BATCH, SRC_LEN = 2, 7
CFG = helpers.tiny_model_cfg(num_encoder_layers=2, num_decoder_layers=2)
TGT_LEN = CFG.max_len
VIT_CFG = preset('vit_ti', d_model=16, num_heads=2, d_ff=24, num_encoder_layers=1,
                 image_size=8, patch_size=4, num_classes=5, deterministic=True)


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------

def apply_fn(model_cls, cfg, method=None, mutable=()):
  """`model_cls(cfg).apply`, op by op.

  On a small CPU, compiling each tiny model with jit costs seconds; op-by-op dispatch
  reuses the compiled primitives across tests (all models share shapes), so it is
  several times faster overall. `test_jit_and_eager_agree` covers jit.
  """
  return functools.partial(model_cls(cfg).apply, method=method, mutable=list(mutable) or False)


def src_tokens(seed=0):
  """[BATCH, SRC_LEN] source tokens; row 0 ends with 2 pads, row 1 has none.

  SRC_LEN == TGT_LEN keeps the number of compiled shapes down; the shape tests (which
  compile nothing) use different lengths.
  """
  rng = np.random.default_rng(seed)
  src = rng.integers(1, CFG.vocab_size, size=(BATCH, SRC_LEN))
  src[0, -2:] = 0
  return jnp.asarray(src, jnp.int32)


def tgt_tokens(seed=1, length=TGT_LEN):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(1, CFG.vocab_size, size=(BATCH, length)), jnp.int32)


def perturb(params, seed, scale=0.1):
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(
      lambda a: jnp.asarray(np.asarray(a) + scale * rng.normal(size=a.shape), a.dtype), params)


def num_params(tree):
  return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def abstract_variables(model_cls, cfg, *shapes_dtypes):
  args = [jax.ShapeDtypeStruct(s, d) for s, d in shapes_dtypes]
  return jax.eval_shape(model_cls(cfg).init, jax.random.PRNGKey(0), *args)


def ed_shapes(cfg, src_len=5):
  """Abstract (source, target) inputs; the lengths differ, to catch any mix-up."""
  return ((BATCH, src_len), jnp.int32), ((BATCH, TGT_LEN), jnp.int32)


# Independent analytic parameter counts (Vaswani et al. 2017, Dosovitskiy et al. 2021).

def n_attention(d):
  return 4 * d * d + 4 * d                  # W_Q, W_K, W_V, W_O and their biases


def n_ffn(d, dff):
  return 2 * d * dff + dff + d


def n_norm(cfg):
  return cfg.d_model if cfg.norm == 'rmsnorm' else 2 * cfg.d_model


def n_encoder_decoder(cfg):
  d, v, vt = cfg.d_model, cfg.vocab_size, cfg.output_vocab_size
  emb = v * d if cfg.share_embeddings else v * d + vt * d
  logits = 0 if cfg.logits_via_embedding else d * vt + vt
  pos = 2 * cfg.max_len * d if cfg.positional == 'learned' else 0   # source and target tables
  enc = n_attention(d) + n_ffn(d, cfg.d_ff) + 2 * n_norm(cfg)
  dec = 2 * n_attention(d) + n_ffn(d, cfg.d_ff) + 3 * n_norm(cfg)
  final = 2 * n_norm(cfg) if cfg.norm_position == 'pre' else 0
  return (emb + logits + pos + cfg.num_encoder_layers * enc + cfg.num_decoder_layers * dec
          + final)


def n_decoder_lm(cfg):
  d = cfg.d_model
  logits = 0 if cfg.logits_via_embedding else d * cfg.vocab_size + cfg.vocab_size
  pos = cfg.max_len * d if cfg.positional == 'learned' else 0
  dec = n_attention(d) + n_ffn(d, cfg.d_ff) + 2 * n_norm(cfg)   # no cross-attention
  final = n_norm(cfg) if cfg.norm_position == 'pre' else 0
  return cfg.vocab_size * d + logits + pos + cfg.num_decoder_layers * dec + final


def n_vit(cfg, pos_tokens=None):
  """ViT parameters; `pos_tokens` = how many positions have a learned embedding."""
  d, p = cfg.d_model, cfg.patch_size
  patches = (cfg.image_size // p) ** 2
  if pos_tokens is None:
    pos_tokens = patches
  total = p * p * cfg.num_channels * d + d                       # patch embedding
  total += d if cfg.pool == 'cls' else 0                         # class token
  total += pos_tokens * d if cfg.positional == 'learned' else 0
  total += cfg.num_encoder_layers * (n_attention(d) + n_ffn(d, cfg.d_ff) + 2 * n_norm(cfg))
  total += n_norm(cfg)                                           # final (pre-LN) norm
  head_in = d
  if cfg.representation_size:
    total += d * cfg.representation_size + cfg.representation_size
    head_in = cfg.representation_size
  return total + head_in * cfg.num_classes + cfg.num_classes


# ---------------------------------------------------------------------------
# Parameter counts and output shapes.
# ---------------------------------------------------------------------------

def test_base_preset_parameter_count():
  cfg = transformer.preset('base', vocab_size=37000)
  assert cfg.share_embeddings and cfg.logits_via_embedding
  variables = abstract_variables(EncoderDecoder, cfg, ((2, 5), jnp.int32), ((2, 5), jnp.int32))
  n = num_params(variables['params'])
  # Embeddings V*d; 6 encoder layers (attn + ffn + 2 LN); 6 decoder layers (2 attn + ffn + 3 LN).
  d, dff, v = 512, 2048, 37000
  expected = (v * d + 6 * (4 * d * d + 4 * d + 2 * d * dff + dff + d + 2 * 2 * d)
              + 6 * (2 * (4 * d * d + 4 * d) + 2 * d * dff + dff + d + 3 * 2 * d))
  assert n == expected == n_encoder_decoder(cfg)
  assert abs(n - 65e6) <= 3e6, n                     # the paper's "65M"


def test_big_preset_parameter_count():
  cfg = transformer.preset('big', vocab_size=37000)
  assert (cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.dropout_rate) == (1024, 16, 4096, 0.3)
  variables = abstract_variables(EncoderDecoder, cfg, ((2, 5), jnp.int32), ((2, 5), jnp.int32))
  n = num_params(variables['params'])
  assert n == n_encoder_decoder(cfg)
  assert abs(n - 213e6) <= 5e6, n                    # the paper's "213M"


def test_vit_b16_parameter_count():
  cfg = preset('vit_b', image_size=224, patch_size=16, num_classes=1000)
  variables = abstract_variables(ViT, cfg, ((1, 224, 224, 3), jnp.float32))
  n = num_params(variables['params'])
  # The reference ViT-B/16 (google-research/vision_transformer, timm) has 86,567,656
  # parameters, with a learned position embedding for all 197 tokens (class token too).
  assert n_vit(cfg, pos_tokens=197) == 86_567_656
  # This library (like big_vision) adds position embeddings to the 196 patches only,
  # before the class token is prepended: one d_model row fewer.
  assert n == n_vit(cfg) == 86_567_656 - 768
  assert abs(n - 86.6e6) < 0.1e6


@pytest.mark.parametrize('variant', [
    {},
    dict(norm='rmsnorm', norm_position='pre', positional='learned'),
    dict(share_embeddings=False, target_vocab_size=17, logits_via_embedding=False),
    dict(use_bias=False, positional='none'),
])
def test_encoder_decoder_parameter_count_and_output_shape(variant):
  cfg = CFG.replace(**variant)
  variables = abstract_variables(EncoderDecoder, cfg, *ed_shapes(cfg))
  n = num_params(variables['params'])
  if cfg.use_bias:
    assert n == n_encoder_decoder(cfg)
  else:
    d = cfg.d_model
    n_biases = (cfg.num_encoder_layers * (4 * d + cfg.d_ff + d)
                + cfg.num_decoder_layers * (8 * d + cfg.d_ff + d))
    assert n == n_encoder_decoder(cfg) - n_biases
  params = variables['params']
  assert ('target_embed' in params) == (not cfg.share_embeddings)
  assert ('logits' in params) == (not cfg.logits_via_embedding)
  out = jax.eval_shape(EncoderDecoder(cfg).apply, variables,
                       *[jax.ShapeDtypeStruct(s, d) for s, d in ed_shapes(cfg)])
  assert out.shape == (BATCH, TGT_LEN, cfg.output_vocab_size)
  assert out.dtype == jnp.float32


@pytest.mark.parametrize('variant', [{}, dict(norm='rmsnorm', norm_position='pre',
                                              positional='learned', logits_via_embedding=False)])
def test_decoder_lm_parameter_count_and_output_shape(variant):
  cfg = CFG.replace(**variant)
  variables = abstract_variables(DecoderLM, cfg, ((BATCH, 5), jnp.int32))
  assert num_params(variables['params']) == n_decoder_lm(cfg)
  out = jax.eval_shape(DecoderLM(cfg).apply, variables, jax.ShapeDtypeStruct((BATCH, 5), jnp.int32))
  assert out.shape == (BATCH, 5, cfg.vocab_size) and out.dtype == jnp.float32


def test_grouped_query_attention_and_gated_ffn_parameter_count():
  cfg = CFG.replace(num_heads=4, num_kv_heads=2, gated_ffn=True, activation='silu',
                    positional='rope')
  variables = abstract_variables(DecoderLM, cfg, ((BATCH, 5), jnp.int32))
  d, k, f, v = 16, 4, 24, cfg.vocab_size           # head_dim 16 / 4
  attention = (d * 4 * k + 4 * k                  # queries: 4 heads
               + 2 * (d * 2 * k + 2 * k)           # keys, values: 2 heads
               + 4 * k * d + d)                    # output
  ffn = 3 * d * f + 2 * f + d                      # W1, W_gate (with biases), W2
  assert num_params(variables['params']) == v * d + 2 * (attention + ffn + 2 * 2 * d)
  layer = nn.meta.unbox(variables['params'])['decoder']['layer_0']
  assert layer['self_attention']['key']['kernel'].shape == (d, 2, k)
  assert layer['mlp']['wi_gate']['kernel'].shape == (d, f)


@pytest.mark.parametrize('pool,positional,representation_size', [
    ('cls', 'learned', None), ('gap', 'sinusoidal', None), ('cls', 'sinusoidal', 6),
    ('gap', 'learned', 6)])
def test_vit_parameter_count_and_output_shape(pool, positional, representation_size):
  cfg = VIT_CFG.replace(pool=pool, positional=positional, representation_size=representation_size)
  shape = ((BATCH, 8, 8, 3), jnp.float32)
  variables = abstract_variables(ViT, cfg, shape)
  params = variables['params']
  assert num_params(params) == n_vit(cfg)
  assert ('cls_token' in params) == (pool == 'cls')
  assert ('pos_embedding' in params) == (positional == 'learned')
  out = jax.eval_shape(ViT(cfg).apply, variables, jax.ShapeDtypeStruct(*shape))
  assert out.shape == (BATCH, cfg.num_classes) and out.dtype == jnp.float32


def test_vit_rejects_indivisible_image():
  with pytest.raises(ValueError, match='patch_size'):
    abstract_variables(ViT, VIT_CFG, ((1, 10, 8, 3), jnp.float32))


# ---------------------------------------------------------------------------
# Full forward passes against NumPy float64 references written from the papers.
# ---------------------------------------------------------------------------

def np_norm(p, x, cfg):
  if cfg.norm == 'rmsnorm':
    return helpers.np_rmsnorm(x, p['scale'], cfg.norm_epsilon)
  return helpers.np_layernorm(x, p['scale'], p['bias'], cfg.norm_epsilon)


def np_dense(p, x):
  return x @ p['kernel'] + (p['bias'] if 'bias' in p else 0.0)


def np_act(h, name):
  if name == 'relu':
    return np.maximum(h, 0.0)
  if name == 'silu':
    return h / (1.0 + np.exp(-h))                        # x * sigmoid(x)
  return helpers.np_gelu_tanh(h)


def np_ffn(p, x, cfg):
  h = np_dense(p['wi'], x)
  if cfg.gated_ffn:                                      # Shazeer 2020: act(x W_gate) * x W1
    return np_dense(p['wo'], np_act(np_dense(p['wi_gate'], x), cfg.activation) * h)
  return np_dense(p['wo'], np_act(h, cfg.activation))


def np_sublayer(p, x, f, cfg):
  """Post-LN LayerNorm(x + Sublayer(x)) (paper) or pre-LN x + Sublayer(LayerNorm(x))."""
  if cfg.norm_position == 'pre':
    return x + f(np_norm(p['norm'], x, cfg))
  return np_norm(p['norm'], x + f(x), cfg)


def np_rope_positions(x, cfg):
  """Positions 0..len-1 of every row for rotary attention; None for the other kinds."""
  if cfg.positional != 'rope':
    return None
  return np.broadcast_to(np.arange(x.shape[1]), x.shape[:2])


def np_encoder(p, x, mask, cfg):
  pos = np_rope_positions(x, cfg)
  for i in range(cfg.num_encoder_layers):
    lp = p[f'layer_{i}']
    attn, mlp = lp['self_attention'], lp['mlp']
    x = np_sublayer(lp['self_attention_residual'], x,
                    lambda h, attn=attn: helpers.np_mha(attn, h, h, mask, pos, cfg.rope_base),
                    cfg)
    x = np_sublayer(lp['mlp_residual'], x, lambda h, mlp=mlp: np_ffn(mlp, h, cfg), cfg)
  return np_norm(p['final_norm'], x, cfg) if cfg.norm_position == 'pre' else x


def np_decoder(p, y, encoded, cross_mask, cfg):
  causal = np.tril(np.ones((y.shape[1], y.shape[1]), bool))[None, None]
  pos = np_rope_positions(y, cfg)
  for i in range(cfg.num_decoder_layers):
    lp = p[f'layer_{i}']
    attn, mlp = lp['self_attention'], lp['mlp']
    y = np_sublayer(lp['self_attention_residual'], y,
                    lambda h, attn=attn: helpers.np_mha(attn, h, h, causal, pos, cfg.rope_base),
                    cfg)
    if encoded is not None:
      cross = lp['cross_attention']
      y = np_sublayer(lp['cross_attention_residual'], y,
                      lambda h, cross=cross: helpers.np_mha(cross, h, encoded, cross_mask), cfg)
    y = np_sublayer(lp['mlp_residual'], y, lambda h, mlp=mlp: np_ffn(mlp, h, cfg), cfg)
  return np_norm(p['final_norm'], y, cfg) if cfg.norm_position == 'pre' else y


def np_sinusoid(length, d):
  pos = np.arange(length)[:, None]
  j = np.arange(d)[None, :]
  angle = pos / 10000.0 ** (2 * (j // 2) / d)     # PE(pos, 2i) = sin, PE(pos, 2i+1) = cos
  return np.where(j % 2 == 0, np.sin(angle), np.cos(angle))


def np_token_input(table, pos_params, tokens, cfg):
  """Embedding * sqrt(d_model) + positional encoding (paper, sections 3.4 and 3.5)."""
  x = table[np.asarray(tokens)] * (math.sqrt(cfg.d_model) if cfg.scale_embeddings else 1.0)
  length = x.shape[1]
  if cfg.positional == 'rope':                 # positions enter the attention instead
    return x
  if cfg.positional == 'learned':
    return x + pos_params['position']['pos_embedding'][:length]
  return x + np_sinusoid(length, cfg.d_model)


def np_logits(p, y, embedding, cfg):
  if cfg.logits_via_embedding:
    return y @ embedding.T
  return np_dense(p['logits'], y)


MODEL_VARIANTS = {
    'paper': {},   # post-LN, LayerNorm, ReLU, sinusoidal, shared and tied embeddings
    'pre_rmsnorm_gelu_learned_untied': dict(
        norm_position='pre', norm='rmsnorm', activation='gelu', positional='learned',
        share_embeddings=False, logits_via_embedding=False),
    # LLaMA-style: rotary positions, one key/value head for two query heads, SwiGLU, no biases.
    'rope_gqa_swiglu': dict(
        norm_position='pre', norm='rmsnorm', activation='silu', gated_ffn=True,
        positional='rope', num_kv_heads=1, use_bias=False, scale_embeddings=False,
        logits_via_embedding=False),
}


@pytest.mark.parametrize('variant', list(MODEL_VARIANTS))
def test_decoder_lm_matches_numpy(variant):
  cfg = CFG.replace(**MODEL_VARIANTS[variant])          # (DecoderLM has one embedding)
  tokens = tgt_tokens(20)
  params = perturb(helpers.init_params(DecoderLM(cfg), tokens), 21)
  logits = apply_fn(DecoderLM, cfg)({'params': params}, tokens)
  p = helpers.np64(params)
  x = np_token_input(p['embed']['embedding'], p.get('input'), tokens, cfg)
  ref = np_logits(p, np_decoder(p['decoder'], x, None, None, cfg), p['embed']['embedding'], cfg)
  chex.assert_shape(logits, (BATCH, TGT_LEN, cfg.vocab_size))
  chex.assert_trees_all_close(logits, ref, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize('variant', list(MODEL_VARIANTS))
def test_encoder_decoder_matches_numpy(variant):
  cfg = CFG.replace(**MODEL_VARIANTS[variant])
  src, tgt = src_tokens(22), tgt_tokens(23)
  params = perturb(helpers.init_params(EncoderDecoder(cfg), src, tgt), 24)
  logits = apply_fn(EncoderDecoder, cfg)({'params': params}, src, tgt)
  p = helpers.np64(params)
  key_mask = (np.asarray(src) != cfg.pad_id)[:, None, None, :]     # [batch, 1, 1, src_len]
  target_table = p['source_embed' if cfg.share_embeddings else 'target_embed']['embedding']
  x = np_token_input(p['source_embed']['embedding'], p.get('source_input'), src, cfg)
  encoded = np_encoder(p['encoder'], x, key_mask, cfg)
  y = np_token_input(target_table, p.get('target_input'), tgt, cfg)
  ref = np_logits(p, np_decoder(p['decoder'], y, encoded, key_mask, cfg), target_table, cfg)
  chex.assert_shape(logits, (BATCH, TGT_LEN, cfg.output_vocab_size))
  chex.assert_trees_all_close(logits, ref, rtol=2e-4, atol=2e-4)


def np_sincos_2d(h, w, d):
  quarter = d // 4
  omega = 1.0 / 10000.0 ** (np.arange(quarter) / (quarter - 1))
  rows, cols = np.divmod(np.arange(h * w), w)                     # raster order
  ang_x, ang_y = cols[:, None] * omega, rows[:, None] * omega
  return np.concatenate([np.sin(ang_x), np.cos(ang_x), np.sin(ang_y), np.cos(ang_y)], 1)


@pytest.mark.parametrize('pool,positional,layers', [('cls', 'learned', 1),
                                                    ('gap', 'sinusoidal', 0)])
def test_vit_matches_numpy(pool, positional, layers):
  """Patchify, linear embedding, positions, class token, pre-LN encoder, pooling, head.

  Images are 8x12 (a 2x3 grid of 4x4 patches): a non-square grid catches rows and columns
  swapped, and 6 patches + the class token make the 7 tokens of the other tests' shapes.
  """
  cfg = VIT_CFG.replace(pool=pool, positional=positional, num_encoder_layers=layers)
  ps, gh, gw = cfg.patch_size, 2, 3
  x = jnp.asarray(np.random.default_rng(25).normal(size=(BATCH, gh * ps, gw * ps, 3)),
                  jnp.float32)
  params = perturb(helpers.init_params(ViT(cfg), x), 3)     # (the head is zero-initialized)
  logits = apply_fn(ViT, cfg)({'params': params}, x)
  p = helpers.np64(params)
  img = np.asarray(x, np.float64)
  tokens = []
  for i in range(gh):                                    # raster order over the patch grid
    for j in range(gw):
      patch = img[:, i * ps:(i + 1) * ps, j * ps:(j + 1) * ps, :]       # [b, p, p, c]
      tokens.append(patch.reshape(BATCH, -1) @ p['patch_embed']['kernel']
                    + p['patch_embed']['bias'])
  h = np.stack(tokens, axis=1)
  h = h + (p['pos_embedding'] if positional == 'learned' else np_sincos_2d(gh, gw, cfg.d_model))
  if pool == 'cls':
    h = np.concatenate([np.broadcast_to(p['cls_token'], (BATCH, 1, cfg.d_model)), h], axis=1)
  h = np_encoder(p['encoder'], h, None, cfg)
  pooled = h[:, 0] if pool == 'cls' else h.mean(axis=1)
  ref = pooled @ p['head']['kernel'] + p['head']['bias']
  chex.assert_shape(logits, (BATCH, cfg.num_classes))
  chex.assert_trees_all_close(logits, ref, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize('pool', ['cls', 'gap'])
def test_encoder_only_heads_match_numpy(pool):
  """BERT's heads over the encoder's output: the classifier pools [CLS] or the mean of the
  real tokens ('gap'; padding's content does not reach it), then Dense + tanh and the
  classifier; the masked-LM head at given positions equals the full head's there."""
  cfg = CFG.replace(num_classes=3, pool=pool)
  rng = np.random.default_rng(26)
  tokens = jnp.asarray(rng.integers(1, cfg.vocab_size, size=(BATCH, SRC_LEN)), jnp.int32)
  real = jnp.asarray(np.arange(SRC_LEN)[None] < np.array([[SRC_LEN], [4]]))
  params = perturb(helpers.init_params(EncoderOnly(cfg), tokens, None, None, 'both'), 4)
  run = apply_fn(EncoderOnly, cfg)
  mlm, classes = run({'params': params}, tokens, attention_mask=real, head='both')
  h = np.asarray(apply_fn(EncoderOnly, cfg, method='encode')(
      {'params': params}, tokens, attention_mask=real), np.float64)
  p, m = helpers.np64(params), np.asarray(real, np.float64)[..., None]
  summary = h[:, 0] if pool == 'cls' else (h * m).sum(1) / m.sum(1)
  pooled = np.tanh(summary @ p['pooler']['kernel'] + p['pooler']['bias'])
  ref = pooled @ p['classifier']['kernel'] + p['classifier']['bias']
  chex.assert_trees_all_close(classes, ref, rtol=2e-4, atol=2e-4)
  other = tokens.at[1, 4:].set(1)          # new content in the second row's padding
  again = run({'params': params}, other, attention_mask=real, head='classify')
  chex.assert_trees_all_close(again, classes, rtol=1e-5, atol=1e-5)
  positions = jnp.asarray([[5, 0, 2], [3, 3, 1]], jnp.int32)
  some = run({'params': params}, tokens, attention_mask=real, mlm_positions=positions)
  chex.assert_trees_all_close(some, np.take_along_axis(np.asarray(mlm), positions[..., None], 1),
                              rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Causality and padding.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('variant', ['paper', 'rope_gqa_swiglu'])
def test_decoder_lm_is_causal(variant):
  cfg = CFG.replace(**MODEL_VARIANTS[variant])
  tokens = np.asarray(tgt_tokens(3))
  params = helpers.init_params(DecoderLM(cfg), jnp.asarray(tokens))
  apply = apply_fn(DecoderLM, cfg)
  base = np.asarray(apply({'params': params}, jnp.asarray(tokens)))
  rng = np.random.default_rng(4)
  for i in range(TGT_LEN - 1):
    changed_tokens = tokens.copy()
    # Different tokens at every later position.
    changed_tokens[:, i + 1:] = (tokens[:, i + 1:] + rng.integers(
        1, cfg.vocab_size - 1, size=tokens[:, i + 1:].shape) - 1) % (cfg.vocab_size - 1) + 1
    assert np.all(changed_tokens[:, i + 1:] != tokens[:, i + 1:])
    changed = np.asarray(apply({'params': params}, jnp.asarray(changed_tokens)))
    np.testing.assert_allclose(changed[:, :i + 1], base[:, :i + 1], rtol=1e-5, atol=1e-5)
    assert not np.allclose(changed[:, i + 1:], base[:, i + 1:], atol=1e-3)


def attention_weights(intermediates, stack, attention):
  """The sown attention weights of every layer of `stack` for sub-module `attention`."""
  out = []
  for name, layer in sorted(intermediates[stack].items()):
    (w,) = layer[attention]['attention_weights']
    out.append(np.asarray(w))
  return out


def test_encoder_decoder_padded_keys_get_zero_weight():
  cfg = CFG
  src, tgt = src_tokens(), tgt_tokens()
  params = helpers.init_params(EncoderDecoder(cfg), src, tgt)
  _, state = apply_fn(EncoderDecoder, cfg, mutable=('intermediates',))(
      {'params': params}, src, tgt)
  inter = state['intermediates']
  enc = attention_weights(inter, 'encoder', 'self_attention')
  cross = attention_weights(inter, 'decoder', 'cross_attention')
  dec = attention_weights(inter, 'decoder', 'self_attention')
  assert len(enc) == cfg.num_encoder_layers and len(cross) == len(dec) == cfg.num_decoder_layers
  real = np.asarray(src) != 0
  for w in enc + cross:
    for b in range(BATCH):
      np.testing.assert_array_equal(w[b][..., ~real[b]], 0.0)
      assert np.all(w[b][..., real[b]] > 0)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  future = ~np.tril(np.ones((TGT_LEN, TGT_LEN), bool))
  for w in dec:
    chex.assert_shape(w, (BATCH, cfg.num_heads, TGT_LEN, TGT_LEN))
    np.testing.assert_array_equal(w[:, :, future], 0.0)
    assert np.all(w[:, :, ~future] > 0)


def test_encoder_decoder_ignores_padded_source_content():
  cfg = CFG
  src, tgt = src_tokens(), tgt_tokens()
  params = helpers.init_params(EncoderDecoder(cfg), src, tgt)
  variables = {'params': params}
  pad = ~(np.asarray(src) != 0)
  rng = np.random.default_rng(5)

  # 1) The encoder: new content at padded positions leaves real positions unchanged.
  def run_encoder(module, x, s):
    return module.encoder(x, padding_mask(s, cfg.pad_id))

  encoder = apply_fn(EncoderDecoder, cfg, method=run_encoder)
  # The encoder input, computed independently: E[src] * sqrt(d_model) + PE (paper, 3.4-3.5).
  table = np.asarray(params['source_embed']['embedding'], np.float64)
  embedded = np_token_input(table, None, src, cfg).astype(np.float32)
  noisy = embedded.copy()
  noisy[pad] = 10.0 * rng.normal(size=noisy[pad].shape)
  enc_a = np.asarray(encoder(variables, jnp.asarray(embedded), src))
  enc_b = np.asarray(encoder(variables, jnp.asarray(noisy), src))
  np.testing.assert_allclose(enc_b[~pad], enc_a[~pad], rtol=1e-5, atol=1e-5)
  assert not np.allclose(enc_b[pad], enc_a[pad], atol=1e-3)   # the padded content did change

  # 2) The decoder: new encoder output at padded positions leaves every logit unchanged.
  encoded = np.asarray(apply_fn(EncoderDecoder, cfg, method='encode')(variables, src))
  chex.assert_trees_all_close(encoded, enc_a, rtol=1e-5, atol=1e-5)   # same input as ours
  noisy_encoded = encoded.copy()
  noisy_encoded[pad] = 10.0 * rng.normal(size=noisy_encoded[pad].shape)
  decode = apply_fn(EncoderDecoder, cfg, method='decode')
  logits_a = decode(variables, jnp.asarray(encoded), src, tgt)
  logits_b = decode(variables, jnp.asarray(noisy_encoded), src, tgt)
  chex.assert_trees_all_close(logits_b, logits_a, rtol=1e-5, atol=1e-5)
  # Control: the same change at a real position does change the logits.
  noisy_real = encoded.copy()
  noisy_real[0, 0] += 10.0
  logits_c = decode(variables, jnp.asarray(noisy_real), src, tgt)
  assert not np.allclose(logits_c, logits_a, atol=1e-3)
  # And the full model agrees with encode + decode.
  chex.assert_trees_all_close(apply_fn(EncoderDecoder, cfg)(variables, src, tgt), logits_a,
                              rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Cached autoregressive decoding.
# ---------------------------------------------------------------------------

DECODE_VARIANTS = {
    'post_ln': {},
    'pre_rmsnorm_learned': dict(norm_position='pre', norm='rmsnorm', positional='learned'),
    'rope_gqa_swiglu': MODEL_VARIANTS['rope_gqa_swiglu'],
}


def check_cache(cache, cfg, steps):
  """The documented cache variables exist and have advanced by `steps`."""
  flat = {'/'.join(str(getattr(k, 'key', k)) for k in path): v
          for path, v in jax.tree_util.tree_leaves_with_path(cache)}
  names = {k.split('/')[-1] for k in flat}
  assert {'cached_key', 'cached_value', 'cache_index', 'position'} <= names
  for k, v in flat.items():
    if k.endswith(('cache_index', 'position')):
      assert int(v) == steps, k
    if k.endswith('cached_key'):   # grouped-query attention caches num_kv_heads heads
      assert v.shape == (BATCH, cfg.kv_heads, cfg.max_len, cfg.qkv_dim)   # heads-major


@pytest.mark.parametrize('variant', list(DECODE_VARIANTS))
def test_decoder_lm_cached_decoding_matches_full_forward(variant):
  cfg = CFG.replace(**DECODE_VARIANTS[variant])
  tokens = tgt_tokens(6)
  params = perturb(helpers.init_params(DecoderLM(cfg), tokens), 7)
  full = np.asarray(apply_fn(DecoderLM, cfg)({'params': params}, tokens))

  dcfg = cfg.replace(use_cache=True, deterministic=True)
  cache = helpers.init_variables(DecoderLM(dcfg),
                                 jnp.zeros((BATCH, dcfg.max_len), jnp.int32))['cache']
  step = apply_fn(DecoderLM, dcfg, mutable=('cache',))
  steps = []
  for t in range(TGT_LEN):
    logits, state = step({'params': params, 'cache': cache}, tokens[:, t:t + 1])
    cache = state['cache']
    chex.assert_shape(logits, (BATCH, 1, cfg.vocab_size))
    steps.append(np.asarray(logits[:, 0]))
  check_cache(cache, cfg, TGT_LEN)
  chex.assert_trees_all_close(np.stack(steps, axis=1), full, rtol=1e-4, atol=1e-4)


def _cached_encoder_decoder(cfg, **cache_fields):
  """(src, tgt, params, full-forward logits, empty cache, encoded, step) of a perturbed model."""
  src, tgt = src_tokens(8), tgt_tokens(9)
  params = perturb(helpers.init_params(EncoderDecoder(cfg), src, tgt), 10)
  full = np.asarray(apply_fn(EncoderDecoder, cfg)({'params': params}, src, tgt))
  dcfg = cfg.replace(use_cache=True, deterministic=True, **cache_fields)
  cache = helpers.init_variables(EncoderDecoder(dcfg), src,
                                 jnp.zeros((BATCH, dcfg.max_len), jnp.int32))['cache']
  encoded = apply_fn(EncoderDecoder, dcfg, method='encode')({'params': params}, src)
  step = apply_fn(EncoderDecoder, dcfg, method='decode', mutable=('cache',))
  return src, tgt, params, full, cache, encoded, step


def _decode_one_at_a_time(step, params, cache, kv_source, src, tgt):
  """Logits [B, TGT_LEN, V] of feeding tgt one token per step, and the final cache."""
  steps = []
  for t in range(TGT_LEN):
    logits, state = step({'params': params, 'cache': cache}, kv_source, src, tgt[:, t:t + 1])
    cache = state['cache']
    steps.append(np.asarray(logits[:, 0]))
  return np.stack(steps, axis=1), cache


@pytest.mark.parametrize('variant', list(DECODE_VARIANTS))
def test_encoder_decoder_cached_decoding_matches_full_forward(variant):
  cfg = CFG.replace(**DECODE_VARIANTS[variant])
  src, tgt, params, full, cache, encoded, step = _cached_encoder_decoder(cfg)
  logits, cache = _decode_one_at_a_time(step, params, cache, encoded, src, tgt)
  check_cache(cache, cfg, TGT_LEN)
  chex.assert_trees_all_close(logits, full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('cache_cross_kv', [True, False])
def test_encoder_decoder_cross_kv_cache_matches_full_forward(cache_cross_kv):
  """The cross-attention keys/values projected once (decode(encoded, src, None)), then
  steps with encoded=None; or (cache_cross_kv=False) projected again at every step."""
  cfg = CFG.replace(**DECODE_VARIANTS['post_ln'])
  src, tgt, params, full, cache, encoded, step = _cached_encoder_decoder(
      cfg, cache_cross_kv=cache_cross_kv)
  names = {str(getattr(p[-1], 'key', p[-1])) for p, _ in jax.tree_util.tree_leaves_with_path(cache)}
  assert ('cross_key' in names) == cache_cross_kv
  if cache_cross_kv:
    zeroed = jax.tree.map(jnp.zeros_like, cache)
    with pytest.raises(ValueError, match='not in the cache'):   # no cross cache at all
      step({'params': params, 'cache': {}}, None, src, tgt[:, :1])
    _, state = step({'params': params, 'cache': zeroed}, encoded, src, None)   # prime only
    cache = state['cache']
    flat = {'/'.join(str(getattr(k, 'key', k)) for k in path): v
            for path, v in jax.tree_util.tree_leaves_with_path(cache)}
    for k, v in flat.items():
      if k.endswith(('cache_index', 'position')):
        assert int(v) == 0, k                     # priming does not advance the self cache
      if k.endswith('cross_key'):
        assert v.shape == (BATCH, cfg.num_heads, src.shape[1], cfg.qkv_dim)   # heads-major
        assert float(jnp.abs(v).max()) > 0
  kv_source = None if cache_cross_kv else encoded
  logits, cache = _decode_one_at_a_time(step, params, cache, kv_source, src, tgt)
  check_cache(cache, cfg, TGT_LEN)
  chex.assert_trees_all_close(logits, full, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# jit, dropout, dtypes.
# ---------------------------------------------------------------------------

def test_jit_and_eager_agree():
  cfg = CFG
  tokens = tgt_tokens(12)
  params = perturb(helpers.init_params(DecoderLM(cfg), tokens), 13)
  eager = DecoderLM(cfg).apply({'params': params}, tokens)
  jitted = jax.jit(DecoderLM(cfg).apply)({'params': params}, tokens)
  chex.assert_trees_all_close(jitted, eager, rtol=1e-5, atol=1e-5)
  assert float(np.abs(np.asarray(eager)).max()) > 0.1                  # not trivially zero


def test_dropout_only_when_not_deterministic():
  base = CFG.replace(num_decoder_layers=1)
  tokens = tgt_tokens(14)
  params = helpers.init_params(DecoderLM(base), tokens)

  def run(cfg, seed):
    return np.asarray(apply_fn(DecoderLM, cfg)(
        {'params': params}, tokens, rngs={'dropout': helpers.key(seed)}))

  no_dropout = run(base.replace(deterministic=False), 0)           # rates are 0
  residual = base.replace(dropout_rate=0.1, deterministic=False)
  attn = base.replace(attention_dropout_rate=0.3, deterministic=False)
  eval_cfg = base.replace(dropout_rate=0.1, attention_dropout_rate=0.3, deterministic=True)
  for train_cfg in (residual, attn):
    a, b = run(train_cfg, 1), run(train_cfg, 2)
    assert not np.allclose(a, b, atol=1e-4)
    assert not np.allclose(a, no_dropout, atol=1e-4)
    np.testing.assert_array_equal(run(train_cfg, 1), a)            # same rng, same result
  # Deterministic: the rng is irrelevant and the output equals the dropout-free model.
  e1, e2 = run(eval_cfg, 1), run(eval_cfg, 2)
  np.testing.assert_array_equal(e1, e2)
  np.testing.assert_allclose(e1, no_dropout, rtol=1e-6, atol=1e-6)


def test_dropout_needs_rng_when_training():
  cfg = CFG.replace(num_decoder_layers=1, dropout_rate=0.1, deterministic=False)
  variables = abstract_variables(DecoderLM, cfg.replace(deterministic=True),
                                 ((BATCH, TGT_LEN), jnp.int32))
  with pytest.raises(flax.errors.InvalidRngError, match='dropout'):
    jax.eval_shape(DecoderLM(cfg).apply, variables, tgt_tokens(15))
  # With the rng it runs.
  out = jax.eval_shape(functools.partial(DecoderLM(cfg).apply, rngs={'dropout': helpers.key(0)}),
                       variables, tgt_tokens(15))
  assert out.shape == (BATCH, TGT_LEN, cfg.vocab_size)


def test_bfloat16_compute():
  cfg32 = CFG.replace(num_encoder_layers=1, num_decoder_layers=1)
  cls, args = EncoderDecoder, (src_tokens(16), tgt_tokens(17))
  cfg16 = cfg32.replace(dtype=jnp.bfloat16)
  params16 = helpers.init_params(cls(cfg16), *args)
  assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params16))
  params = perturb(params16, 18)
  logits32 = apply_fn(cls, cfg32)({'params': params}, *args)
  logits16 = apply_fn(cls, cfg16)({'params': params}, *args)
  assert logits16.dtype == jnp.float32
  assert not np.array_equal(np.asarray(logits16), np.asarray(logits32))   # really bf16
  scale = float(np.abs(np.asarray(logits32)).max())
  assert scale > 0.1
  chex.assert_trees_all_close(logits16, logits32, rtol=0.05, atol=0.05 * scale)


# ---------------------------------------------------------------------------
# Logical axis names.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('model', ['encoder_decoder', 'decoder_lm', 'vit'])
def test_every_parameter_has_logical_axis_names(model):
  if model == 'encoder_decoder':
    cfg = CFG.replace(share_embeddings=False, logits_via_embedding=False, positional='learned',
                      norm_position='pre')
    variables = abstract_variables(EncoderDecoder, cfg, *ed_shapes(cfg))
  elif model == 'decoder_lm':
    cfg = CFG.replace(norm='rmsnorm', positional='learned', logits_via_embedding=False)
    variables = abstract_variables(DecoderLM, cfg, ((BATCH, 5), jnp.int32))
  else:
    cfg = VIT_CFG.replace(representation_size=6)
    variables = abstract_variables(ViT, cfg, ((BATCH, 8, 8, 3), jnp.float32))
  is_box = lambda x: isinstance(x, nn.LogicallyPartitioned)
  boxes = jax.tree_util.tree_leaves(variables['params'], is_leaf=is_box)
  assert len(boxes) == len(jax.tree_util.tree_leaves(nn.meta.unbox(variables['params'])))
  for box in boxes:
    assert is_box(box), box
    assert len(box.names) == box.value.ndim, (box.names, box.value.shape)
    assert all(n is None or isinstance(n, str) for n in box.names)
    assert any(n is not None for n in box.names)
  specs = nn.get_partition_spec(variables['params'])
  shapes = nn.meta.unbox(variables['params'])
  jax.tree_util.tree_map(lambda spec, x: None if len(spec) == x.ndim else pytest.fail(
      f'{spec} vs {x.shape}'), specs, shapes,
                         is_leaf=lambda s: isinstance(s, jax.sharding.PartitionSpec))


# ---------------------------------------------------------------------------
# Config.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('bad,message', [
    (dict(num_heads=4, num_kv_heads=3), 'num_kv_heads=3 must be positive and divide num_heads=4'),
    (dict(num_heads=4, num_kv_heads=0), 'num_kv_heads=0'),
    (dict(num_heads=2, d_model=6, positional='rope'), 'head_dim=3 must be even'),
])
def test_config_rejects_bad_grouped_query_and_rotary_settings(bad, message):
  with pytest.raises(ValueError, match=message):
    TransformerConfig(**bad)


def test_vit_refuses_rotary_positions():
  with pytest.raises(ValueError, match="'rope' is for the sequence models"):
    abstract_variables(ViT, VIT_CFG.replace(positional='rope'), ((1, 8, 8, 3), jnp.float32))


def test_config_rejects_heads_that_do_not_divide_d_model():
  with pytest.raises(ValueError, match='num_heads'):
    TransformerConfig(num_heads=7, d_model=512)
  # An explicit head_dim makes it valid.
  cfg = TransformerConfig(num_heads=7, d_model=512, head_dim=64)
  assert cfg.qkv_dim == 64
  assert TransformerConfig(num_heads=8, d_model=512).qkv_dim == 64


@pytest.mark.parametrize('bad', [dict(norm='batchnorm'), dict(dropout_rate=1.0),
                                 dict(d_model=0), dict(attention_impl='flash'),
                                 dict(image_size=30, patch_size=16)])
def test_config_rejects_invalid_values(bad):
  with pytest.raises(ValueError, match=next(iter(bad))):
    TransformerConfig(**bad)


def test_unknown_preset_raises():
  with pytest.raises(ValueError, match='huge'):
    preset('huge')


def test_from_dict():
  with pytest.raises(ValueError, match='d_modle'):
    from_dict({'d_modle': 256})
  cfg = from_dict({'d_model': 256, 'num_heads': 4, 'dtype': 'bfloat16'}, d_ff=1024)
  assert cfg.dtype == jnp.bfloat16 and cfg.param_dtype == jnp.float32
  assert (cfg.d_model, cfg.num_heads, cfg.d_ff) == (256, 4, 1024)
  with pytest.raises(ValueError, match='float64'):
    from_dict({'dtype': 'float64'})


def test_presets():
  base = preset('base')
  assert (base.d_model, base.num_heads, base.d_ff, base.num_encoder_layers,
          base.num_decoder_layers, base.dropout_rate) == (512, 8, 2048, 6, 6, 0.1)
  assert base.norm_position == 'post' and base.positional == 'sinusoidal'
  vit = preset('vit_b', patch_size=32)
  assert (vit.d_model, vit.num_heads, vit.d_ff, vit.num_encoder_layers) == (768, 12, 3072, 12)
  assert (vit.norm_position, vit.activation, vit.positional, vit.patch_size) == (
      'pre', 'gelu', 'learned', 32)
  assert vit.num_decoder_layers == 0 and not vit.scale_embeddings


def test_share_embeddings_needs_one_vocabulary():
  cfg = CFG.replace(target_vocab_size=17)       # share_embeddings=True by default
  with pytest.raises(ValueError, match='share_embeddings'):
    abstract_variables(EncoderDecoder, cfg, *ed_shapes(cfg))


@pytest.mark.slow
def test_vit_conv_stem_makes_the_patch_grid_and_rejects_odd_patches():
  cfg = TransformerConfig(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1,
                          num_decoder_layers=0, image_size=28, patch_size=4, num_channels=1,
                          num_classes=5, pool='gap', stem='conv', deterministic=True)
  model = ViT(cfg)
  images = jax.random.normal(jax.random.key(0), (3, 28, 28, 1))
  variables = nn.meta.unbox(model.init(jax.random.key(1), images))
  stem = variables['params']['conv_stem']
  assert 'patch_embed' not in variables['params']
  # log2(4) = 2 stride-2 convs, widths doubling up to d_model, then the 1x1 projection.
  assert [stem[f'conv_{i}']['kernel'].shape for i in range(2)] == [(3, 3, 1, 16), (3, 3, 16, 32)]
  grid = ConvStem(cfg).apply({'params': stem}, images)
  assert grid.shape == (3, 7, 7, 32)                  # the same 7x7 grid as 4x4 patches
  assert model.apply(variables, images).shape == (3, 5)
  with pytest.raises(ValueError, match='power-of-two patch_size'):
    cfg.replace(patch_size=7)

  # stem_extra_convs: stride-1 convs at the first conv's width and resolution (14x14).
  deeper = cfg.replace(stem_extra_convs=2)
  deep_params = nn.meta.unbox(ConvStem(deeper).init(jax.random.key(2), images))['params']
  assert [deep_params[f'conv_{i}']['kernel'].shape for i in range(4)] == [
      (3, 3, 1, 16), (3, 3, 16, 16), (3, 3, 16, 16), (3, 3, 16, 32)]
  assert ConvStem(deeper).apply({'params': deep_params}, images).shape == (3, 7, 7, 32)
  with pytest.raises(ValueError, match='stem_extra_convs'):
    cfg.replace(stem='patch', stem_extra_convs=1)
