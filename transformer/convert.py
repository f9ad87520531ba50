"""Hugging Face checkpoints as workdirs of this library, and workdirs back as Hugging Face
checkpoints. The command is `python -m tools.convert` (tools/convert.py); this module
is what it calls.

A converted workdir holds
  WORKDIR/checkpoints/0/   an Orbax checkpoint {'params': ...} (with fingerprints, like
                           every checkpoint train.py writes)
  WORKDIR/config.json      an experiment config (written by the command): the task of
                           the model family, its TransformerConfig fields, `init_from`
                           pointing at WORKDIR and `pretrained` (where it came from)
  WORKDIR/hf/              the source's config.json and tokenizer files
so `train.py --config=WORKDIR/config.json` fine-tunes from it (transformer/pretrained.py)
and `tools.visualize attention --hf=WORKDIR` draws its attention.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from transformer import checkpoint as ckpt_lib
from transformer import config_schema, hf
from transformer import workdir as workdir_lib
from transformer.model_config import TransformerConfig

# The family's task (config.task) by model class.
TASKS = {'DecoderLM': 'lm', 'EncoderOnly': 'mlm', 'EncoderDecoder': 'translation',
         'ViT': 'classification'}
# Files of a Hugging Face model directory kept beside a conversion (tokenizers, configs).
KEPT_FILES = ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
              'vocab.json', 'merges.txt', 'spiece.model', 'special_tokens_map.json',
              'preprocessor_config.json', 'generation_config.json')
HF_SUBDIR = workdir_lib.HF_DIR


def is_converted(config, workdir: str) -> bool:
  """Whether `workdir` is one `tools.convert import` wrote (its config's init_from is itself),
  not a run fine-tuned from one."""
  return bool(config.get('pretrained')) and bool(config.get('init_from')) and (
      os.path.abspath(config.init_from) == os.path.abspath(workdir))


def fetch(source: str) -> str:
  """A local Hugging Face model directory: `source` itself, or the hub model `source`
  downloaded by huggingface_hub (needs the package and internet)."""
  if os.path.isdir(source):
    return source
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise hf.ConversionError(
        f'{source!r} is not a local directory. To download it by hub name, install '
        'huggingface_hub (pip install huggingface_hub) and be online; or download it '
        'elsewhere (huggingface-cli download NAME --local-dir DIR) and pass DIR') from None
  try:
    path = snapshot_download(source, allow_patterns=list(KEPT_FILES) + ['*.safetensors',
                                                                         '*.safetensors.index.json'])
    if not any(n.endswith('.safetensors') for n in os.listdir(path)):
      path = snapshot_download(source, allow_patterns=list(KEPT_FILES) + ['pytorch_model*.bin'])
  except Exception as e:  # offline, unknown name, gated model: the hub says which
    raise hf.ConversionError(f'cannot download {source!r} from the Hugging Face hub: '
                             f'{type(e).__name__}: {e}') from e
  return path


def model_fields(cfg: TransformerConfig) -> dict[str, Any]:
  """cfg as experiment-config `model` fields (JSON values; vocab_size and the engine's
  fields are left to the experiment)."""
  out = {}
  for f in dataclasses.fields(cfg):
    if f.name in config_schema.ENGINE_FIELDS:
      continue
    value = getattr(cfg, f.name)
    if f.name in ('dtype', 'param_dtype'):
      value = np.dtype(value).name
    out[f.name] = list(value) if isinstance(value, tuple) else value
  return out


def import_hf(source: str, workdir: str) -> tuple[TransformerConfig, str, dict]:
  """Converts the Hugging Face model `source` (a directory or hub name) into WORKDIR's
  checkpoint and hf/ files. Returns (model config, model class name, HF config.json).

  Refuses a workdir that already holds checkpoints (it would mix two models).
  """
  ckpt_dir = workdir_lib.checkpoint_dir(workdir)
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise ckpt_lib.CheckpointError(f'{ckpt_dir} already holds checkpoints: convert into a new '
                                   '--workdir')
  path = fetch(source)
  hf_config, tensors = hf.read_checkpoint(path)   # safetensors: read tensor by tensor
  cfg, params = hf.from_hf(hf_config, tensors)
  del tensors
  params = _to_device(params)
  kind = hf.ARCHITECTURES[hf_config['model_type']].model
  os.makedirs(os.path.join(workdir, HF_SUBDIR), exist_ok=True)
  for name in KEPT_FILES:
    if os.path.isfile(os.path.join(path, name)):
      shutil.copy(os.path.join(path, name), os.path.join(workdir, HF_SUBDIR, name))
  checkpointer = ckpt_lib.Checkpointer(ckpt_dir, keep=1)
  try:
    checkpointer.save(0, {'params': params},
                      meta={'converted_from': source, 'model_type': hf_config['model_type']})
    checkpointer.wait()
  finally:
    checkpointer.close()
  return cfg, kind, hf_config


def _to_device(params: dict, devices: list | None = None) -> dict:
  """The converted arrays as JAX arrays, one at a time, each host copy dropped once moved: the
  peak is about one model and one array, not two models (on a CPU host the device is host
  memory too). With several devices (default: this process's) each array is split over all
  of them along its largest dimension they divide (`shard_placement`), so no device holds
  more than its share of a model too large for one; Orbax saves the shards as they lie, and
  a run restores them into its own sharding."""
  devices = list(devices if devices is not None else jax.local_devices())
  mesh = jax.sharding.Mesh(np.asarray(devices), ('shards',))
  leaves, treedef = jax.tree.flatten(params)
  del params
  for i in range(len(leaves)):
    spec = shard_placement(np.shape(leaves[i]), len(devices))
    leaves[i] = jax.device_put(leaves[i], jax.sharding.NamedSharding(mesh, spec))
  return jax.tree.unflatten(treedef, leaves)


def shard_placement(shape: tuple[int, ...], count: int) -> jax.sharding.PartitionSpec:
  """Where `_to_device` splits an array of `shape` over `count` devices: its largest dimension
  that `count` divides (the first of equals), or nowhere (a copy on each device: a bias, a
  norm scale, or a single device)."""
  axes = [a for a, n in enumerate(shape) if count > 1 and n % count == 0]
  if not axes:
    return jax.sharding.PartitionSpec()
  best = max(axes, key=lambda a: (shape[a], -a))
  return jax.sharding.PartitionSpec(*[('shards' if a == best else None)
                                      for a in range(len(shape))])


def export_hf(cfg: TransformerConfig, params: dict, kind: str, out: str,
              workdir: str | None = None, tokenizer_dir: str | None = None) -> str:
  """Writes OUT/config.json and OUT/model.safetensors: the model in the Hugging Face
  layout of its family (`hf.export_model_type`: a DecoderLM as GPT-2, or Llama / Qwen2
  with rotary positions; an EncoderOnly as BERT; an EncoderDecoder as T5; a ViT as ViT).
  A workdir of `import` (`workdir`) gives its tokenizer and preprocessing files to the
  export, and its special-token ids to config.json; a trained run gives the tokenizer.json
  it read (kept under WORKDIR/hf/, or `tokenizer_dir`: config.tokenizer's folder). Returns
  the model_type."""
  from safetensors.numpy import save_file
  model_type = hf.export_model_type(kind, cfg)
  params = jax.tree.map(np.asarray, params)
  hf_config = hf.hf_config_of(model_type, cfg, params)
  tensors = hf.to_hf(model_type, cfg, params)
  kept = os.path.join(workdir, HF_SUBDIR) if workdir else None
  if kept and os.path.isfile(os.path.join(kept, 'config.json')):
    with open(os.path.join(kept, 'config.json'), encoding='utf-8') as f:
      source = json.load(f)
    for key in ('bos_token_id', 'eos_token_id', 'pad_token_id', 'decoder_start_token_id',
                'id2label', 'label2id'):
      if key in source:
        hf_config[key] = source[key]
  os.makedirs(out, exist_ok=True)
  save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()},
            os.path.join(out, 'model.safetensors'),
            metadata={'format': 'pt'})
  with open(os.path.join(out, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump(hf_config, f, indent=2)
  if tokenizer_dir and not (kept and os.path.isfile(os.path.join(kept, 'tokenizer.json'))):
    kept = tokenizer_dir   # a run from before runs kept their tokenizer under WORKDIR/hf/
  if kept and os.path.isdir(kept):
    for name in KEPT_FILES:
      if name != 'config.json' and os.path.isfile(os.path.join(kept, name)):
        shutil.copy(os.path.join(kept, name), os.path.join(out, name))
  return model_type
