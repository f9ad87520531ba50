"""Analytic model FLOPs, and model FLOPs utilization (MFU) from a device peak table.

The count is the usual one for matmul-dominated models (Kaplan et al. 2020;
PaLM's appendix B): 2 FLOPs per multiply-add of every matmul, nothing for
elementwise work (norms, softmax, activations, the optimizer). With
h = heads, k = head_dim (TransformerConfig.qkv_dim), d = d_model, f = d_ff:

  per token, per layer:   projections  2 * d * hk  (query)
                                        + 2 * d * 2gk  (key, value; g = num_kv_heads,
                                          = h unless grouped-query attention)
                                        + 2 * hk * d  (output)
                          feed-forward 2 * 2 * d * f  (gated: 2 * 3 * d * f)
  per sequence, per layer, attention itself (scores QK^T and the weighted sum
  of V):  2 * 2 * Lq * Lk * h * k, halved for causal self-attention (only
  the lower triangle is needed, as in the MaxText / PaLM convention)
  cross-attention (decoder layer over the encoder): query and output
  projections on target tokens, key and value projections on source tokens,
  scores over Lq = target, Lk = source (not causal)
  output logits:  2 * d * V per predicted token; ViT: patch embedding
  2 * (p*p*c) * d per patch (a conv stem: 2 * 9 * c_in * c_out per output
  pixel of each 3x3 conv, and its 1x1 projection) and the head 2 * d * classes
  per image

Embedding lookups count nothing. Training = 3 x forward (the backward pass
does two matmuls per forward matmul: gradients of activations and weights).
Counts use the padded batch shapes the step really computes.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformer.model_config import TransformerConfig
from transformer.models import conv_stem_layers

# Dense peak FLOP/s by (device_kind substring, dtype), from the vendors' data
# sheets (no sparsity). Matched case-insensitively, longest substring first.
PEAK_FLOPS = {
    ('H200', 'bfloat16'): 989e12, ('H200', 'float32'): 67e12,
    ('H100', 'bfloat16'): 989e12, ('H100', 'float32'): 67e12,   # SXM; PCIe is ~756e12 bf16
    ('A100', 'bfloat16'): 312e12, ('A100', 'float32'): 19.5e12,
    ('TPU v4', 'bfloat16'): 275e12,
    ('TPU v5 lite', 'bfloat16'): 197e12,     # v5e
    ('TPU v5', 'bfloat16'): 459e12,          # v5p
    ('TPU v6 lite', 'bfloat16'): 918e12,     # v6e (Trillium)
}


def peak_flops(device_kind: str, dtype: str = 'bfloat16') -> float | None:
  """The device's dense peak FLOP/s for dtype, or None where the table has none (CPUs)."""
  kind = device_kind.lower()
  hits = [(len(k), v) for (k, dt), v in PEAK_FLOPS.items() if k.lower() in kind and dt == dtype]
  return max(hits)[1] if hits else None


def mfu(flops_per_second: float, devices: Sequence, dtype: str) -> float | None:
  """Model FLOPs utilization: the FLOP/s achieved by `devices` together over their summed peak.

  `flops_per_second` counts the whole step those devices ran (the global batch
  when they are all the devices of the mesh). None where a device's peak is
  unknown (CPUs).
  """
  peaks = [peak_flops(d.device_kind, dtype) for d in devices]
  if not peaks or any(p is None for p in peaks):
    return None
  return flops_per_second / sum(peaks)


def _layer_token_flops(cfg: TransformerConfig) -> int:
  """Projections + feed-forward FLOPs per token of one self-attention layer."""
  d, hk, f = cfg.d_model, cfg.num_heads * cfg.qkv_dim, cfg.d_ff
  kvk = cfg.kv_heads * cfg.qkv_dim                     # grouped-query keys/values
  ffn = (6 if cfg.gated_ffn else 4) * d * f            # gated: W_gate as well as W1, W2
  return 2 * d * (2 * hk + 2 * kvk) + ffn


def _attention_flops(cfg: TransformerConfig, q_len: int, k_len: int, causal: bool) -> float:
  full = 4 * q_len * k_len * cfg.num_heads * cfg.qkv_dim
  return full / 2 if causal else full


def encoder_flops(cfg: TransformerConfig, batch: int, length: int) -> float:
  """Forward FLOPs of the encoder stack over [batch, length] (no embeddings, no logits)."""
  per_seq = length * _layer_token_flops(cfg) + _attention_flops(cfg, length, length, False)
  return batch * cfg.num_encoder_layers * per_seq


def decoder_flops(cfg: TransformerConfig, batch: int, length: int, source_len: int = 0) -> float:
  """Forward FLOPs of the decoder stack (causal self-attention, cross-attention if source_len)."""
  per_seq = length * _layer_token_flops(cfg) + _attention_flops(cfg, length, length, True)
  if source_len:
    d, hk, kvk = cfg.d_model, cfg.num_heads * cfg.qkv_dim, cfg.kv_heads * cfg.qkv_dim
    per_seq += (length * 2 * (2 * d * hk) + source_len * 2 * (2 * d * kvk)
                + _attention_flops(cfg, length, source_len, False))
  return batch * cfg.num_decoder_layers * per_seq


def logits_flops(cfg: TransformerConfig, tokens: int) -> float:
  return 2.0 * cfg.d_model * cfg.output_vocab_size * tokens


def lm_forward_flops(cfg: TransformerConfig, batch: int, length: int) -> float:
  """DecoderLM over [batch, length] tokens."""
  return decoder_flops(cfg, batch, length) + logits_flops(cfg, batch * length)


def encdec_forward_flops(cfg: TransformerConfig, batch: int, source_len: int,
                         target_len: int) -> float:
  """EncoderDecoder: encoder over the sources, decoder (with cross-attention) over the targets."""
  return (encoder_flops(cfg, batch, source_len)
          + decoder_flops(cfg, batch, target_len, source_len)
          + logits_flops(cfg, batch * target_len))


def encoder_only_forward_flops(cfg: TransformerConfig, batch: int, length: int,
                               head: str = 'mlm', predictions: int = 0) -> float:
  """EncoderOnly (BERT) over [batch, length]: the encoder, then the masked-LM head over
  every position, or over `predictions` positions per row where it is set (a d x d
  transform, then the logits; head 'mlm'), or the [CLS] pooler and classifier (head
  'classify')."""
  out = encoder_flops(cfg, batch, length)
  if head == 'mlm':
    tokens = batch * (predictions or length)
    return out + 2.0 * cfg.d_model * cfg.d_model * tokens + logits_flops(cfg, tokens)
  return out + batch * 2.0 * cfg.d_model * (cfg.d_model + cfg.num_classes)


def vit_forward_flops(cfg: TransformerConfig, batch: int) -> float:
  """ViT over [batch, image_size, image_size, num_channels] images."""
  p = cfg.patch_size
  patches = (cfg.image_size // p) ** 2
  tokens = patches + (1 if cfg.pool == 'cls' else 0)
  if cfg.stem == 'conv':   # models.ConvStem: 3x3 convs, then a 1x1 projection
    embed, size, c_in = 0.0, cfg.image_size, cfg.num_channels
    for width, stride in conv_stem_layers(cfg):
      size = -(-size // stride)
      embed += 2.0 * size * size * width * 9 * c_in
      c_in = width
    embed += 2.0 * c_in * cfg.d_model * patches
  else:
    embed = 2.0 * p * p * cfg.num_channels * cfg.d_model * patches
  head_in = cfg.representation_size or cfg.d_model
  head = 2.0 * head_in * cfg.num_classes
  if cfg.representation_size:
    head += 2.0 * cfg.d_model * cfg.representation_size
  return batch * (embed + head) + encoder_flops(cfg, batch, tokens)


def train_flops(forward: float) -> float:
  """Forward + backward: 3 x the forward FLOPs."""
  return 3.0 * forward
