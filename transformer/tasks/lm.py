"""Language modeling: next-token prediction with a decoder-only Transformer."""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer import decoding, distributed, flops, models
from transformer import workdir as workdir_lib
from transformer.data import files as files_data
from transformer.data import lm as lm_data
from transformer.data import shapes
from transformer.data import tokenizers
from transformer.data import resolve_data_dir
from transformer.experiment_config import ConfigError, build_model_config
from transformer.tasks.base import (Settings, Task, positive_int, register, setting,
                                    token_cross_entropy, vocab_with_pretrained)


def make_lm_source(config, workdir, **options):
  """The language-modeling data of `config` (dataset, data_dir, seq_len, vocab_size,
  tfds_data_dir), with `options` passed on to `lm_data.make_lm_data`."""
  return lm_data.make_lm_data(config.dataset, resolve_data_dir(config.data_dir),
                              seq_len=config.seq_len, workdir=workdir,
                              vocab_size=config.vocab_size or None,
                              tfds_data_dir=config.get('tfds_data_dir') or None,
                              processes=distributed.processes(),
                              tokenizer=tokenizers.from_spec(config.get('tokenizer', '')),
                              files=config.get('files'), **options)


@dataclasses.dataclass(frozen=True)
class LMSettings(Settings):
  eval_stride: int = setting(0, 'stream datasets: evaluate sliding windows advancing by this '
                             'many tokens, each scoring only its new ones (0: non-overlapping '
                             'windows); checked against seq_len in validate')
  spm_max_sentences: int = setting(lm_data.LM1B_SPM_MAX_SENTENCES, "lm1b: sentences sampled "
                                   'to train its SentencePiece model', fixed=True,
                                   check=positive_int)


@register
class LMTask(Task):
  """Next-token prediction with a decoder-only Transformer."""
  name = 'lm'
  datasets = lm_data.DATASETS + (files_data.DATASET,)
  settings_class = LMSettings
  generates = 'continuations'
  required_layers = ('num_decoder_layers',)

  @classmethod
  def validate(cls, config):
    problems = super().validate(config)
    if config.get('packing', False) and config.dataset != 'lm1b':
      problems.append(f'packing: {config.dataset} is read as one dense token stream (every row '
                      'is real text); packing applies to the sentence datasets (lm1b)')
    s = config.get('sample')
    if s is not None:
      for name in ('num_tokens', 'num_samples'):
        if not isinstance(s.get(name), int) or s.get(name) <= 0:
          problems.append(f'sample.{name}={s.get(name)!r} must be a positive integer')
      if not s.get('temperature', 1.0) >= 0:
        problems.append(f"sample.temperature={s.get('temperature')!r} must be >= 0")
      if not isinstance(s.get('top_k', 0), int) or s.get('top_k', 0) < 0:
        problems.append(f"sample.top_k={s.get('top_k')!r} must be an integer >= 0 (0: off)")
      if not 0 < s.get('top_p', 1.0) <= 1:
        problems.append(f"sample.top_p={s.get('top_p')!r} must be in (0, 1]")
    stride = cls.settings_class.read(config)[0].eval_stride
    if not isinstance(stride, int) or not 0 <= stride < config.seq_len:
      problems.append(f'eval_stride={stride!r} must be 0 (non-overlapping windows) or in '
                      f'[1, seq_len={config.seq_len}) (sliding windows)')
    return problems

  @classmethod
  def shape_data(cls, config):
    vocab = config.vocab_size or (lm_data.LM1B_DEFAULT_VOCAB if config.dataset == 'lm1b' else 0)
    if not vocab:
      raise ConfigError(f'dataset={config.dataset!r}: its vocabulary size comes from the data; '
                        'give --config.vocab_size to plan from batch shapes alone')
    return shapes.lm_shapes(config.dataset, seq_len=config.seq_len, vocab_size=vocab,
                            packing=bool(config.get('packing', False)))

  @classmethod
  def kept_data(cls, config, workdir):
    """The batch shapes with the run's own tokenizer, kept in WORKDIR (no dataset read)."""
    tokenizer = workdir_lib.kept_tokenizer(workdir)
    if tokenizer is None:
      return None
    data = shapes.lm_shapes(config.dataset, seq_len=config.seq_len,
                            vocab_size=tokenizer.vocab_size,
                            packing=bool(config.get('packing', False)))
    data.tokenizer = tokenizer
    return data

  def __init__(self, config, workdir, data=None):
    super().__init__(config, workdir)
    if data is None:
      data = make_lm_source(config, workdir, spm_max_sentences=self.settings.spm_max_sentences,
                            packing=bool(config.get('packing', False)))
    self.data, shaped = data, isinstance(data, shapes.ShapeData)
    if self.settings.eval_stride and not shaped:
      if not hasattr(self.data, 'eval_stride'):
        raise ConfigError(f'eval_stride: {config.dataset} is evaluated sentence by sentence; '
                          'sliding windows apply to the stream datasets (tiny_shakespeare, ptb)')
      self.data.eval_stride = self.settings.eval_stride
    self.model_cfg = build_model_config(
        config, vocab_size=vocab_with_pretrained(config, self.data.vocab_size))
    if config.get('extra_eval_every_steps', 0) and not shaped:   # sampling: check it now
      self.check_evaluators()

  def check_evaluators(self) -> None:
    self._sample_prompt()

  def _sample_prompt(self) -> list[int]:
    """config.sample.prompt's token ids; a ConfigError when empty or too long for the model."""
    text = self.config.sample.prompt
    if not text:
      raise ConfigError('config.sample.prompt is empty: give a prompt to sample from '
                        '(e.g. --config.sample.prompt="ROMEO:")')
    try:
      prompt = self.data.tokenizer.encode(text)
    except ValueError as e:   # a character outside a character vocabulary
      raise ConfigError(f'config.sample.prompt: {e}: write the prompt in the characters of '
                        f'{self.config.dataset}') from None
    if len(prompt) >= self.model_cfg.max_len:
      raise ConfigError(f'config.sample.prompt is {len(prompt)} tokens long; the model has '
                        f'{self.model_cfg.max_len} positions (model.max_len): shorten the '
                        'prompt to leave room for the samples')
    return prompt

  def model(self, train: bool) -> nn.Module:
    return models.DecoderLM(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    return (jnp.ones((1, self.config.seq_len), jnp.int32),)

  def loss_sums(self, params, batch, rng, train):
    logits = self.model(train).apply({'params': params}, batch['inputs'],
                                     segments=batch.get('segments'),
                                     positions=batch.get('positions'),
                                     rngs={'dropout': rng} if train else None)
    sums = token_cross_entropy(logits, batch['targets'], batch['weights'],
                               self.config.label_smoothing if train else 0.0)
    sums['padded_tokens'] = jnp.float32(batch['targets'].size)
    if 'target_chars' in batch:   # evaluation of a stream whose tokens know their characters
      sums['chars'] = jnp.sum(batch['target_chars'] * batch['weights'])
    return sums

  def forward_flops(self, batch):
    return flops.lm_forward_flops(self.model_cfg, *batch['inputs'].shape)

  def summarize(self, sums):
    out = super().summarize(sums)
    out['perplexity'] = float(np.exp(min(out['nll'], 50.0)))
    if sums.get('chars'):   # comparable across tokenizers (characters, BPE, WordPiece)
      out['nll_per_char'] = float(sums['nll']) / float(sums['chars'])
    if sums.get('padded_tokens'):
      out['real_token_fraction'] = float(sums['weight']) / float(sums['padded_tokens'])
    return out

  def evaluate_extra(self, params, writer, step, sums=None):
    s = self.config.sample
    tok = self.data.tokenizer
    prompt = self._sample_prompt()
    prompts = jnp.asarray([prompt] * s.num_samples, jnp.int32)
    num_tokens = min(s.num_tokens, self.model_cfg.max_len - len(prompt) + 1)
    eos = getattr(tok, 'eos_id', None)
    out = decoding.generate(params, self.model_cfg, prompts, num_tokens,
                            rng=jax.random.PRNGKey(self.config.seed), temperature=s.temperature,
                            top_k=s.top_k, top_p=s.top_p, eos_id=eos)
    # Decode prompt and continuation together so the tokenizer joins them (spaces for words).
    texts = [tok.decode(prompt + np.asarray(row).tolist()) for row in out]
    if self.workdir:
      with open(os.path.join(self.workdir, 'samples.txt'), 'a') as f:
        for t in texts:
          f.write(f'=== step {step} (temperature {s.temperature}, top_k {s.top_k}, '
                  f'top_p {s.top_p}) ===\n{t}\n')
    for t in texts:
      writer.write_text(step, 'samples', t)
    return {'samples': texts}
