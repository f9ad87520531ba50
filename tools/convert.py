"""Hugging Face checkpoints in and out of this library.

  python -m tools.convert import --hf=DIR_OR_HUB_NAME --workdir=OUT
  python -m tools.convert export --workdir=DIR --out=HF_DIR [--step=N]

import: a Hugging Face BERT, GPT-2, Llama, Qwen2, Mistral, T5 or ViT (a local directory with config.json
and model.safetensors, sharded safetensors or pytorch_model.bin; or a hub name
such as bert-base-uncased when online with huggingface_hub installed) becomes a
workdir of this library (transformer/convert.py): OUT/checkpoints/0 (Orbax),
OUT/config.json (the family's task and the model's fields, init_from=OUT) and
OUT/hf/ (config and tokenizer files). Then
  python -m tools.visualize attention --hf=OUT --text="..."     # BERT, GPT-2
  python train.py --config=OUT/config.json --config.dataset=... --workdir=RUN
fine-tunes from it: every task starts a fresh run from config.init_from, a ViT
at another resolution or class count included (transformer/pretrained.py); the
data must use the checkpoint's vocabulary (text) or channels (images).

export: a workdir trained by train.py (lm: a GPT-2- or Llama-shaped DecoderLM;
mlm: a BERT-shaped EncoderOnly; translation: a T5-shaped EncoderDecoder;
classification: a ViT with a class token) or converted by `import` (any of them)
becomes HF_DIR/config.json + model.safetensors, which transformers'
from_pretrained reads; a converted workdir's tokenizer files and special-token
ids go with it. A model that a Hugging Face architecture cannot express (sinusoidal
positions for GPT-2, say) is refused with the fields named.
Unknown, missing or mis-shaped tensors stop either direction with one message.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from tools import cli

FLAGS = flags.FLAGS   # its flags are defined only when run as a command (the end of the file):
                      # tools.visualize defines its own --hf and --workdir


def _define_flags() -> None:
  flags.DEFINE_string('hf', None, 'import: a Hugging Face model directory or hub name.')
  flags.DEFINE_string('workdir', None, 'import: the workdir to write; export: the one to read.')
  flags.DEFINE_string('out', None, 'export: the Hugging Face model directory to write.')
  flags.DEFINE_integer('step', None, 'export: the checkpoint step (default: the latest).')


# Fine-tuning defaults of a converted workdir's config, by task: AdamW, cosine decay after a
# short warmup, the learning rates fine-tuning papers use for each family (BERT 5e-5, GPT-2
# 5e-5, T5 1e-4 with AdamW, ViT 1e-4), gradient clipping at 1.0.
FINE_TUNING = {'lm': 5e-5, 'mlm': 5e-5, 'translation': 1e-4, 'classification': 1e-4}


def converted_config(cfg, kind: str, hf_config: dict, source: str, workdir: str):
  """The experiment config of a converted workdir (what OUT/config.json holds): the family's
  task with every task field at its default (so --config.FIELD=... works for each), the
  model's fields, fine-tuning defaults (FINE_TUNING), no dataset (the user names theirs with
  --config.dataset=...), and init_from (and a text model's tokenizer) relative to the workdir."""
  from transformer import config_schema, convert, tasks
  c = config_schema.get_config()
  c.task = convert.TASKS[kind]
  defaults, _ = tasks.task_class(c).settings_class.read(c)
  for name, value in defaults.describe().items():
    if name not in c:
      c[name] = value
  for k, v in convert.model_fields(cfg).items():
    c.model[k] = tuple(v) if isinstance(v, list) else v
  if kind != 'ViT':
    c.seq_len = min(cfg.max_len, 512)
  c.dataset = ''
  c.optimizer, c.schedule, c.learning_rate = 'adamw', 'cosine', FINE_TUNING[c.task]
  c.warmup_steps, c.num_train_steps, c.grad_clip_norm = 100, 1000, 1.0
  c.min_learning_rate, c.weight_decay = 0.0, 0.01
  # Relative to the workdir (workdir.resolve_relative_paths): a moved copy keeps working.
  c.init_from = '.'
  if c.task != 'classification' and os.path.isfile(os.path.join(workdir, convert.HF_SUBDIR,
                                                                'tokenizer.json')):
    c.tokenizer = f'hf:{convert.HF_SUBDIR}'   # fine-tuning reads text with the model's own
  if c.task == 'translation':   # T5's task prefix for the config's direction, if it has one
    task = f'translation_{c.source_lang}_to_{c.target_lang}'
    c.source_prefix = ((hf_config.get('task_specific_params') or {}).get(task) or {}).get(
        'prefix', '')
  c.pretrained = {'source': source, 'model_type': hf_config['model_type'], 'model': kind,
                  'vocab_size': int(cfg.vocab_size)}
  return c


def main(argv):
  if len(argv) != 2 or argv[1] not in ('import', 'export'):
    raise app.UsageError('Usage: python -m tools.convert import|export --flags ...')
  from transformer import convert, inference, logs
  from transformer import workdir as workdir_lib
  logs.setup_logging()
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required')
  if argv[1] == 'import':
    if not FLAGS.hf:
      raise app.UsageError('import needs --hf=DIR (a Hugging Face model directory) or a hub name')
    cfg, kind, hf_config = convert.import_hf(FLAGS.hf, FLAGS.workdir)
    config = converted_config(cfg, kind, hf_config, FLAGS.hf, FLAGS.workdir)
    workdir_lib.write_config(config, FLAGS.workdir)
    if config.get('tokenizer'):   # its tokenizer.json: fine-tuning and generation check it
      workdir_lib.record_tokenizer(FLAGS.workdir, inference.pretrained_tokenizer(FLAGS.workdir))
    logs.log.info('Wrote %s: a %s (%s) with task %r; fine-tune with python train.py '
                  '--config=%s --workdir=RUN', FLAGS.workdir, kind, hf_config['model_type'],
                  config.task, os.path.join(FLAGS.workdir, workdir_lib.CONFIG_JSON))
  else:
    if not FLAGS.out:
      raise app.UsageError('export needs --out=DIR (the Hugging Face model directory to write)')
    cfg, params, kind = inference.load_model(FLAGS.workdir, FLAGS.step)
    spec = workdir_lib.read_config(FLAGS.workdir).get('tokenizer') or ''
    model_type = convert.export_hf(cfg, params, kind, FLAGS.out, FLAGS.workdir,
                                   tokenizer_dir=spec[3:] if spec.startswith('hf:') else None)
    logs.log.info('Wrote %s: %s', FLAGS.out, json.dumps(
        {'model_type': model_type, 'files': sorted(os.listdir(FLAGS.out))}))


if __name__ == '__main__':
  _define_flags()
  cli.run(main)
