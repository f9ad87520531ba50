"""Image classification with a Vision Transformer.

The task reads images from `transformer.data.images` and trains `models.ViT`
on them with the shared engine. Its own config fields, with their defaults and
checks, are `ClassificationSettings` below (augment, validation_holdout,
data_workers, data_processes, eval_flip); `train.py --print_config` prints their values.
Common fields read here: dataset ('mnist' | 'fashion_mnist' | 'cifar10' |
'imagenet2012'), model (ViT fields; image_size is the model resolution, default
the dataset's own, 224 for ImageNet; num_channels and num_classes come from the
data), label_smoothing ((1 - e) * target + e / num_classes, training only),
tfds_data_dir, init_from (a pretrained ViT's workdir, e.g. to fine-tune at
another resolution or on another dataset: transformer/pretrained.py).

Metrics are example-weighted sums: `loss` (cross-entropy against the training
target: label-smoothed and mixed up when those are on; the plain cross-entropy
in evaluation), `accuracy` (top-1 against `labels`, the dominant label of a
mixed image), `top5_accuracy` for datasets with >= 100 classes, and `examples`.
`evaluate_extra` (eval.py) writes WORKDIR/confusion_matrix_<split>_step<N>.csv (eval.py
also draws it as a PNG beside it).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from transformer import flops, models
from transformer import workdir as workdir_lib
from transformer.data import images as image_data
from transformer.data import shapes
from transformer.errors import ConfigError
from transformer.experiment_config import build_model_config
from transformer.tasks.base import Settings, Task, register, setting

log = logging.getLogger('transformer')
TOP5_MIN_CLASSES = 100   # report top-5 accuracy for datasets with at least this many classes


def classification_sums(logits: jax.Array, labels: jax.Array, weights: jax.Array, *,
                        label_smoothing: float = 0.0, mix_labels: jax.Array | None = None,
                        mix_ratio: jax.Array | None = None,
                        top5: bool = False) -> dict[str, jax.Array]:
  """Example-weighted sums: objective (cross-entropy to the target), correct, weight, correct_top5.

  The target is onehot(labels), or lam * onehot(labels) + (1 - lam) *
  onehot(mix_labels) with lam = mix_ratio (mixup), then smoothed as
  (1 - e) * target + e / num_classes.
  """
  num_classes = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  log_probs = jax.nn.log_softmax(logits)
  target = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if mix_labels is not None:
    lam = mix_ratio.astype(jnp.float32)[:, None]
    target = lam * target + (1 - lam) * jax.nn.one_hot(mix_labels, num_classes, dtype=jnp.float32)
  if label_smoothing > 0:
    target = (1 - label_smoothing) * target + label_smoothing / num_classes
  objective = -jnp.sum(target * log_probs, axis=-1)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  out = {'objective': jnp.sum(objective * weights), 'correct': jnp.sum(correct * weights),
         'weight': jnp.sum(weights)}
  if top5:
    _, top = jax.lax.top_k(logits, min(5, num_classes))
    in_top5 = jnp.any(top == labels[:, None], axis=-1).astype(jnp.float32)
    out['correct_top5'] = jnp.sum(in_top5 * weights)
  return out




# ----------------------------------------------------------------------------- the task

def _int_at_least(low: int, what: str):
  return lambda v: None if isinstance(v, int) and v >= low else f'must be an integer >= {low} {what}'


@dataclasses.dataclass(frozen=True)
class ClassificationSettings(Settings):
  augment: image_data.Augment = setting(
      image_data.Augment(), 'training augmentation (config.augment: the fields of '
      'data.images.Augment)', fixed=True, parse=image_data.Augment.from_config)
  validation_holdout: int = setting(0, "N > 0: the last N training images are the "
                                    "'validation' split", fixed=True,
                                    check=_int_at_least(0, '(0: none)'))
  data_workers: int = setting(-1, 'threads reading and augmenting images (-1: automatic)',
                              check=_int_at_least(-1, '(-1: automatic)'))
  data_processes: int = setting(0, 'grain worker processes making training batches ahead',
                                check=_int_at_least(0, '(0: make the training batches in the '
                                                    'training process)'))
  eval_flip: bool = setting(False, 'evaluation averages the class probabilities of each '
                            'image and its horizontal mirror (test-time augmentation; '
                            'training is unchanged)',
                            check=lambda v: None if isinstance(v, bool) else 'must be True or False')


def _model_image_size(config) -> int | None:
  """config.model.image_size, or None: the dataset's own (224 for ImageNet)."""
  return (config.model.get('image_size') if config.model else None) or None


@register
class ClassificationTask(Task):
  """Image classification with a ViT; example-weighted metrics."""
  name = 'classification'
  weight_name = 'examples'
  datasets = image_data.DATASETS + ('files',)   # and your image folders by path
  settings_class = ClassificationSettings
  generates = 'labels'
  required_layers = ('num_encoder_layers',)

  @classmethod
  def shape_data(cls, config):
    info = image_data.INFO.get(config.dataset)
    if info is None:
      raise ConfigError(f'dataset={config.dataset!r}: its classes come from the data; plan it '
                        'where the image folders are readable')
    size = _model_image_size(config) or info.image_size or image_data.IMAGENET_DEFAULT_SIZE
    return shapes.image_shapes(config.dataset, image_size=size, num_channels=info.num_channels,
                               num_classes=info.num_classes,
                               mixup=cls.settings_class.read(config)[0].augment.mixup > 0)

  @classmethod
  def kept_data(cls, config, workdir):
    """The class names and the evaluation preprocessing kept in WORKDIR: classifying image
    files without the dataset."""
    info = workdir_lib.kept_data_info(workdir) or {}
    if not info.get('class_names') or not info.get('images'):
      return None
    return image_data.KeptImages(info['images'], info['class_names'])

  def kept_info(self):
    info = super().kept_info()
    if not isinstance(self.data, shapes.ShapeData):
      info['images'] = self.data.preprocessing()
    return info

  def __init__(self, config, workdir, data=None):
    super().__init__(config, workdir)
    s = self.settings
    self.data = data if data is not None else image_data.make_image_data(
        config.dataset, config.data_dir or None, image_size=_model_image_size(config),
        augment=s.augment,
        tfds_data_dir=config.get('tfds_data_dir') or None,
        num_workers=None if s.data_workers < 0 else s.data_workers,
        validation_holdout=s.validation_holdout, worker_processes=s.data_processes,
        files=config.get('files'))
    self.num_classes = self.data.num_classes
    self.top5 = self.num_classes >= TOP5_MIN_CLASSES
    self.model_cfg = build_model_config(
        config, vocab_size=1, image_size=self.data.image_size,
        num_channels=self.data.num_channels, num_classes=self.num_classes)

  def model(self, train: bool) -> nn.Module:
    return models.ViT(self.model_cfg.replace(deterministic=not train))

  def init_inputs(self) -> tuple:
    s = self.data.image_size
    return (jnp.zeros((1, s, s, self.data.num_channels), jnp.float32),)

  def _eval_logits(self, params, images):
    """Evaluation logits; with eval_flip, the log of the mean of the image's and its
    mirror's class probabilities (one forward pass over both)."""
    model = self.model(False)
    if not self.settings.eval_flip:
      return model.apply({'params': params}, images)
    both = model.apply({'params': params}, jnp.concatenate([images, images[:, :, ::-1]], 0))
    log_probs = jax.nn.log_softmax(both.astype(jnp.float32)).reshape(
        2, images.shape[0], -1)
    return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(2.0)

  def loss_sums(self, params, batch, rng, train):
    if train:
      logits = self.model(True).apply({'params': params}, batch['images'],
                                      rngs={'dropout': rng})
    else:
      logits = self._eval_logits(params, batch['images'])
    return classification_sums(
        logits, batch['labels'], batch['weights'],
        label_smoothing=self.config.label_smoothing if train else 0.0,
        mix_labels=batch.get('mix_labels'), mix_ratio=batch.get('mix_ratio'), top5=self.top5)

  def forward_flops(self, batch):
    return flops.vit_forward_flops(self.model_cfg, batch['images'].shape[0])

  def summarize(self, sums):
    w = max(float(sums['weight']), 1e-9)
    out = {'loss': float(sums['objective']) / w, 'accuracy': float(sums['correct']) / w}
    if 'correct_top5' in sums:
      out['top5_accuracy'] = float(sums['correct_top5']) / w
    out[self.weight_name] = float(sums['weight'])
    return out

  # -- eval.py -----------------------------------------------------------------

  def evaluator_sums(self, params, batch):
    """The confusion counts of one batch: [classes, classes], rows the true class, columns
    the predicted one (padding rows weigh 0)."""
    c = self.num_classes
    logits = self._eval_logits(params, batch['images'])
    truth = jax.nn.one_hot(batch['labels'], c, dtype=jnp.float32) * batch['weights'][:, None]
    pred = jax.nn.one_hot(jnp.argmax(logits, -1), c, dtype=jnp.float32)
    return {'confusion': jnp.einsum('bi,bj->ij', truth, pred)}

  def evaluate_extra(self, params, writer, step: int, sums=None) -> dict[str, Any]:
    """Confusion matrix of the eval split -> WORKDIR/confusion_matrix_<split>_step<N>.csv
    (`sums['confusion']`: evaluator_sums over the split, added up by the engine)."""
    cfg = self.config
    matrix = np.rint(sums['confusion']).astype(np.int64)
    names = self.data.class_names
    counts = matrix.sum(1)
    per_class = np.where(counts > 0, np.diag(matrix) / np.maximum(counts, 1), np.nan)
    out: dict[str, Any] = {}
    if self.workdir and jax.process_index() == 0:
      path = os.path.join(self.workdir, f'confusion_matrix_{cfg.eval_split}_step{step}.csv')
      with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['true \\ predicted', *names])
        for name, row in zip(names, matrix):
          w.writerow([name, *row.tolist()])
      out['confusion_matrix_csv'] = path
    seen = ~np.isnan(per_class)
    if seen.any():
      worst = int(np.nanargmin(per_class))
      out.update(mean_class_accuracy=float(np.nanmean(per_class)),
                 min_class_accuracy=float(per_class[worst]), min_class=names[worst])
    order = np.argsort(np.where(seen, per_class, np.inf))
    shown = order if self.num_classes <= 100 else order[:20]
    lines = [f'{names[i]}: {per_class[i]:.4f} ({int(counts[i])} examples)'
             for i in shown if seen[i]]
    out['per_class_accuracy'] = ['\n'.join(lines)]
    writer.write_text(step, 'per_class_accuracy', '\n'.join(lines))
    return out

