"""The task interface, the task registry, and the token-level loss shared by sequence tasks.

Tasks: what differs between experiment families.

A task owns its data source and model, turns a batch into a loss, reports
metrics as *sums* (so that evaluation over a whole split is token- or
example-weighted, not an average of batch averages), and does the family's
extra evaluation work in eval.py (sampling text, decoding and BLEU, a
confusion matrix). The engine (transformer/engine/) knows nothing else.

A task registers itself with the `@register` decorator under its `name`, and
checks its own config fields in `validate(config)`; `transformer.tasks`
imports every module of the package, so a new family is one new file.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from transformer import flops as flops_lib
from transformer import pretrained
from transformer import workdir as workdir_lib
from transformer.errors import ConfigError
from transformer.experiment_config import build_model_config, raise_if_problems

log = logging.getLogger('transformer')


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


# ---------------------------------------------------------------------------
# Task settings: the config fields a task reads beyond the common ones.
# ---------------------------------------------------------------------------

def setting(default: Any, doc: str, *, fixed: bool = False,
            check: Callable[[Any], str | None] | None = None,
            parse: Callable[[Any], Any] | None = None):
  """A field of a task's settings: its default (written here once), what it is, whether a
  resumed run may change it (`fixed`: it defines the data or the batches), `check(value)`
  -> what is wrong with it (the text after 'FIELD=VALUE ') or None, and `parse(raw)`: the
  value from the config's (a ValueError or TypeError is reported as a problem)."""
  return dataclasses.field(default=default, metadata={'doc': doc, 'fixed': fixed,
                                                      'check': check, 'parse': parse})


def positive_int(value) -> str | None:
  return None if isinstance(value, int) and value > 0 else 'must be a positive integer'


def one_of(options: Sequence[Any]) -> Callable[[Any], str | None]:
  return lambda value: None if value in options else f'is not one of {tuple(options)}'


@dataclasses.dataclass(frozen=True)
class Settings:
  """Base of a task's settings: a frozen dataclass of `setting` fields (a field whose
  default is itself Settings reads a config block, e.g. `config.decoding`)."""

  @classmethod
  def read(cls, source: Mapping[str, Any] | None, prefix: str = '') -> tuple[Any, list[str]]:
    """(settings, problems) from an experiment config (or one of its blocks): each field's
    value where the config sets it, else its default; problems name the field and why."""
    source = source if source is not None else {}
    values, problems = {}, []
    for f in dataclasses.fields(cls):
      name, meta = f'{prefix}{f.name}', f.metadata
      raw = source.get(f.name) if f.name in source else None
      if dataclasses.is_dataclass(f.default) and isinstance(f.default, Settings):
        block = raw.to_dict() if hasattr(raw, 'to_dict') else dict(raw or {})
        known = {g.name for g in dataclasses.fields(f.default)}
        unknown = sorted(set(block) - known)
        if unknown:
          problems.append(f'{f.name}: unknown field(s) {unknown}; known: {sorted(known)}')
        value, more = type(f.default).read({k: v for k, v in block.items() if k in known},
                                           prefix=f'{name}.')
        problems += more
      elif meta.get('parse') is not None:
        try:
          value = meta['parse'](raw)
        except (TypeError, ValueError) as e:
          problems.append(f'{name}: {e}')
          value = f.default
      else:
        value = f.default if raw is None else raw
        if isinstance(value, list):
          value = tuple(value)
        why = meta['check'](value) if meta.get('check') else None
        if why:
          problems.append(f'{name}={value!r} {why}')
      values[f.name] = value
    return cls(**values), problems

  @classmethod
  def add_missing(cls, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` with each plain field (bool, int, float, str) that it does not set added at
    its default, here and in the blocks (e.g. `config.decoding`) it has: so that
    `--config.FIELD=V` overrides a task's field that the config file leaves out, or that a
    run's older config.json predates. Fields parsed from a block of their own (augment)
    and fields without a typed default are left to the config."""
    for f in dataclasses.fields(cls):
      if isinstance(f.default, Settings):
        if f.name in config and isinstance(config[f.name], ml_collections.ConfigDict):
          type(f.default).add_missing(config[f.name])
      elif (f.name not in config and f.metadata.get('parse') is None
            and type(f.default) in (bool, int, float, str)):
        config[f.name] = f.default
    return config

  def describe(self) -> dict[str, Any]:
    """The settings as plain values (for --print_config)."""
    return dataclasses.asdict(self)


def vocab_with_pretrained(config: ml_collections.ConfigDict, vocab_size: int) -> int:
  """The model's vocabulary size: the data's, or a converted checkpoint's embedding rows
  (config.pretrained.vocab_size) where that is larger (an embedding padded past the
  tokenizer's ids)."""
  return max(vocab_size, (config.get('pretrained') or {}).get('vocab_size', 0))


TASKS: dict[str, type['Task']] = {}


def register(cls: type['Task']) -> type['Task']:
  """Class decorator: makes a Task subclass available as `config.task = cls.name`."""
  if cls.name in TASKS and TASKS[cls.name] is not cls:
    raise ValueError(f'Two tasks named {cls.name!r}: {TASKS[cls.name]} and {cls}')
  TASKS[cls.name] = cls
  return cls


class Task:
  """Base class. Subclasses set `self.data` and `self.model_cfg` in __init__.

  `settings_class`: the task's own config fields (a frozen `Settings` dataclass);
  `self.settings` holds their values for this run, read and checked once.
  `resume_fixed` (derived from it): the fields a resumed run may not change, besides
  the common ones in transformer.workdir.RESUME_FIXED.
  """
  name = 'task'
  weight_name = 'tokens'
  datasets: tuple[str, ...] = ()   # values of config.dataset the task accepts
  settings_class: type[Settings] = Settings
  resume_fixed: tuple[str, ...] = ()
  # The model's stacks this task needs at least one layer in ('num_encoder_layers', ...).
  required_layers: tuple[str, ...] = ()
  # What a trained model of this task makes from inputs (inference.py, generate.py):
  # 'translations' of sentences, 'continuations' of prompts, 'labels' of images, 'sentence
  # labels' (a class per line of text), or None.
  generates: str | None = None

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.resume_fixed = tuple(f.name for f in dataclasses.fields(cls.settings_class)
                             if f.metadata.get('fixed'))

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> list[str]:
    """Problems with the fields this task reads (empty when they are valid).

    Runs before any data is read: the dataset, and the task's settings; subclasses
    add the checks that involve other fields.
    """
    problems = []
    if config.get('dataset') not in cls.datasets:
      problems.append(f'dataset={config.get("dataset")!r} is not a {cls.name!r} dataset; '
                      f'allowed: {cls.datasets}')
    return problems + cls.layer_problems(config) + cls.settings_class.read(config)[1]

  @classmethod
  def layer_problems(cls, config) -> list[str]:
    """A stack this task's model needs with no layer (an embeddings-only model trains
    without a word otherwise)."""
    try:
      cfg = build_model_config(config, vocab_size=max(config.get('vocab_size', 0), 1))
    except ValueError:
      return []   # reported by the common checks
    return [f'model.{name}={getattr(cfg, name)}: a {cls.name!r} model needs at least one layer '
            'there' for name in cls.required_layers if getattr(cfg, name) < 1]

  @classmethod
  def shape_data(cls, config: ml_collections.ConfigDict):
    """A data source with this task's training batch shapes and no data
    (transformer/data/shapes.py), for planning a run where the dataset is not readable
    (tools.plan); passed to the constructor as `data`. A ConfigError for a task whose
    shapes need its data."""
    raise ConfigError(f'task={cls.name!r} is planned from its data only (its batch shapes '
                      'come from it): make the dataset readable here')

  def kept_info(self) -> dict | None:
    """What `kept_data` needs from the data besides the tokenizer, as plain values that
    train.py keeps in the workdir (workdir.record_data_info): the class names, if any."""
    names = getattr(getattr(self, 'data', None), 'class_names', None)
    return {'class_names': list(names)} if names is not None else None

  @classmethod
  def kept_data(cls, config, workdir: str):
    """A data source for using a trained model (generate.py, export) built from what WORKDIR
    keeps (its tokenizer), without the dataset; None where this task has none or the
    workdir keeps too little (then the task reads its data)."""
    del config, workdir
    return None

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | None):
    self.config = config
    self.workdir = workdir
    self.settings, problems = self.settings_class.read(config)
    raise_if_problems(problems)   # also when built without validation

  @property
  def tokenizer(self):
    """The tokenizer that turns this task's text into ids (None for images): what a
    workdir records and checks (workdir.check_tokenizer)."""
    return getattr(getattr(self, 'data', None), 'tokenizer', None)

  def model(self, train: bool) -> nn.Module:
    raise NotImplementedError

  def init_inputs(self) -> tuple:
    """Dummy model inputs for initialization (batch of 1)."""
    raise NotImplementedError

  def loss_sums(self, params, batch, rng, train: bool) -> dict[str, jax.Array]:
    """Sums for one batch: at least `objective` (minimized in training) and `weight`."""
    raise NotImplementedError

  def forward_flops(self, batch) -> float | None:
    """Analytic forward FLOPs of one training batch (from its padded shapes); None: not
    counted."""
    return None

  def train_flops(self, batch) -> float | None:
    """Training FLOPs of one batch (3 x forward), or None: TFLOP/s and MFU are then not
    reported."""
    forward = self.forward_flops(batch)
    return None if forward is None else flops_lib.train_flops(forward)

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    """Turns summed metrics into reported ones (means, perplexity, accuracy)."""
    w = max(float(sums['weight']), 1e-9)
    out = {'loss': float(sums['objective']) / w, 'nll': float(sums['nll']) / w,
           'accuracy': float(sums['correct']) / w, self.weight_name: float(sums['weight'])}
    return out

  def initial_params(self, params):
    """Parameters a fresh run starts from: the random init, or with `config.init_from`
    (a trained or converted workdir) its weights adapted to this model
    (transformer/pretrained.py: a ViT's positions resized, a head of another class
    count re-initialized)."""
    source = self.config.get('init_from')
    if not source:
      return params
    restored = workdir_lib.restore_params(
        source, allow_unverified=self.config.get('allow_unverified_checkpoints', False))
    adapted, notes = pretrained.adapt_params(restored,
                                             jax.device_get(params))
    log.info('Initialized from %s%s', source, ''.join(f'\n  {n}' for n in notes))
    return adapted

  def check_evaluators(self) -> None:
    """Raises a ConfigError for settings `evaluate_extra` cannot use (an LM prompt outside the
    vocabulary or too long), before any evaluation or training runs."""

  def evaluator_sums(self, params, batch) -> dict[str, jax.Array]:
    """Per-batch sums that `evaluate_extra` needs over the whole split (classification: the
    confusion matrix). The engine runs this over the split with its own shardings and
    host layout (`Experiment.split_sums`) and passes the totals in; a task that needs
    none leaves it as it is."""
    return {}

  def evaluate_extra(self, params, writer, step: int,
                     sums: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The family's own evaluation (sampling, decoding and BLEU, a confusion matrix), run by
    eval.py and, every config.extra_eval_every_steps, during training. `params` in the
    plain layout; `sums`: the split's totals of `evaluator_sums`."""
    return {}
