"""Encoder and decoder layers and stacks, and the models.

- `EncoderDecoder`: the paper's translation model.
- `DecoderLM`: a decoder-only (GPT-style) language model.
- `EncoderOnly`: a BERT-style encoder with masked-LM and classification heads.
- `ViT`: a Vision Transformer classifier (patch embedding + encoder stack).

Residual blocks are post-LN as in the paper, `x = LN(x + Dropout(F(x)))`, or
pre-LN with `cfg.norm_position='pre'`, `x = x + Dropout(F(LN(x)))` with a final
norm after the stack.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from transformer.attention import (MultiHeadAttention, RelativePositionBias, combine_masks,
                                   padding_mask, segment_mask)
from transformer.model_config import TransformerConfig
from transformer.layers import (ACTIVATION_FNS, Dense, Embed, FeedForward, PositionalEncoding,
                                make_norm, sincos_2d)

Array = jax.Array


class Residual(nn.Module):
  """Wraps a sub-layer with dropout, the residual connection and the norm."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, sublayer) -> Array:
    cfg = self.cfg
    drop = nn.Dropout(cfg.dropout_rate, deterministic=cfg.deterministic)
    norm = make_norm(cfg, name='norm')
    if cfg.norm_position == 'pre':
      return x + drop(sublayer(norm(x)))
    return norm(x + drop(sublayer(x)))


class EncoderLayer(nn.Module):
  """Self-attention, then the position-wise feed-forward network."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array | None, positions: Array | None = None,
               bias: Array | None = None) -> Array:
    cfg = self.cfg
    attention = MultiHeadAttention(cfg, name='self_attention')
    x = Residual(cfg, name='self_attention_residual')(
        x, lambda h: attention(h, mask=mask, positions=positions, bias=bias))
    x = Residual(cfg, name='mlp_residual')(x, FeedForward(cfg, name='mlp'))
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class DecoderLayer(nn.Module):
  """Masked self-attention, cross-attention over the encoder (`cross`), feed-forward.

  In cached decoding (cfg.use_cache, cfg.cache_cross_kv) `encoded` may be None
  once the cross-attention cache holds its keys/values, and `y=None` only
  fills that cache from `encoded` (returns None).
  """
  cfg: TransformerConfig
  cross: bool = False

  @nn.compact
  def __call__(self, y: Array | None, encoded: Array | None = None, *,
               self_mask: Array | None = None, cross_mask: Array | None = None,
               positions: Array | None = None, bias: Array | None = None) -> Array | None:
    cfg = self.cfg
    if self.cross:
      cross_attention = MultiHeadAttention(cfg, name='cross_attention')
      if y is None:
        return cross_attention(None, encoded, cross=True)
    self_attention = MultiHeadAttention(cfg, name='self_attention')
    y = Residual(cfg, name='self_attention_residual')(
        y, lambda h: self_attention(h, mask=self_mask, causal=True, positions=positions,
                                    bias=bias))
    if self.cross:
      y = Residual(cfg, name='cross_attention_residual')(
          y, lambda h: cross_attention(h, encoded, mask=cross_mask, cross=True))
    y = Residual(cfg, name='mlp_residual')(y, FeedForward(cfg, name='mlp'))
    return nn.with_logical_constraint(y, ('batch', 'length', 'embed'))


def _layer(cls, cfg: TransformerConfig):
  return nn.remat(cls) if cfg.remat else cls


def _stack_bias(cfg: TransformerConfig, positions: Array | None, length: int, *,
                bidirectional: bool, cached: bool = False) -> tuple[Array | None, Array | None]:
  """(T5's relative position bias for a stack, positions): one table shared by the
  stack's layers, made inside the calling stack ('relative_bias'); (None, positions)
  without one. `cached`: the keys are the cache's slots (cfg.cache_positions)."""
  if cfg.position_bias != 'relative':
    return None, positions
  if positions is None:
    positions = jnp.arange(length)[None]
  keys = jnp.arange(cfg.cache_positions)[None] if cached else positions
  bias = RelativePositionBias(cfg, bidirectional=bidirectional, name='relative_bias')(
      positions, keys)
  return bias, positions


class Encoder(nn.Module):
  """Embedded inputs [batch, len, d] -> encoded [batch, len, d]."""
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array | None, positions: Array | None = None) -> Array:
    cfg = self.cfg
    layer = _layer(EncoderLayer, cfg)
    bias, positions = _stack_bias(cfg, positions, x.shape[1], bidirectional=True)
    for i in range(cfg.num_encoder_layers):
      x = layer(cfg, name=f'layer_{i}')(x, mask, positions, bias)
    if cfg.norm_position == 'pre':
      x = make_norm(cfg, name='final_norm')(x)
    return x


class Decoder(nn.Module):
  """Embedded targets [batch, len, d] (+ encoder output if `cross`) -> [batch, len, d].

  `y=None` fills the layers' cross-attention caches only (see DecoderLayer).
  """
  cfg: TransformerConfig
  cross: bool = False

  @nn.compact
  def __call__(self, y: Array | None, encoded: Array | None = None, *,
               self_mask: Array | None = None, cross_mask: Array | None = None,
               positions: Array | None = None) -> Array | None:
    cfg = self.cfg
    layer = _layer(DecoderLayer, cfg)
    bias = None
    if y is not None:   # cached decoding: the keys are the cache slots, slot j position j
      bias, positions = _stack_bias(cfg, positions, y.shape[1], bidirectional=False,
                                    cached=cfg.use_cache)
    for i in range(cfg.num_decoder_layers):
      out = layer(cfg, cross=self.cross, name=f'layer_{i}')(
          y, encoded, self_mask=self_mask, cross_mask=cross_mask, positions=positions,
          bias=bias)
      y = out if y is not None else None
    if y is None:
      return None
    if cfg.norm_position == 'pre':
      y = make_norm(cfg, name='final_norm')(y)
    return y


class TokenInput(nn.Module):
  """Token embedding (optionally x sqrt(d_model)) + positional encoding + dropout.

  Returns (x, positions): each token's position, for rotary attention.
  """
  cfg: TransformerConfig
  embed: nn.Module
  use_cache: bool = False  # decoder-side input in cached decoding

  @nn.compact
  def __call__(self, tokens: Array, left_pad: Array | None = None,
               positions: Array | None = None) -> tuple[Array, Array]:
    cfg = self.cfg
    x = self.embed(tokens)
    if cfg.scale_embeddings:
      x = x * jnp.sqrt(jnp.float32(cfg.d_model)).astype(x.dtype)
    x, positions = PositionalEncoding(cfg, use_cache=self.use_cache, name='position')(
        x, left_pad, positions)
    x = nn.Dropout(cfg.dropout_rate, deterministic=cfg.deterministic)(x)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed')), positions


def _embed(cfg: TransformerConfig, vocab: int, name: str) -> Embed:
  return Embed(vocab, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name)


def _logits_dense(cfg: TransformerConfig) -> Dense | None:
  """The untied output projection, or None when logits come from the embedding."""
  if cfg.logits_via_embedding:
    return None
  return Dense(cfg.output_vocab_size, ('embed',), ('vocab',), use_bias=cfg.use_bias,
               dtype=cfg.dtype, param_dtype=cfg.param_dtype, name='logits')


def _output_logits(embed: Embed, dense: Dense | None, y: Array,
                   cfg: TransformerConfig | None = None) -> Array:
  if dense is None and cfg is not None and cfg.rescale_tied_logits:
    y = y * jnp.asarray(cfg.d_model ** -0.5, y.dtype)   # T5 with tied embeddings
  logits = embed.attend(y) if dense is None else dense(y)
  return nn.with_logical_constraint(logits.astype(jnp.float32), ('batch', 'length', 'vocab'))


class EncoderDecoder(nn.Module):
  """The Transformer for sequence-to-sequence tasks (translation).

  `model.apply(params, src, tgt_in)` -> logits [batch, tgt_len, target_vocab].
  `encode` and `decode` are exposed for decoding with a cache:
  `model.apply(params, src, method='encode')`, then
  `model.apply(params, encoded, src, tgt_step, method='decode', mutable=['cache'])`.
  With cfg.cache_cross_kv (the default) the cross-attention keys/values are
  cached too: `decode(encoded, src, None)` only stores them, and later steps
  may pass `encoded=None` (transformer.decoding does both).
  Token id `cfg.pad_id` is padding in both source and target.
  """
  cfg: TransformerConfig

  def setup(self):
    cfg = self.cfg
    if cfg.share_embeddings and cfg.target_vocab_size not in (None, cfg.vocab_size):
      raise ValueError('share_embeddings needs one vocabulary: target_vocab_size must equal '
                       f'vocab_size ({cfg.target_vocab_size} != {cfg.vocab_size})')
    self.source_embed = _embed(cfg, cfg.vocab_size, 'source_embed')
    self.target_embed = (self.source_embed if cfg.share_embeddings
                         else _embed(cfg, cfg.output_vocab_size, 'target_embed'))
    self.source_input = TokenInput(cfg, self.source_embed)
    self.target_input = TokenInput(cfg, self.target_embed, use_cache=cfg.use_cache)
    self.encoder = Encoder(cfg)
    self.decoder = Decoder(cfg, cross=True)
    self.logits_dense = _logits_dense(cfg)

  def encode(self, src: Array, src_segments: Array | None = None,
             src_positions: Array | None = None) -> Array:
    mask = padding_mask(src, self.cfg.pad_id)
    if src_segments is not None:
      mask = combine_masks(mask, segment_mask(src_segments, src_segments))
    x, positions = self.source_input(src, positions=src_positions)
    return self.encoder(x, mask, positions)

  def decode(self, encoded: Array | None, src: Array, tgt_in: Array | None,
             src_segments: Array | None = None, tgt_segments: Array | None = None,
             tgt_positions: Array | None = None) -> Array | None:
    cfg = self.cfg
    # Target padding lies after real tokens, so the causal mask alone keeps real
    # positions from seeing it; padded positions are dropped by the loss.
    cross_mask = padding_mask(src, cfg.pad_id)
    self_mask = None
    if tgt_segments is not None:   # packed rows: no attention across sequences
      cross_mask = combine_masks(cross_mask, segment_mask(tgt_segments, src_segments))
      self_mask = segment_mask(tgt_segments, tgt_segments)
    if tgt_in is None:   # cached decoding: fill the cross-attention caches only
      return self.decoder(None, encoded, cross_mask=cross_mask)
    y, positions = self.target_input(tgt_in, positions=tgt_positions)
    y = self.decoder(y, encoded, self_mask=self_mask, cross_mask=cross_mask, positions=positions)
    return _output_logits(self.target_embed, self.logits_dense, y, cfg)

  def __call__(self, src: Array, tgt_in: Array, *, src_segments: Array | None = None,
               tgt_segments: Array | None = None, src_positions: Array | None = None,
               tgt_positions: Array | None = None) -> Array:
    """Packed rows (several pairs per row): pass the segment ids (1, 2, ... per pair,
    0 at padding) and positions (restarting per pair) of both sides."""
    if (src_segments is None) != (tgt_segments is None):
      raise ValueError('packed rows need the segment ids of both sides (src_segments and '
                       'tgt_segments), or neither')
    encoded = self.encode(src, src_segments, src_positions)
    return self.decode(encoded, src, tgt_in, src_segments, tgt_segments, tgt_positions)


class DecoderLM(nn.Module):
  """Decoder-only language model: tokens [batch, len] -> next-token logits.

  Attention is causal; padding at the end of a sequence cannot affect earlier
  positions, so no padding mask is needed (the loss ignores padded targets).
  Ragged prompts are batched by padding on the left: `left_pad` [batch]
  counts each row's padding tokens, which no position attends to, and
  positions restart at the first real token, so each row's logits are those
  of its prompt alone (in cached decoding pass the same left_pad every step).
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, tokens: Array, left_pad: Array | None = None, *,
               segments: Array | None = None, positions: Array | None = None) -> Array:
    """Packed rows (several sequences per row): `segments` numbers them (1, 2, ...; 0 at
    padding) so no token attends across them, `positions` restart per sequence."""
    cfg = self.cfg
    if left_pad is not None and cfg.position_bias == 'relative':
      raise ValueError('left-padded prompts (left_pad) are not supported with the relative '
                       'position bias; batch prompts of one length, or decode them one by one')
    embed = _embed(cfg, cfg.vocab_size, 'embed')
    x, positions = TokenInput(cfg, embed, use_cache=cfg.use_cache, name='input')(
        tokens, left_pad, positions)
    mask = None
    if left_pad is not None:   # keys (cache slots when decoding) before the row's start
      k_len = cfg.cache_positions if cfg.use_cache else tokens.shape[1]
      mask = (jnp.arange(k_len)[None, :] >= left_pad[:, None])[:, None, None, :]
    if segments is not None:
      mask = combine_masks(mask, segment_mask(segments, segments))
    y = Decoder(cfg, name='decoder')(x, self_mask=mask, positions=positions)
    return _output_logits(embed, _logits_dense(cfg), y, cfg)


HEADS = ('mlm', 'classify', 'both')


class EncoderOnly(nn.Module):
  """BERT (Devlin et al. 2019): a bidirectional encoder with two heads.

  Input: token + position (cfg.positional, learned in BERT) + token-type
  embeddings (cfg.type_vocab_size > 0: segment A/B), LayerNorm, dropout; then
  the encoder stack (post-LN in BERT). Heads:
  - 'mlm': masked-LM logits [batch, len, vocab]: Dense + activation + norm, then
    the output projection tied to the token embedding, plus a bias per token;
  - 'classify': [batch, num_classes] from the pooled first token ([CLS]), or with
    cfg.pool 'gap' the mean over the real tokens (a model pretrained without BERT's
    next-sentence task has not trained [CLS]'s output): Dense + tanh, then a
    classifier (BERT's next-sentence head has 2 classes).
  `attention_mask` [batch, len] (1 = real token) defaults to tokens != pad_id.
  `model.apply(v, tokens, types, head='both')` returns (mlm logits, class logits);
  initialize with head='both' to create every parameter. `mlm_positions` [batch, k]
  computes the masked-LM logits at those positions only ([batch, k, vocab]; BERT's
  max_predictions_per_seq): the head's cost falls from every position to k of them.
  """
  cfg: TransformerConfig

  def setup(self):
    cfg = self.cfg
    self.embed = _embed(cfg, cfg.vocab_size, 'embed')
    self.position = PositionalEncoding(cfg, name='position')
    self.type_embed = (_embed(cfg, cfg.type_vocab_size, 'type_embed')
                       if cfg.type_vocab_size else None)
    self.embed_norm = make_norm(cfg, name='embed_norm')
    self.dropout = nn.Dropout(cfg.dropout_rate, deterministic=cfg.deterministic)
    self.encoder = Encoder(cfg)

    def dense(n, name, out=('mlp',)):   # d -> d: the output axis needs a name of its own
      return Dense(n, ('embed',), out, dtype=cfg.dtype, param_dtype=cfg.param_dtype, name=name)

    self.mlm_dense = dense(cfg.d_model, 'mlm_dense')
    self.mlm_norm = make_norm(cfg, name='mlm_norm')
    self.mlm_bias = self.param('mlm_bias', nn.with_logical_partitioning(
        nn.initializers.zeros, ('vocab',)), (cfg.vocab_size,), cfg.param_dtype)
    self.pooler = dense(cfg.d_model, 'pooler')
    self.classifier = dense(cfg.num_classes, 'classifier', ('classes',))

  def encode(self, tokens: Array, token_types: Array | None = None,
             attention_mask: Array | None = None) -> Array:
    cfg = self.cfg
    if attention_mask is None:
      attention_mask = tokens != cfg.pad_id
    x = self.embed(tokens)
    if cfg.scale_embeddings:
      x = x * jnp.sqrt(jnp.float32(cfg.d_model)).astype(x.dtype)
    x, positions = self.position(x)
    if self.type_embed is not None:
      x = x + self.type_embed(jnp.zeros_like(tokens) if token_types is None else token_types)
    x = self.dropout(self.embed_norm(x))
    mask = attention_mask.astype(bool)[:, None, None, :]
    return self.encoder(nn.with_logical_constraint(x, ('batch', 'length', 'embed')), mask,
                        positions)

  def __call__(self, tokens: Array, token_types: Array | None = None,
               attention_mask: Array | None = None, head: str = 'mlm',
               mlm_positions: Array | None = None):
    if head not in HEADS:
      raise ValueError(f'head={head!r} is not one of {HEADS}')
    cfg = self.cfg
    h = self.encode(tokens, token_types, attention_mask)
    outputs = []
    if head in ('mlm', 'both'):
      hm = h if mlm_positions is None else jnp.take_along_axis(h, mlm_positions[..., None], 1)
      t = self.mlm_norm(ACTIVATION_FNS[cfg.activation](self.mlm_dense(hm)))
      logits = self.embed.attend(t) + self.mlm_bias.astype(t.dtype)
      outputs.append(nn.with_logical_constraint(logits.astype(jnp.float32),
                                                ('batch', 'length', 'vocab')))
    if head in ('classify', 'both'):
      if cfg.pool == 'gap':
        real = (tokens != cfg.pad_id if attention_mask is None else attention_mask)
        real = real.astype(h.dtype)[..., None]
        summary = jnp.sum(h * real, axis=1) / jnp.maximum(jnp.sum(real, axis=1), 1)
      else:
        summary = h[:, 0]
      pooled = jnp.tanh(self.pooler(summary))
      outputs.append(self.classifier(pooled).astype(jnp.float32))
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def conv_stem_layers(cfg: TransformerConfig) -> list[tuple[int, int]]:
  """(output width, stride) of each of ConvStem's 3x3 convolutions, in order.

  log2(patch_size) stride-2 convolutions whose widths double up to d_model;
  `cfg.stem_extra_convs` stride-1 convolutions at the first one's width
  (the highest resolution) follow it.
  """
  n = cfg.patch_size.bit_length() - 1
  widths = [max(8, cfg.d_model >> (n - 1 - i)) for i in range(n)]
  return ([(widths[0], 2)] + [(widths[0], 1)] * cfg.stem_extra_convs
          + [(w, 2) for w in widths[1:]])


class ConvStem(nn.Module):
  """A convolutional stem in place of the patch embedding (Xiao et al. 2021, "Early
  convolutions help transformers see better"; the ViT paper's hybrid idea, without a ResNet).

  log2(patch_size) 3x3 convolutions with stride 2, each followed by LayerNorm and
  GELU, take [batch, H, W, C] to the same [batch, H/p, W/p] grid the patch
  embedding makes; their widths double up to d_model, and a 1x1 projection (a
  Dense) mixes the last one's d_model features per grid cell. `stem_extra_convs`
  adds stride-1 3x3 convolutions (also with LayerNorm + GELU) after the first
  (see conv_stem_layers).
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, images: Array) -> Array:
    cfg = self.cfg
    x = images.astype(cfg.dtype)
    for i, (width, stride) in enumerate(conv_stem_layers(cfg)):
      x = nn.Conv(width, (3, 3), strides=(stride, stride), padding='SAME', use_bias=False,
                  dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                  kernel_init=nn.with_logical_partitioning(
                      nn.initializers.lecun_normal(), (None, None, None, None)),
                  name=f'conv_{i}')(x)
      x = nn.gelu(make_norm(cfg, name=f'norm_{i}')(x))
    return Dense(cfg.d_model, ('patch',), ('embed',), dtype=cfg.dtype,
                 param_dtype=cfg.param_dtype, name='proj')(x)


class ViT(nn.Module):
  """Vision Transformer: images [batch, H, W, C] -> class logits [batch, classes].

  Patches are cut without overlap and projected linearly (the same as a conv
  with stride = kernel = patch size). A class token or global average pooling
  (`cfg.pool`) summarizes the sequence. Position embeddings are learned
  (`positional='learned'`) or fixed 2-D sin-cos (`positional='sinusoidal'`).
  """
  cfg: TransformerConfig

  @nn.compact
  def __call__(self, images: Array) -> Array:
    cfg = self.cfg
    b, h, w, c = images.shape
    p = cfg.patch_size
    if h % p or w % p:
      raise ValueError(f'Image size {h}x{w} is not divisible by patch_size={p}')
    gh, gw = h // p, w // p
    if cfg.positional == 'rope':
      raise ValueError("ViT takes positional='learned', 'sinusoidal' (2-D sin-cos) or 'none'; "
                       "'rope' is for the sequence models")
    if cfg.stem == 'conv':
      x = ConvStem(cfg, name='conv_stem')(images).reshape(b, gh * gw, cfg.d_model)
    else:
      patches = images.reshape(b, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5)
      patches = patches.reshape(b, gh * gw, p * p * c)
      x = Dense(cfg.d_model, ('patch',), ('embed',), dtype=cfg.dtype,
                param_dtype=cfg.param_dtype, name='patch_embed')(patches)

    if cfg.positional == 'learned':
      pos = self.param('pos_embedding',
                       nn.with_logical_partitioning(nn.initializers.normal(stddev=0.02),
                                                    (None, 'length', 'embed')),
                       (1, gh * gw, cfg.d_model), cfg.param_dtype)
      x = x + pos.astype(x.dtype)
    elif cfg.positional == 'sinusoidal':
      x = x + jnp.asarray(sincos_2d(gh, gw, cfg.d_model), x.dtype)[None]

    if cfg.pool == 'cls':
      cls = self.param('cls_token', nn.with_logical_partitioning(nn.initializers.zeros,
                                                                 (None, None, 'embed')),
                       (1, 1, cfg.d_model), cfg.param_dtype)
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (b, 1, cfg.d_model)), x], 1)
    x = nn.Dropout(cfg.dropout_rate, deterministic=cfg.deterministic)(x)
    x = Encoder(cfg, name='encoder')(x, None)
    x = x[:, 0] if cfg.pool == 'cls' else jnp.mean(x, axis=1)
    if cfg.representation_size:
      x = jnp.tanh(Dense(cfg.representation_size, ('embed',), ('mlp',), dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype, name='pre_logits')(x))
    logits = Dense(cfg.num_classes, ('embed',) if not cfg.representation_size else ('mlp',),
                   ('classes',), dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                   kernel_init=nn.initializers.zeros, name='head')(x)
    return logits.astype(jnp.float32)
