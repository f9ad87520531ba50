"""The frozen model-config dataclass shared by every module, and named presets.

Modules never see an ml_collections.ConfigDict: experiment configs build a
`TransformerConfig` (see `from_dict`) and pass it down. Train, eval and decode
variants of one model differ only by `cfg.replace(deterministic=True)` or
`cfg.replace(use_cache=True)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax.numpy as jnp

NORMS = ('layernorm', 'rmsnorm')
NORM_POSITIONS = ('post', 'pre')
ACTIVATIONS = ('relu', 'gelu', 'gelu_exact', 'silu')   # gelu: tanh approximation; gelu_exact: erf
POSITIONALS = ('sinusoidal', 'learned', 'rope', 'none')
ATTENTION_IMPLS = ('einsum', 'xla', 'cudnn', 'auto')
POSITION_BIASES = ('none', 'relative')
POOLS = ('cls', 'gap')
STEMS = ('patch', 'conv')
# Compute and parameter dtypes by name. float16 is deliberately absent: its 5-bit
# exponent underflows gradients (and overflows activations) without loss scaling,
# which this codebase does not do; bfloat16 has float32's exponent range.
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
FLOAT16_PROBLEM = ("float16 needs loss scaling, which this codebase does not do; use 'bfloat16' "
                   "(float32's exponent range, no loss scaling needed)")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Hyperparameters of every model in `transformer.models`.

  Defaults are the paper's base model (Vaswani et al. 2017, Table 3).
  """
  # Vocabulary and embeddings.
  vocab_size: int = 37000            # source (or shared) vocabulary
  target_vocab_size: int | None = None  # None: same as vocab_size
  share_embeddings: bool = True      # source and target embeddings are one matrix
  logits_via_embedding: bool = True  # output projection = embedding^T
  rescale_tied_logits: bool = False  # T5 (tied): decoder output * d_model^-0.5 before E^T
  scale_embeddings: bool = True      # multiply embeddings by sqrt(d_model)
  pad_id: int = 0
  type_vocab_size: int = 0           # EncoderOnly (BERT): token-type (segment) embeddings; 0: none

  # Widths and depths.
  d_model: int = 512
  num_heads: int = 8
  num_kv_heads: int | None = None    # key/value heads (grouped-query attention); None: num_heads,
                                     # 1: multi-query attention
  head_dim: int | None = None        # None: d_model // num_heads
  d_ff: int = 2048
  num_encoder_layers: int = 6
  num_decoder_layers: int = 6

  # Regularization.
  dropout_rate: float = 0.1          # residual and embedding dropout (P_drop)
  attention_dropout_rate: float = 0.0  # dropout on attention weights

  # Architecture switches.
  positional: str = 'sinusoidal'     # one of POSITIONALS; 'rope': rotary (Su et al. 2021),
                                     # queries and keys of self-attention rotated by position
  rope_base: float = 10000.0         # 'rope': wavelengths base^(2i/head_dim), i < head_dim/2
  position_bias: str = 'none'        # one of POSITION_BIASES; 'relative': T5's bucketed relative
                                     # position bias on self-attention logits, one table per stack
  relative_buckets: int = 32         # 'relative': buckets (half per direction in the encoder)
  relative_max_distance: int = 128   # 'relative': distances beyond share the last bucket
  scale_attention: bool = True       # logits / sqrt(head_dim); T5: False (folded into its init)
  max_len: int = 512                 # longest sequence (learned PE, key/value cache)
  norm: str = 'layernorm'            # one of NORMS
  norm_position: str = 'post'        # 'post' (paper) or 'pre'
  norm_epsilon: float = 1e-6
  activation: str = 'relu'           # one of ACTIVATIONS
  gated_ffn: bool = False            # FFN(x) = (act(x W_gate) * x W_i) W_o: 'silu' is SwiGLU,
                                     # 'gelu' GEGLU (Shazeer 2020)
  use_bias: bool = True              # biases in Dense layers
  qkv_bias: bool | None = None       # biases of the query/key/value projections; None: use_bias
                                     # (Qwen2: True, with use_bias False elsewhere)
  attention_impl: str = 'einsum'     # one of ATTENTION_IMPLS
  remat: bool = False                # rematerialize each layer in the backward pass

  # Vision Transformer (ignored by the sequence models).
  image_size: int = 224
  patch_size: int = 16
  num_channels: int = 3
  num_classes: int = 1000
  pool: str = 'cls'                  # 'cls' token or global average pooling 'gap'
  stem: str = 'patch'                # 'patch': linear patch embedding; 'conv': 3x3 stride-2 convs
  stem_extra_convs: int = 0          # 'conv': stride-1 3x3 convs after the first stride-2 one
  representation_size: int | None = None  # pre-logits layer (ViT paper); None: none

  # dtype policy: parameters in param_dtype, computation in dtype.
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  # Mode.
  deterministic: bool = False        # True disables dropout (eval, decoding)
  use_cache: bool = False            # one step at a time on a key/value cache (decoding)
  cache_cross_kv: bool = True        # use_cache: cross-attention keys/values projected once
                                     # per source (decoding.prime_cross_cache), not per step
  cache_len: int | None = None       # use_cache: positions the key/value cache holds (None:
                                     # max_len); the decoders size it to the request
                                     # (decoding.sized_for), so a step costs what the text does

  @property
  def cache_positions(self) -> int:
    """Positions the key/value cache holds: cache_len, or max_len when unset."""
    return self.cache_len if self.cache_len is not None else self.max_len

  def replace(self, **changes) -> 'TransformerConfig':
    return dataclasses.replace(self, **changes)

  @property
  def qkv_dim(self) -> int:
    return self.head_dim if self.head_dim is not None else self.d_model // self.num_heads

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

  @property
  def output_vocab_size(self) -> int:
    return self.target_vocab_size if self.target_vocab_size is not None else self.vocab_size

  def __post_init__(self):
    problems = validate(self)
    if problems:
      raise ValueError('Invalid TransformerConfig: ' + '; '.join(problems))


def validate(cfg: TransformerConfig) -> list[str]:
  """Returns a list of human-readable problems (empty when the config is valid)."""
  p = []

  def one_of(name, allowed):
    if getattr(cfg, name) not in allowed:
      p.append(f'{name}={getattr(cfg, name)!r} is not one of {allowed}')

  for name in ('vocab_size', 'd_model', 'num_heads', 'd_ff', 'max_len'):
    if getattr(cfg, name) <= 0:
      p.append(f'{name}={getattr(cfg, name)} must be positive')
  if cfg.cache_len is not None and not 0 < cfg.cache_len <= cfg.max_len:
    p.append(f'cache_len={cfg.cache_len} must be in [1, max_len={cfg.max_len}]')
  for name in ('num_encoder_layers', 'num_decoder_layers'):
    if getattr(cfg, name) < 0:
      p.append(f'{name}={getattr(cfg, name)} must be >= 0')
  if cfg.head_dim is None and cfg.num_heads > 0 and cfg.d_model % cfg.num_heads:
    p.append(f'num_heads={cfg.num_heads} must divide d_model={cfg.d_model} '
             '(or set head_dim explicitly)')
  kv = cfg.num_kv_heads
  if kv is not None and (kv <= 0 or cfg.num_heads % kv):
    p.append(f'num_kv_heads={kv} must be positive and divide '
             f'num_heads={cfg.num_heads} (each key/value head serves a group of query heads)')
  if cfg.positional == 'rope' and cfg.num_heads > 0 and cfg.qkv_dim % 2:
    p.append(f"positional='rope' rotates pairs of features: head_dim={cfg.qkv_dim} must be even")
  for name in ('dropout_rate', 'attention_dropout_rate'):
    if not 0.0 <= getattr(cfg, name) < 1.0:
      p.append(f'{name}={getattr(cfg, name)} must be in [0, 1)')
  one_of('norm', NORMS)
  one_of('norm_position', NORM_POSITIONS)
  one_of('activation', ACTIVATIONS)
  one_of('positional', POSITIONALS)
  one_of('position_bias', POSITION_BIASES)
  if cfg.position_bias == 'relative' and not 2 <= cfg.relative_buckets:
    p.append(f'relative_buckets={cfg.relative_buckets} must be >= 2')
  one_of('attention_impl', ATTENTION_IMPLS)
  one_of('pool', POOLS)
  one_of('stem', STEMS)
  for name in ('dtype', 'param_dtype'):
    if getattr(cfg, name) in (jnp.float16, 'float16'):   # also when built directly
      p.append(f'{name}=float16: {FLOAT16_PROBLEM}')
  if cfg.image_size % cfg.patch_size:
    p.append(f'patch_size={cfg.patch_size} must divide image_size={cfg.image_size}')
  if cfg.stem == 'conv' and (cfg.patch_size < 2 or cfg.patch_size & (cfg.patch_size - 1)):
    p.append(f"stem='conv' needs a power-of-two patch_size >= 2 (one stride-2 conv per "
             f'halving), got {cfg.patch_size}')
  if cfg.stem_extra_convs < 0 or (cfg.stem_extra_convs and cfg.stem != 'conv'):
    p.append(f"stem_extra_convs={cfg.stem_extra_convs} must be >= 0, and only with stem='conv' "
             f'(stem={cfg.stem!r})')
  return p


def from_dict(d: Mapping[str, Any] | None = None, **overrides) -> TransformerConfig:
  """Builds a config from a mapping (e.g. `config.model` of an experiment).

  dtype fields may be given by name ('bfloat16'); unknown keys are an error that
  lists the known ones.
  """
  values = dict(d or {})
  values.update(overrides)
  known = {f.name for f in dataclasses.fields(TransformerConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f'Unknown model config field(s) {unknown}; known fields: {sorted(known)}')
  for name in ('dtype', 'param_dtype'):
    if isinstance(values.get(name), str):
      if values[name] == 'float16':
        raise ValueError(f"model.{name}='float16': {FLOAT16_PROBLEM}")
      if values[name] not in DTYPES:
        raise ValueError(f'model.{name}={values[name]!r} is not one of {sorted(DTYPES)}')
      values[name] = DTYPES[values[name]]
  return TransformerConfig(**values)


# ---------------------------------------------------------------------------
# Named presets. Each is a dict of overrides so that experiment configs can
# start from one and change a field or two.
# ---------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    # "Attention Is All You Need", Table 3.
    'base': dict(d_model=512, num_heads=8, d_ff=2048, num_encoder_layers=6,
                 num_decoder_layers=6, dropout_rate=0.1),
    'big': dict(d_model=1024, num_heads=16, d_ff=4096, num_encoder_layers=6,
                num_decoder_layers=6, dropout_rate=0.3),
    # ViT (Dosovitskiy et al. 2021; Ti from Touvron et al. 2021). Pre-LN, GELU,
    # learned position embeddings; encoder only.
    'vit_ti': dict(d_model=192, num_heads=3, d_ff=768, num_encoder_layers=12),
    'vit_s': dict(d_model=384, num_heads=6, d_ff=1536, num_encoder_layers=12),
    'vit_b': dict(d_model=768, num_heads=12, d_ff=3072, num_encoder_layers=12),
    'vit_l': dict(d_model=1024, num_heads=16, d_ff=4096, num_encoder_layers=24),
}

_VIT_COMMON = dict(norm_position='pre', activation='gelu', positional='learned',
                   dropout_rate=0.0, num_decoder_layers=0, scale_embeddings=False)


def preset(name: str, **overrides) -> TransformerConfig:
  """`preset('base')`, `preset('big')`, `preset('vit_b', patch_size=16)`, ..."""
  if name not in PRESETS:
    raise ValueError(f'Unknown model preset {name!r}; known presets: {sorted(PRESETS)}')
  values = dict(_VIT_COMMON) if name.startswith('vit') else {}
  values.update(PRESETS[name])
  values.update(overrides)
  return from_dict(values)
