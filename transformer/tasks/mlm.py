"""Masked language modeling (BERT's pretraining objective) with an encoder-only Transformer.

Rows of the language-modeling data (transformer.data.lm: the stream datasets,
windows of seq_len tokens) are masked as in BERT (Devlin et al. 2019, 3.1):
each real token is selected with probability `config.mlm.mask_rate` (0.15);
a selected token is replaced by [MASK] 80% of the time, by a random token 10%,
and kept 10%; the loss is the cross-entropy of the original token at the
selected positions only. `config.mlm.max_predictions` = k > 0 caps the selection at k
tokens per row (the first k selected; BERT's max_predictions_per_seq, 20 of 128) and
computes the output head at those k positions only, which is most of the step's cost
with a large vocabulary and a small model; 0 computes it everywhere. [MASK] is the
tokenizer's own where it has one (a pretrained model's tokenizer.json,
`config.tokenizer`), else one extra id after the data's vocabulary
(`mask_id_and_vocab`).

The masking is drawn inside the step from the step's key (fold_in of the
run's key and the step), so a batch's masks are a pure function of (seed,
step) and resuming is exact; evaluation masks every batch with a key fixed by
config.seed, so validation numbers of different checkpoints compare.

Metrics: loss / nll over the selected tokens, `accuracy` (masked-token
accuracy: argmax == original token at the selected positions), perplexity of
the selected tokens, and `masked_tokens` (how many were selected).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer import flops, models
from transformer.experiment_config import build_model_config
from transformer.tasks.base import (Settings, Task, register, setting, token_cross_entropy,
                                    vocab_with_pretrained)
from transformer.tasks.lm import make_lm_source

_MASK_STREAM = 0x6D6C6D   # folded into the step's key: the masks, apart from dropout's draws


def mask_tokens(key: jax.Array, tokens: jax.Array, real: jax.Array, mask_id: int,
                vocab_size: int, mask_rate: float = 0.15,
                max_selected: int = 0) -> tuple[jax.Array, jax.Array]:
  """BERT's masking: (inputs, selected). `real` marks tokens that may be selected;
  random replacements are drawn from ids 1 .. vocab_size - 1 (0 is padding);
  `max_selected` > 0 keeps the first that many selected tokens of each row."""
  k_select, k_kind, k_random = jax.random.split(key, 3)
  selected = (jax.random.uniform(k_select, tokens.shape) < mask_rate) & real
  if max_selected:
    selected &= jnp.cumsum(selected, axis=-1) <= max_selected
  kind = jax.random.uniform(k_kind, tokens.shape)
  random_tokens = jax.random.randint(k_random, tokens.shape, 1, vocab_size, tokens.dtype)
  inputs = jnp.where(selected & (kind < 0.8), jnp.asarray(mask_id, tokens.dtype),
                     jnp.where(selected & (kind < 0.9), random_tokens, tokens))
  return inputs, selected


def selected_positions(selected: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """(positions [batch, k], weights [batch, k]): the selected positions of each row in
  order, then unselected ones with weight 0 where a row has fewer than k."""
  positions = jnp.argsort(~selected, axis=-1, stable=True)[:, :k]
  return positions, jnp.take_along_axis(selected, positions, axis=-1).astype(jnp.float32)


def mask_id_and_vocab(tokenizer, data_vocab_size: int) -> tuple[int, int]:
  """(the [MASK] id, the model's vocabulary size) for text read with `tokenizer`: its own
  mask token where it has one, else one id past the data's vocabulary. Fine-tuning a
  masked-LM model (text_classification) uses the same rule, so the ids line up."""
  own = getattr(tokenizer, 'mask_id', None)
  if own is not None:
    return own, data_vocab_size
  return data_vocab_size, data_vocab_size + 1


def _rate(value):
  return None if isinstance(value, (int, float)) and 0 < value < 1 else 'must be in (0, 1)'


def _count(value):
  return (None if isinstance(value, int) and not isinstance(value, bool) and value >= 0
          else 'must be an integer >= 0 (0: score every position)')


@dataclasses.dataclass(frozen=True)
class Masking(Settings):
  mask_rate: float = setting(0.15, 'share of real tokens selected (BERT: 0.15)', check=_rate)
  max_predictions: int = setting(
      0, 'selected tokens per row at most, the only positions the output head computes '
      '(BERT: 20 of 128); 0: no cap, the head computes every position', check=_count)


@dataclasses.dataclass(frozen=True)
class MLMSettings(Settings):
  mlm: Masking = setting(Masking(), 'the masking (config.mlm)', fixed=True)


@register
class MLMTask(Task):
  """Masked-token prediction with `models.EncoderOnly` (BERT)."""
  name = 'mlm'
  weight_name = 'masked_tokens'
  datasets = ('tiny_shakespeare', 'ptb', 'files')   # the stream datasets: every window is real text
  settings_class = MLMSettings
  required_layers = ('num_encoder_layers',)

  @classmethod
  def validate(cls, config):
    problems = super().validate(config)
    if config.get('packing', False):
      problems.append('packing: the mlm task reads dense windows of a token stream')
    return problems

  def __init__(self, config, workdir):
    super().__init__(config, workdir)
    self.data = make_lm_source(config, workdir)
    self.mask_id, vocab_size = mask_id_and_vocab(self.data.tokenizer, self.data.vocab_size)
    self.mask_rate = float(self.settings.mlm.mask_rate)
    self.max_predictions = min(int(self.settings.mlm.max_predictions), config.seq_len)
    self.model_cfg = build_model_config(config,
                                        vocab_size=vocab_with_pretrained(config, vocab_size))

  def model(self, train: bool) -> nn.Module:
    return models.EncoderOnly(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    return (jnp.ones((1, self.config.seq_len), jnp.int32),)

  def loss_sums(self, params, batch, rng, train):
    tokens = batch['inputs']
    key = jax.random.fold_in(rng if train else jax.random.PRNGKey(self.config.seed),
                             _MASK_STREAM)
    inputs, selected = mask_tokens(key, tokens, batch['weights'] > 0, self.mask_id,
                                   self.data.vocab_size, self.mask_rate, self.max_predictions)
    positions, targets, weights = None, tokens, selected.astype(jnp.float32)
    if self.max_predictions:
      positions, weights = selected_positions(selected, self.max_predictions)
      targets = jnp.take_along_axis(tokens, positions, axis=-1)
    logits = self.model(train).apply(
        {'params': params}, inputs, attention_mask=jnp.ones_like(tokens),
        mlm_positions=positions, rngs={'dropout': rng} if train else None)
    return token_cross_entropy(logits, targets, weights,
                               self.config.label_smoothing if train else 0.0)

  def forward_flops(self, batch):
    return flops.encoder_only_forward_flops(self.model_cfg, *batch['inputs'].shape, head='mlm',
                                            predictions=self.max_predictions)

  def summarize(self, sums):
    out = super().summarize(sums)
    out['perplexity'] = float(np.exp(min(out['nll'], 50.0)))
    return out
