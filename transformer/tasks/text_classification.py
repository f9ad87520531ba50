"""Sentence classification with an encoder-only Transformer (BERT's fine-tuning).

`models.EncoderOnly` with its [CLS]-position head (`head='classify'`: the first
token's final state, Dense + tanh, then the classifier) on labelled sentences
(transformer/data/text_classification.py: SST-2 by TFDS name, GLUE's TSV
files under data_dir, or your own TSV/CSV/JSONL tables with dataset='files').
Made to start from a masked-LM run or a converted BERT: `config.init_from` names
its workdir (transformer/pretrained.py: the encoder and embeddings come from it,
the pooler and classifier start fresh), and the text is read with that model's
tokenizer: `config.tokenizer='hf:DIR'` (its tokenizer.json), or `config.vocab_from`
the dataset whose word vocabulary it used (e.g. 'ptb' for configs/mlm_ptb.py).
The model's vocabulary is the mlm task's for that tokenizer ([MASK] included).

Metrics are example-weighted: `loss` (cross-entropy), `accuracy`, `examples`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from transformer import distributed, flops, models
from transformer import workdir as workdir_lib
from transformer.data import files as files_data
from transformer.data import lm as lm_data
from transformer.data import tokenizers
from transformer.data import resolve_data_dir
from transformer.data import text_classification as text_data
from transformer.experiment_config import build_model_config
from transformer.tasks.base import Settings, Task, register, setting, vocab_with_pretrained
from transformer.tasks.classification import classification_sums
from transformer.tasks.mlm import mask_id_and_vocab


def _holdout(value):
  return None if isinstance(value, int) and value >= 0 else 'must be an integer >= 0'


@dataclasses.dataclass(frozen=True)
class TextClassificationSettings(Settings):
  vocab_from: str = setting('', 'without config.tokenizer: the dataset whose vocabulary the '
                            f'pretrained model uses, one of {lm_data.DATASETS}', fixed=True,
                            check=lambda v: None if v in ('',) + lm_data.DATASETS else (
                                'is not one of the datasets with a vocabulary: name the one '
                                f'the pretrained model uses, one of {lm_data.DATASETS}'))
  validation_holdout: int = setting(0, "N > 0: N training sentences (a fixed draw, the same "
                                    "for every seed) are the 'validation' split, and the "
                                    "dataset's own validation split is called 'dev'",
                                    fixed=True, check=_holdout)
  validation_holdout_whole: bool = setting(
      False, 'with validation_holdout: hold out whole sentences (rows that are no other '
      "row's word span) and drop every training row that is a span of one, as SST's "
      'phrase rows are: nothing of a held-out sentence is trained on', fixed=True,
      check=lambda v: None if isinstance(v, bool) else 'must be True or False')


@register
class TextClassificationTask(Task):
  name = 'text_classification'
  weight_name = 'examples'
  # and any NAME with GLUE's TSV files under data_dir, or your tables by path ('files')
  datasets = tuple(text_data.TFDS_NAMES) + (files_data.DATASET,)
  settings_class = TextClassificationSettings
  generates = 'sentence labels'
  required_layers = ('num_encoder_layers',)

  @classmethod
  def validate(cls, config):
    problems = []
    if not config.get('dataset') or not isinstance(config.dataset, str):
      problems.append(f'dataset={config.get("dataset")!r}: name a sentence-classification '
                      f'dataset ({cls.datasets} by TFDS, or any in GLUE\'s TSV layout under '
                      'data_dir)')
    settings, more = cls.settings_class.read(config)
    if not more and not settings.vocab_from and not config.get('tokenizer'):
      problems.append("vocab_from='' and tokenizer='': name the pretrained model's tokenizer "
                      "(tokenizer='hf:DIR') or the dataset whose vocabulary it used "
                      f'(vocab_from, one of {lm_data.DATASETS})')
    if not more and settings.validation_holdout_whole and not settings.validation_holdout:
      problems.append('validation_holdout_whole=True holds out whole sentences: set '
                      'validation_holdout=N, how many')
    return problems + cls.layer_problems(config) + more

  @classmethod
  def kept_data(cls, config, workdir):
    """The run's tokenizer and class names, kept in WORKDIR: sentences encoded as training
    encoded them, with no sentences read."""
    tokenizer = workdir_lib.kept_tokenizer(workdir)
    names = (workdir_lib.kept_data_info(workdir) or {}).get('class_names')
    if tokenizer is None or not names:
      return None
    return text_data.TextClassificationData(
        config.dataset, {}, tokenizer, config.seq_len, lowercase=not config.get('tokenizer'),
        label_names=list(names))

  def __init__(self, config, workdir, data=None):
    super().__init__(config, workdir)
    self.data = data if data is not None else self._read_data(config, workdir)
    tokenizer = self.data.tokenizer
    # The vocabulary of the masked-LM model it fine-tunes ([MASK] included).
    _, vocab_size = mask_id_and_vocab(tokenizer, tokenizer.vocab_size)
    self.model_cfg = build_model_config(config,
                                        vocab_size=vocab_with_pretrained(config, vocab_size),
                                        num_classes=self.data.num_classes)

  def _read_data(self, config, workdir):
    data_dir = resolve_data_dir(config.data_dir)
    tokenizer = tokenizers.from_spec(config.get('tokenizer', ''))
    if tokenizer is None:   # the word vocabulary of an LM dataset, lowercased, as mlm_ptb
      vocabulary = lm_data.make_lm_data(
          self.settings.vocab_from, data_dir, seq_len=config.seq_len,
          workdir=workdir, vocab_size=config.vocab_size or None,
          tfds_data_dir=config.get('tfds_data_dir') or None, processes=distributed.processes())
      tokenizer, lowercase = vocabulary.tokenizer, True
    else:   # a pretrained model's tokenizer.json normalizes the text itself
      lowercase = False
    return text_data.make_text_classification_data(
        config.dataset, data_dir, tokenizer, config.seq_len,
        tfds_data_dir=config.get('tfds_data_dir') or None, files=config.get('files'),
        lowercase=lowercase, validation_holdout=self.settings.validation_holdout,
        whole_sentences=self.settings.validation_holdout_whole)

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
