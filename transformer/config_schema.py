"""The experiment config schema: every common field, its type and its default.

`get_config()` is the ConfigDict every experiment file (configs/NAME.py)
starts from; it types a run's config.json when read back
(transformer/workdir.py) and gives `--config.FIELD=VALUE` overrides their
types. configs/base.py re-exports it, so experiment files keep
`from configs import base`. A task's own fields are declared by the task
(transformer/tasks/).
"""

import dataclasses

import ml_collections
from ml_collections import config_dict

from transformer.model_config import TransformerConfig

# Filled in by the engine, not by configs.
ENGINE_FIELDS = ('vocab_size', 'deterministic', 'use_cache', 'cache_len')


def model_fields() -> ml_collections.ConfigDict:
  """Every TransformerConfig field as an unset placeholder of its type.

  A field left None takes the preset's (or the dataclass's) value; any field can
  be set in a config file or on the command line (--config.model.num_heads=16).
  """
  fields = {}
  for f in dataclasses.fields(TransformerConfig):
    if f.name in ENGINE_FIELDS:
      continue
    default = f.default
    if f.name in ('dtype', 'param_dtype'):
      kind = str
    elif default is None:
      kind = int
    else:
      kind = type(default)
    fields[f.name] = config_dict.placeholder(kind)
  return ml_collections.ConfigDict(fields)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()

  # What to train.
  c.task = 'lm'                      # a registered task: transformer.tasks.TASKS
  c.dataset = 'tiny_shakespeare'
  c.data_dir = ''                    # '' -> $TRANSFORMER_DATA_DIR -> TFDS by name
  c.tfds_data_dir = ''               # TFDS by name: '' -> $TFDS_DATA_DIR -> ~/tensorflow_datasets
  c.packing = False                  # several sentences per training row (lm1b; data/packing.py)
  c.seq_len = 64                     # training sequence length (LM) / max length
  c.vocab_size = 0                   # subword vocabulary size where one is trained (0: dataset's)
  c.tokenizer = ''                   # '': the dataset's own; 'hf:DIR': a pretrained model's
                                     # DIR/tokenizer.json (lm, mlm, text_classification)
  # dataset='files': your own data by path (transformer/data/files.py). Each split: a path,
  # a glob, or several separated by commas ('' : no such split).
  c.files = ml_collections.ConfigDict(dict(
      train='', validation='', test='',
      unit='line',                     # text: 'line' (a document per line) | 'file'
      text_column='sentence',          # tables (.tsv/.csv/.jsonl): the text's column
      label_column='label',            # ... and the label's (integers 0..C-1 or names)
      skip_holdout=0))                 # lm, mlm: N > 0 leaves out of the train tables the N
                                       # whole sentences text_classification's
                                       # validation_holdout=N (_whole) holds out

  # Model: a preset name from transformer.model_config.PRESETS ('' for none) and
  # overrides of TransformerConfig fields. vocab_size and max_len are filled in
  # from the data and seq_len.
  c.model_preset = ''
  c.model = model_fields()
  # A workdir to start a fresh run from (fine-tuning): one trained by train.py or
  # written by `python -m transformer.convert import` (transformer/pretrained.py).
  c.init_from = ''

  # Training loop.
  c.seed = 0
  c.batch_size = 32                  # global, across all devices and hosts
  c.num_train_steps = 1000
  c.log_every_steps = 50
  c.eval_every_steps = 500
  c.eval_batch_size = 0              # 0: same as batch_size
  c.eval_split = 'validation'        # split evaluated during training and by eval.py
  c.eval_max_batches = -1            # -1: the whole split
  # The task's own evaluators (translation: decoding + BLEU on decoding.max_eval_sentences;
  # classification: confusion matrix; LM: samples) every N steps of training too (0: only
  # in eval.py).
  c.extra_eval_every_steps = 0
  # Keep the checkpoint with the best value of this metric of eval_split ('loss',
  # 'accuracy', or an evaluator's such as 'tokenized_bleu') in WORKDIR/checkpoints_best
  # ('': none); eval.py / generate.py --checkpoint=best read it.
  c.best_metric = ''
  c.best_mode = ''                   # 'max' | 'min'; '': min for loss/nll/perplexity, else max
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 5             # keep the last N (the paper averaged the last 5)
  c.async_checkpointing = True       # Orbax saves in the background while training goes on
  c.max_bad_steps = 3                # non-finite loss/gradients: skip the step; stop after N in a row
  c.profile_steps = ()               # (start, stop): jax.profiler trace of those steps in WORKDIR/profile
  c.preemption_sync_every_steps = 10  # multi-host: how often processes agree on a stop signal
  c.allow_config_change = False      # resume although model/data fields differ from config.json
  # Restore arrays that have no saved fingerprint (else such a checkpoint counts as damaged).
  c.allow_unverified_checkpoints = False
  c.grad_accum_steps = 1             # micro-batches per optimizer step

  # Optimizer and schedule (transformer/optim.py).
  c.optimizer = 'adam'               # 'adam' | 'adamw' | 'sgd'
  c.learning_rate = 1.0              # peak (or the multiplier of the paper's rsqrt schedule)
  c.schedule = 'rsqrt'               # 'rsqrt' | 'cosine' | 'linear' | 'constant'
  c.warmup_steps = 4000
  c.min_learning_rate = 0.0          # end value of cosine / linear decay
  c.b1 = 0.9
  c.b2 = 0.98
  c.eps = 1e-9
  c.weight_decay = 0.0               # AdamW only
  c.weight_decay_mask = 'matrices'   # 'matrices' | 'all' | 'none'
  c.grad_clip_norm = 0.0             # 0: no clipping
  c.label_smoothing = 0.0

  # Devices (docs/SHARDING.md). A parallelism preset sets the mesh sizes and the
  # logical axis rules: 'data' (replicated parameters), 'fsdp' (parameters and
  # optimizer state split over all devices), 'tensor' (heads, feed-forward
  # hidden axis, vocabulary split), 'data_fsdp', 'data_tensor', 'fsdp_tensor'
  # (combinations), 'pmap' (jax.pmap data parallel).
  c.parallelism = 'data'
  # Mesh axis sizes; unset: the preset's, -1: the remaining devices.
  c.mesh = ml_collections.ConfigDict(dict(data=config_dict.placeholder(int),
                                          fsdp=config_dict.placeholder(int),
                                          tensor=config_dict.placeholder(int)))
  # Logical axis -> mesh axes rules, e.g. (('batch', ('data', 'fsdp')), ('embed', 'fsdp'));
  # unset: the preset's (transformer/sharding.py PRESETS).
  c.logical_axis_rules = config_dict.placeholder(tuple)
  # float32 matrix products (jax.default_matmul_precision): 'default' lets the backend take
  # faster passes (TF32 on NVIDIA GPUs: an H200 ran a float32 8192^3 product at 412 TFLOP/s,
  # against 67 for full float32; bf16 passes on TPUs; full float32 on CPUs); 'high' (bf16_3x)
  # or 'highest' (full float32, PyTorch's default on GPUs) ask for more.
  c.matmul_precision = 'default'

  # Sampling in eval.py (language models).
  c.sample = ml_collections.ConfigDict(dict(
      prompt='', num_tokens=200, temperature=0.8, top_k=0, top_p=1.0, num_samples=1))

  return c
