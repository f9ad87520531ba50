"""Tasks: what differs between experiment families.

A task owns its data source and model, turns a batch into a loss, reports
metrics as *sums* (so that evaluation over a whole split is token- or
example-weighted, not an average of batch averages), and does the family's
extra evaluation work in eval.py (sampling text, decoding and BLEU, a
confusion matrix). The training loop in train_lib.py knows nothing else.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from transformer import experiment, models

# Datasets each task accepts (experiment.validate checks against this).
DATASETS: dict[str, tuple[str, ...]] = {
    'lm': ('tiny_shakespeare', 'ptb', 'lm1b'),
}


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                        label_smoothing: float = 0.0) -> dict[str, jax.Array]:
  """Sums over tokens: the (label-smoothed) objective, the true NLL, correct argmax, weight.

  The objective has the smoothing's constant entropy subtracted, so a perfect
  fit gives 0 (as in tensor2tensor); `nll` is the plain cross-entropy used for
  perplexity.
  """
  vocab = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  log_probs = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing > 0:
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab - 1)
    normalizer = -(confidence * np.log(confidence) + (vocab - 1) * low * np.log(low + 1e-20))
    smooth = -jnp.mean(log_probs, axis=-1) * vocab  # sum over classes of -log p
    objective = confidence * nll + low * (smooth - nll) - normalizer
  else:
    objective = nll
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {'objective': jnp.sum(objective * weights), 'nll': jnp.sum(nll * weights),
          'correct': jnp.sum(correct * weights), 'weight': jnp.sum(weights)}


class Task:
  """Base class. Subclasses set `self.data` and `self.model_cfg` in __init__."""
  name = 'task'
  weight_name = 'tokens'

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | None):
    self.config = config
    self.workdir = workdir

  def model(self, train: bool) -> nn.Module:
    raise NotImplementedError

  def init_inputs(self) -> tuple:
    """Dummy model inputs for initialization (batch of 1)."""
    raise NotImplementedError

  def loss_sums(self, params, batch, rng, train: bool) -> dict[str, jax.Array]:
    """Sums for one batch: at least `objective` (minimized in training) and `weight`."""
    raise NotImplementedError

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    """Turns summed metrics into reported ones (means, perplexity, accuracy)."""
    w = max(float(sums['weight']), 1e-9)
    out = {'loss': float(sums['objective']) / w, 'nll': float(sums['nll']) / w,
           'accuracy': float(sums['correct']) / w, self.weight_name: float(sums['weight'])}
    return out

  def evaluate_extra(self, params, writer, step: int) -> dict[str, Any]:
    """Family-specific evaluation run by eval.py (sampling, decoding, ...)."""
    return {}


class LMTask(Task):
  """Next-token prediction with a decoder-only Transformer."""
  name = 'lm'

  def __init__(self, config, workdir):
    super().__init__(config, workdir)
    from transformer.data import lm as lm_data, resolve_data_dir
    self.data = lm_data.make_lm_data(config.dataset, resolve_data_dir(config.data_dir),
                                     seq_len=config.seq_len, workdir=workdir,
                                     vocab_size=config.vocab_size or None)
    self.model_cfg = experiment.model_config(config, vocab_size=self.data.vocab_size)

  def model(self, train: bool) -> nn.Module:
    return models.DecoderLM(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    return (jnp.ones((1, self.config.seq_len), jnp.int32),)

  def loss_sums(self, params, batch, rng, train):
    logits = self.model(train).apply({'params': params}, batch['inputs'],
                                     rngs={'dropout': rng} if train else None)
    return token_cross_entropy(logits, batch['targets'], batch['weights'],
                               self.config.label_smoothing if train else 0.0)

  def summarize(self, sums):
    out = super().summarize(sums)
    out['perplexity'] = float(np.exp(min(out['nll'], 50.0)))
    return out

  def evaluate_extra(self, params, writer, step):
    from transformer import decoding
    s = self.config.sample
    tok = self.data.tokenizer
    if not s.prompt:
      raise ValueError('config.sample.prompt is empty: give a prompt to sample from '
                       '(e.g. --config.sample.prompt="ROMEO:")')
    prompt = tok.encode(s.prompt)
    prompts = jnp.asarray([prompt] * s.num_samples, jnp.int32)
    num_tokens = min(s.num_tokens, self.model_cfg.max_len - len(prompt) + 1)
    eos = getattr(tok, 'eos_id', None)
    out = decoding.generate(params, self.model_cfg, prompts, num_tokens,
                            rng=jax.random.PRNGKey(self.config.seed), temperature=s.temperature,
                            top_k=s.top_k, top_p=s.top_p, eos_id=eos)
    texts = [s.prompt + tok.decode(np.asarray(row)) for row in out]
    if self.workdir:
      with open(os.path.join(self.workdir, 'samples.txt'), 'a') as f:
        for t in texts:
          f.write(f'=== step {step} (temperature {s.temperature}, top_k {s.top_k}, '
                  f'top_p {s.top_p}) ===\n{t}\n')
    for t in texts:
      writer.write_text(step, 'samples', t)
    return {'samples': texts}


TASKS = {'lm': LMTask}


def make_task(config, workdir: str | None) -> Task:
  return TASKS[config.task](config, workdir)
