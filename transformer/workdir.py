"""The run directory (workdir): its layout, its config, its lock, and restoring what it holds.

One module owns every file name of a workdir:

  WORKDIR/config.json          the run's resolved experiment config (train.py writes it)
  WORKDIR/command.txt          how each launch was made (appended once per launch)
  WORKDIR/train.log            the console lines of process 0
  WORKDIR/train.lock[.N]       held while a training process (process N) runs
  WORKDIR/metrics.jsonl        one JSON object per logged step or evaluation
  WORKDIR/tensorboard/         TensorBoard event files
  WORKDIR/checkpoints/<step>/  Orbax checkpoints (transformer/checkpoint.py)
  WORKDIR/checkpoints_avg/     the average of the last N (python -m tools.average)
  WORKDIR/checkpoints_best/    the best checkpoint by config.best_metric
  WORKDIR/profile/             profiler traces (config.profile_steps)
  WORKDIR/hf/                  a converted checkpoint's Hugging Face files (tools.convert)
  WORKDIR/<task files>         a vocabulary, translations, confusion matrices

and the operations on it: reading and writing config.json (typed by the
config schema), the lock, the check a resumed run must pass, and `restore`,
the one way anything reads a checkpoint: through the verifying
`Checkpointer`, with a user error when there is nothing to restore (never a
silent random initialization).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from transformer import checkpoint as ckpt_lib
from transformer import config_schema
from transformer.checkpoint import checkpoint_steps  # the one definition; also workdir's
from transformer.data import tokenizers
from transformer.errors import CheckpointError, ConfigError, TrainingError

log = logging.getLogger('transformer')

CONFIG_JSON = 'config.json'
COMMAND_TXT = 'command.txt'
TRAIN_LOG = 'train.log'
LOCK = 'train.lock'
METRICS = 'metrics.jsonl'
TENSORBOARD = 'tensorboard'
PROFILE = 'profile'
HF_DIR = 'hf'
CHECKPOINTS = 'checkpoints'
# --checkpoint=NAME of eval.py / generate.py -> the folder of checkpoints it reads.
CHECKPOINT_DIRS = {'latest': CHECKPOINTS, 'avg': 'checkpoints_avg', 'best': 'checkpoints_best'}


def make(workdir: str) -> None:
  """Creates WORKDIR (and its parents) for a run; a ConfigError when the path is a file or
  cannot be created."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f'--workdir={workdir} is a file, not a directory: choose another path')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f'--workdir={workdir} cannot be created ({e.strerror})') from None


def checkpoint_dir(workdir: str, which: str = 'latest') -> str:
  """The folder of `which` checkpoints: 'latest' (training's), 'avg' or 'best'."""
  if which not in CHECKPOINT_DIRS:
    raise ConfigError(f'checkpoint={which!r} is not one of {tuple(CHECKPOINT_DIRS)}')
  return os.path.join(workdir, CHECKPOINT_DIRS[which])


def has_checkpoints(workdir: str, which: str = 'latest') -> bool:
  return bool(checkpoint_steps(checkpoint_dir(workdir, which)))


# ----------------------------------------------------------------------------- config.json

def _typed(value: Any, like: Any = None) -> Any:
  """A JSON value as a config field: lists as tuples, dicts as ConfigDicts."""
  if isinstance(value, dict):
    out = like if isinstance(like, ml_collections.ConfigDict) else ml_collections.ConfigDict()
    for k, v in value.items():
      current = out.get(k) if k in out else None
      if k in out and v is None:
        continue   # keep the template's typed placeholder
      out[k] = _typed(v, current)
    return out
  if isinstance(value, list):
    return tuple(_typed(v) for v in value)
  return value


def config_from_json(text: str, folder: str | None = None) -> ml_collections.ConfigDict:
  """An experiment config from its JSON (WORKDIR/config.json), typed like the schema.

  The schema gives every common field its type (so `--config.model.num_heads=8`
  overrides an unset model field); fields of a task's own are taken as they are.
  `folder`: where the file lies, for `resolve_relative_paths`.
  """
  config = _typed(json.loads(text), config_schema.get_config())
  return resolve_relative_paths(config, folder) if folder is not None else config


def resolve_relative_paths(config: ml_collections.ConfigDict,
                           folder: str) -> ml_collections.ConfigDict:
  """A converted workdir's config.json names its own folder relatively (init_from '.',
  tokenizer 'hf:hf', as `tools.convert import` writes them): they are made absolute against
  the folder holding the file, so a copied or moved workdir keeps working."""
  if not config.get('pretrained'):
    return config
  if config.get('init_from') and not os.path.isabs(config.init_from):
    config.init_from = os.path.normpath(os.path.join(os.path.abspath(folder), config.init_from))
  spec = config.get('tokenizer') or ''
  if spec.startswith('hf:') and not os.path.isabs(spec[3:]):
    config.tokenizer = 'hf:' + os.path.normpath(os.path.join(os.path.abspath(folder), spec[3:]))
  return config


def _json_value(path: str) -> Any:
  """The JSON value in `path`; None when the file is missing, truncated or not JSON."""
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _json_file(path: str) -> dict | None:
  """The JSON object in `path`; None when the file is missing, truncated or not JSON."""
  value = _json_value(path)
  return value if isinstance(value, dict) else None


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a config. A missing or corrupt one (a kill or a full disk while it
  was written) gives way to the newest checkpoint's own copy, with a warning; a ConfigError
  when neither exists."""
  path = os.path.join(workdir, CONFIG_JSON)
  saved = _json_file(path)
  if saved is None:
    steps = checkpoint_steps(os.path.join(workdir, CHECKPOINTS))
    copy, where = _saved_config(workdir, steps) if steps else (None, '')
    if copy is None:
      state = 'is not valid JSON' if os.path.isfile(path) else 'does not exist'
      raise ConfigError(f'{path} {state}: pass --config=configs/NAME.py (with the '
                        'overrides the run was trained with), or point --workdir at a '
                        'trained run')
    log.warning('%s is missing or unreadable: using the config saved with the newest '
                'checkpoint (%s)', path, where)
    saved = copy
  config = resolve_relative_paths(_typed(saved, config_schema.get_config()), workdir)
  return use_kept_tokenizer(config, workdir)


def use_kept_tokenizer(config: ml_collections.ConfigDict,
                       workdir: str) -> ml_collections.ConfigDict:
  """A run that read text with a tokenizer.json from elsewhere ('hf:DIR') kept a copy under
  WORKDIR/hf/ (`record_tokenizer`): eval.py and generate.py read that copy, so a workdir
  copied to another machine needs neither DIR nor the data directory for its tokenizer."""
  spec = config.get('tokenizer') or ''
  kept = os.path.join(os.path.abspath(workdir), HF_DIR)
  if spec.startswith('hf:') and os.path.isfile(os.path.join(kept, 'tokenizer.json')):
    config.tokenizer = 'hf:' + kept
  return config


def write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  """WORKDIR/config.json (process 0), atomically: a temporary file renamed over it, so a kill
  or a full disk never leaves a truncated config.json."""
  if jax.process_index() == 0:
    _write_atomically(os.path.join(workdir, CONFIG_JSON), config.to_json_best_effort(indent=2))


def _write_atomically(path: str, content: str | bytes) -> None:
  """`content` (text, or bytes as they are) into `path` through a temporary file renamed
  over it."""
  binary = isinstance(content, bytes)
  with open(path + '.tmp', 'wb' if binary else 'w', encoding=None if binary else 'utf-8') as f:
    f.write(content)
  os.replace(path + '.tmp', path)


def append_command(workdir: str, text: str) -> None:
  """Appends how this launch was made (tools.cli.command_text) to WORKDIR/command.txt."""
  if text and jax.process_index() == 0:
    with open(os.path.join(workdir, COMMAND_TXT), 'a') as f:
      f.write(text)


def log_to_file(workdir: str) -> logging.Handler | None:
  """Copies this project's log lines to WORKDIR/train.log (process 0); remove it when done."""
  if jax.process_index() != 0:
    return None
  handler = logging.FileHandler(os.path.join(workdir, TRAIN_LOG))
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
  log.addHandler(handler)
  return handler


# ----------------------------------------------------------------------------- the lock

class Lock:
  """One training per workdir: an exclusive lock on WORKDIR/train.lock (one file per process).

  flock is released by the OS when the process ends, however it ends (a crash
  or kill -9 included), so a stale file never blocks a new run; the file holds
  the owner's pid, host and command for the message.
  """

  def __init__(self, workdir: str):
    suffix = f'.{jax.process_index()}' if jax.process_count() > 1 else ''
    self.path = os.path.join(workdir, f'{LOCK}{suffix}')
    try:
      self._file = open(self.path, 'a+')
    except OSError as e:   # a directory of that name, no permission
      raise TrainingError(f'cannot take the lock {self.path} ({e.strerror}): remove or rename '
                          'it, or train in another --workdir') from None
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      owner = self._file.read().strip() or 'unknown'
      self._file.close()
      raise TrainingError(
          f'{workdir} is in use by another training process ({owner}). Wait for it to finish '
          'or stop it, or train in another --workdir.') from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f'pid {os.getpid()} on {socket.gethostname()} since '
                     f'{time.strftime("%Y-%m-%d %H:%M:%S")}: {" ".join(sys.argv)}\n')
    self._file.flush()

  def release(self) -> None:
    if not self._file.closed:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()


# ----------------------------------------------------------------------------- tokenizer

TOKENIZER_FINGERPRINT = 'tokenizer_fingerprint.txt'


def tokenizer_fingerprint(workdir: str) -> str | None:
  """The fingerprint of the tokenizer WORKDIR's checkpoints were trained (or converted) with."""
  if os.path.basename(os.path.normpath(workdir)) == CHECKPOINTS:   # init_from may name it
    workdir = os.path.dirname(os.path.normpath(workdir))
  try:
    with open(os.path.join(workdir, TOKENIZER_FINGERPRINT), encoding='utf-8') as f:
      return f.read().strip() or None
  except OSError:
    return None


def check_tokenizer(workdir: str, tokenizer, what: str) -> None:
  """ConfigError, naming both, when `tokenizer` is not the one WORKDIR recorded (no record,
  or a tokenizer without a fingerprint, e.g. images: nothing to check)."""
  now = getattr(tokenizer, 'fingerprint', None)
  saved = tokenizer_fingerprint(workdir)
  if now is not None and saved is not None and now != saved:
    raise ConfigError(f'{workdir} was trained with the tokenizer {saved}, but {what} reads '
                      f'the text with {now}: the token ids would mean other words. Use the '
                      "checkpoint's tokenizer (config.tokenizer, dataset, vocab_size), or "
                      'train in a new --workdir from scratch')


# A pretrained tokenizer's files, kept under WORKDIR/hf/ by the runs that read text with it.
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json')
SPECIAL_IDS = 'special_ids.json'   # beside them: the ids the tokenizer was read with


def record_tokenizer(workdir: str, tokenizer) -> None:
  """WORKDIR/tokenizer_fingerprint.txt (process 0, atomically) for `check_tokenizer`; the
  run's own tokenizer (characters, words, SentencePiece: `tokenizers.kept_files`) beside it,
  for `kept_tokenizer`; a tokenizer.json read from elsewhere (`config.tokenizer='hf:DIR'`) is copied with its
  config under WORKDIR/hf/, so the workdir keeps its tokenizer and an export carries it."""
  now = getattr(tokenizer, 'fingerprint', None)
  if now is None or jax.process_index() != 0:
    return
  if tokenizer_fingerprint(workdir) != now:
    _write_atomically(os.path.join(workdir, TOKENIZER_FINGERPRINT), now + '\n')
  for name, content in tokenizers.kept_files(tokenizer).items():   # characters, words, spm
    target = os.path.join(workdir, name)
    if _read_bytes(target) != content:
      _write_atomically(target, content)
  path = getattr(tokenizer, 'path', None)   # a tokenizer.json (HFTokenizer)
  if not path:
    return
  source = os.path.dirname(os.path.abspath(path))
  kept = os.path.join(os.path.abspath(workdir), HF_DIR)
  if source != kept:
    os.makedirs(kept, exist_ok=True)
    for name in TOKENIZER_FILES:
      if os.path.isfile(os.path.join(source, name)):
        with open(os.path.join(source, name), encoding='utf-8') as f:
          _write_atomically(os.path.join(kept, name), f.read())
    # The special-token ids as read (some come from the model's config.json, not kept).
    _write_atomically(os.path.join(kept, SPECIAL_IDS), json.dumps(tokenizer.special_ids()) + '\n')


DATA_INFO = 'data_info.json'


def record_data_info(workdir: str, info: dict | None) -> None:
  """WORKDIR/data_info.json (process 0, atomically): what using the trained model needs from
  its data besides the tokenizer (`Task.kept_info`: a classifier's class names, an image
  model's preprocessing), for `kept_data_info`. Nothing when there is none."""
  if not info or jax.process_index() != 0:
    return
  text = json.dumps(info, ensure_ascii=False, sort_keys=True) + '\n'
  path = os.path.join(workdir, DATA_INFO)
  if _read_bytes(path) != text.encode('utf-8'):
    _write_atomically(path, text)


def kept_data_info(workdir: str) -> dict | None:
  """What `record_data_info` kept; None when nothing was (or it is unreadable)."""
  return _json_file(os.path.join(workdir, DATA_INFO))


def _read_bytes(path: str) -> bytes | None:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except OSError:
    return None


def kept_tokenizer(workdir: str):
  """The tokenizer WORKDIR's run read its text with, from the workdir alone (`record_tokenizer`
  kept it): its own (WORKDIR/tokenizer_vocab.json or tokenizer_spm.model) or a pretrained one's
  (WORKDIR/hf/). None when the workdir keeps none whose fingerprint is the recorded one (a
  run from before tokenizers were kept, a model of images)."""
  saved = tokenizer_fingerprint(workdir)
  if saved is None:
    return None
  tokenizer = tokenizers.load_kept(workdir)
  hf = os.path.join(workdir, HF_DIR)
  if tokenizer is None and os.path.isfile(os.path.join(hf, 'tokenizer.json')):
    tokenizer = tokenizers.HFTokenizer.from_dir(hf)
  return tokenizer if getattr(tokenizer, 'fingerprint', None) == saved else None


# ----------------------------------------------------------------------------- resuming

# Fields no resumed run may change: they define the model, its data and the batches.
# Each task adds its own (Task.resume_fixed).
RESUME_FIXED = ('task', 'dataset', 'seed', 'batch_size', 'seq_len', 'vocab_size',
                'model_preset', 'model', 'grad_accum_steps', 'packing')
# Fields it may change, with a warning: the optimizer and schedule.
RESUME_WARN = ('optimizer', 'learning_rate', 'schedule', 'warmup_steps', 'min_learning_rate',
               'b1', 'b2', 'eps', 'weight_decay', 'weight_decay_mask', 'grad_clip_norm',
               'label_smoothing', 'num_train_steps')


def _saved_config(workdir: str, steps: list[int]) -> tuple[dict | None, str]:
  """The config the checkpoints were trained with: config.json, or, when it is missing or
  corrupt (a workdir moved while its last save was written, a kill while it was written),
  the newest checkpoint's copy."""
  path = os.path.join(workdir, CONFIG_JSON)
  saved = _json_file(path)
  if saved is not None:
    return saved, path
  meta_path = os.path.join(workdir, CHECKPOINTS, str(steps[-1]), 'meta', 'metadata')
  try:
    saved = ckpt_lib.read_meta(os.path.join(workdir, CHECKPOINTS), steps[-1])['config']
    return json.loads(saved), meta_path
  except (ValueError, KeyError, TypeError):
    return None, meta_path


def check_resume(config: ml_collections.ConfigDict, workdir: str,
                 task_fixed: Sequence[str] = ()) -> None:
  """Before a run resumes from WORKDIR's checkpoints: refuses model/data changes, warns of others.

  Compares `config` with the config the checkpoints were trained with. Raises
  ConfigError listing every changed field of RESUME_FIXED + `task_fixed` (the
  task's own model and data fields) and the two ways out; logs a warning
  listing changed optimizer or schedule fields. Does nothing for a fresh workdir.
  """
  steps = checkpoint_steps(os.path.join(workdir, CHECKPOINTS))
  if not steps:
    return
  saved, path = _saved_config(workdir, steps)
  if saved is None:
    log.warning('%s has checkpoints but no config.json, and checkpoint %d has no readable '
                'config: resuming without checking that the config is the same', workdir,
                steps[-1])
    return
  saved = flax.traverse_util.flatten_dict(saved, sep='.')
  now = flax.traverse_util.flatten_dict(json.loads(config.to_json_best_effort()), sep='.')
  changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
  fixed_fields = set(RESUME_FIXED) | set(task_fixed)
  fixed = [k for k in changed if k in fixed_fields or k.split('.')[0] in fixed_fields]
  warned = [k for k in changed if k.split('.')[0] in RESUME_WARN]

  def listed(keys):
    return ''.join(f'\n  - {k}: {saved.get(k)!r} -> {now.get(k)!r}' for k in keys)
  if fixed and not config.get('allow_config_change', False):
    raise ConfigError(
        f'{workdir} holds checkpoints of another model or data: these fields differ from '
        f'{path} (saved -> now):{listed(fixed)}\nTrain in a new --workdir, or resume '
        'with the new values anyway with --config.allow_config_change=True.')
  if fixed:
    log.warning('Resuming with changed model/data fields (allow_config_change=True):%s',
                listed(fixed))
  if warned:
    log.warning('Resuming with changed optimizer/schedule fields:%s', listed(warned))


# ----------------------------------------------------------------------------- restoring

def _checkpoints_folder(path: str, which: str = 'latest') -> str:
  """`path` is a workdir (its `which` checkpoints) or a folder of checkpoints itself."""
  sub = checkpoint_dir(path, which)
  return sub if os.path.isdir(sub) or not checkpoint_steps(path) else path


def _abstract_from_metadata(directory: str, step: int) -> Any:
  """A NumPy restore target shaped like the checkpoint's own arrays (no model needed)."""
  # Absolute: Orbax finds no item metadata under a relative path (orbax-checkpoint 0.12.8).
  state_dir = os.path.abspath(os.path.join(directory, str(step), 'state'))
  try:
    with ocp.StandardCheckpointer() as reader:
      meta = reader.metadata(state_dir)
  except Exception as e:  # noqa: BLE001  Orbax raises many types for missing or garbled files
    raise CheckpointError(f'cannot read the metadata of {state_dir}: {type(e).__name__}: '
                          f'{str(e)[:300]}') from e
  tree = getattr(meta, 'item_metadata', meta)
  return jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), dict(tree))


def require_checkpoints(path: str, which: str = 'latest') -> str:
  """The folder of `which` checkpoints of `path` (a workdir or such a folder), once it is known
  to hold one; else a CheckpointError saying so and what to do (checked before anything
  is built)."""
  directory = _checkpoints_folder(path, which)
  if not checkpoint_steps(directory):
    hint = {'avg': ', then python -m tools.average', 'best': ' with config.best_metric set'}
    raise CheckpointError(
        f'No checkpoint in {directory}: nothing to restore. Train first (train.py '
        f'--workdir={path}{hint.get(which, "")}), or point at a workdir that holds one.')
  return directory


def restore(path: str, abstract_state: Any = None, step: int | None = None,
            which: str = 'latest', checkpointer: ckpt_lib.Checkpointer | None = None,
            allow_unverified: bool = False) -> tuple[Any, dict, int]:
  """(state, meta, step) of the newest good (or `step`) checkpoint: the one restore path.

  `path` is a workdir (its `which` checkpoints: 'latest', 'avg', 'best') or a
  folder of checkpoints. `abstract_state` gives the shapes and shardings to
  restore into (None: the checkpoint's own shapes, as NumPy arrays). Every
  array is checked against the fingerprints saved with it
  (`Checkpointer.restore`: a damaged newest checkpoint falls back to the one
  before with a warning; so does one whose arrays have no saved fingerprint,
  unless `allow_unverified`). `checkpointer`: the training loop's own, so that
  the steps it fell back from are set aside at its first save.

  Raises CheckpointError when there is no checkpoint to restore (never a
  random initialization in its place) or none is readable.
  """
  directory = (checkpointer.directory if checkpointer is not None
               else require_checkpoints(path, which))
  steps = checkpoint_steps(directory)
  if step is not None and step not in steps:
    raise CheckpointError(f'No checkpoint for step {step} in {directory}; available steps: '
                          f'{steps}')
  if abstract_state is None:
    abstract_state = _abstract_from_metadata(directory, steps[-1] if step is None else step)
  own = checkpointer is None
  if own:
    checkpointer = ckpt_lib.Checkpointer(directory, keep=10**6,
                                         allow_unverified=allow_unverified)
  try:
    state, meta = checkpointer.restore(abstract_state, step)
  finally:
    if own:
      checkpointer.close()
  restored = int(meta.get('step', step if step is not None else steps[-1]))
  log.info('Restored checkpoint at step %d from %s', restored, directory)
  return state, meta, restored


def restore_params(path: str, step: int | None = None, allow_unverified: bool = False) -> dict:
  """The params (NumPy) of the newest good (or `step`) checkpoint of a workdir or its
  checkpoints/ folder, verified (config.init_from, tools.convert export)."""
  if not os.path.isdir(path):
    raise CheckpointError(f'{path!r}: no such directory')
  state, _, _ = restore(path, step=step, allow_unverified=allow_unverified)
  return state['params']


def average_checkpoints(workdir: str, abstract_state: Any, num: int = 5,
                        output_dir: str | None = None,
                        allow_unverified: bool = False) -> tuple[int, list[int]]:
  """Averages the params of the last `num` checkpoints into a new checkpoint.

  Every checkpoint is verified as it is read (`restore`: a bad one is a
  CheckpointError naming it). The result keeps the rest of the latest state
  (step, optimizer state) and is saved at the latest step under
  WORKDIR/checkpoints_avg. Returns (step, averaged steps).
  """
  directory = checkpoint_dir(workdir)
  steps = checkpoint_steps(directory)[-num:]
  if not steps:
    raise CheckpointError(f'No checkpoints to average in {directory}')
  total, latest = None, None
  for step in steps:
    state, _, _ = restore(workdir, abstract_state, step, allow_unverified=allow_unverified)
    params = jax.tree.map(lambda x: x.astype(jnp.float32), state.params)
    total = params if total is None else jax.tree.map(jnp.add, total, params)
    latest = state
  avg = jax.tree.map(lambda t, p: (t / len(steps)).astype(p.dtype), total, latest.params)
  out = ckpt_lib.Checkpointer(output_dir or checkpoint_dir(workdir, 'avg'), keep=10**6)
  out.save(steps[-1], latest.replace(params=avg), meta={'averaged_steps': steps})
  out.close()
  return steps[-1], steps
