"""Sentence classification with an encoder-only Transformer (BERT's fine-tuning).

`models.EncoderOnly` with its [CLS]-position head (`head='classify'`: the first
token's final state, Dense + tanh, then the classifier) on labelled sentences
(transformer/data/text_classification.py: SST-2 by TFDS name, or GLUE's TSV
files under data_dir). Made to start from a masked-LM run: `config.init_from`
names its workdir (transformer/pretrained.py: the encoder and embeddings come
from it, the pooler and classifier start fresh), and `config.vocab_from` names
the dataset whose vocabulary that run used (e.g. 'ptb' for configs/mlm_ptb.py),
so the token ids mean what they meant in pretraining; the model's vocabulary is
that one plus the [MASK] id, as in the mlm task.

Metrics are example-weighted: `loss` (cross-entropy), `accuracy`, `examples`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from transformer import distributed, flops, models
from transformer.data import lm as lm_data
from transformer.data import resolve_data_dir
from transformer.data import text_classification as text_data
from transformer.experiment_config import build_model_config
from transformer.tasks.base import Settings, Task, register, setting
from transformer.tasks.classification import classification_sums


@dataclasses.dataclass(frozen=True)
class TextClassificationSettings(Settings):
  vocab_from: str = setting('', 'the dataset whose vocabulary the pretrained model uses, one of '
                            f'{lm_data.DATASETS}', fixed=True,
                            check=lambda v: None if v in lm_data.DATASETS else (
                                'is not one of the datasets with a vocabulary: name the one '
                                f'the pretrained model uses, one of {lm_data.DATASETS}'))


@register
class TextClassificationTask(Task):
  name = 'text_classification'
  weight_name = 'examples'
  datasets = tuple(text_data.TFDS_NAMES)   # and any NAME with GLUE's TSV files under data_dir
  settings_class = TextClassificationSettings
  required_layers = ('num_encoder_layers',)

  @classmethod
  def validate(cls, config):
    problems = []
    if not config.get('dataset') or not isinstance(config.dataset, str):
      problems.append(f'dataset={config.get("dataset")!r}: name a sentence-classification '
                      f'dataset ({cls.datasets} by TFDS, or any in GLUE\'s TSV layout under '
                      'data_dir)')
    return problems + cls.layer_problems(config) + cls.settings_class.read(config)[1]

  def __init__(self, config, workdir):
    super().__init__(config, workdir)
    data_dir = resolve_data_dir(config.data_dir)
    vocabulary = lm_data.make_lm_data(self.settings.vocab_from, data_dir, seq_len=config.seq_len,
                                      workdir=workdir, vocab_size=config.vocab_size or None,
                                      tfds_data_dir=config.get('tfds_data_dir') or None,
                                      processes=distributed.processes())
    self.data = text_data.make_text_classification_data(
        config.dataset, data_dir, vocabulary.tokenizer, config.seq_len,
        tfds_data_dir=config.get('tfds_data_dir') or None)
    self.model_cfg = build_model_config(config, vocab_size=vocabulary.vocab_size + 1,
                                        num_classes=self.data.num_classes)

  def model(self, train: bool) -> nn.Module:
    return models.EncoderOnly(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    return (jnp.ones((1, self.config.seq_len), jnp.int32), None, None, 'classify')

  def loss_sums(self, params, batch, rng, train):
    logits = self.model(train).apply({'params': params}, batch['inputs'], head='classify',
                                     rngs={'dropout': rng} if train else None)
    return classification_sums(logits, batch['labels'], batch['weights'],
                               label_smoothing=self.config.label_smoothing if train else 0.0)

  def forward_flops(self, batch):
    return flops.encoder_only_forward_flops(self.model_cfg, *batch['inputs'].shape,
                                            head='classify')

  def summarize(self, sums):
    w = max(float(sums['weight']), 1e-9)
    return {'loss': float(sums['objective']) / w, 'accuracy': float(sums['correct']) / w,
            self.weight_name: float(sums['weight'])}
