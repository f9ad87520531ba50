"""Does Hugging Face's own code read what `tools.convert export` writes? (run by hand)

  # 1. this library's environment: export a trained workdir, and its logits on real data
  python -m tools.convert export --workdir=runs/mlm_ptb --out=runs/mlm_ptb_hf
  python benchmarks/hf_export_check.py ours --workdir=runs/mlm_ptb --hf_dir=runs/mlm_ptb_hf
  # 2. an environment with torch + transformers (never a CI requirement)
  python benchmarks/hf_export_check.py theirs --hf_dir=runs/mlm_ptb_hf

`ours` runs the workdir's model (EncoderOnly: the masked-LM head; DecoderLM: the
LM logits) on the first rows of its eval split (BERT's masking applied with a
fixed key; no padding) and writes HF_DIR/check.npz;
`theirs` loads HF_DIR with transformers' AutoModelForMaskedLM /
AutoModelForCausalLM, runs the same inputs and prints the largest absolute
difference of the logits, with the versions of torch and transformers.
"""

import argparse
import os
import sys

import numpy as np

ROWS = 8


def ours(workdir: str, hf_dir: str) -> None:
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import jax
  import jax.numpy as jnp

  from transformer import inference, models, tasks
  from transformer import workdir as workdir_lib
  from transformer.tasks import mlm
  config = workdir_lib.read_config(workdir)
  task = tasks.make_task(config, workdir)
  cfg, params, kind = inference.load_model(workdir)
  cfg = cfg.replace(deterministic=True)
  batch = next(iter(task.data.eval_batches(config.eval_split, ROWS)))
  tokens = jnp.asarray(batch['inputs'][:ROWS])
  if kind == 'EncoderOnly':   # every position attends to every other, as in training
    tokens, _ = mlm.mask_tokens(jax.random.PRNGKey(0), tokens, jnp.ones(tokens.shape, bool),
                                task.mask_id, task.data.vocab_size)
    logits = models.EncoderOnly(cfg).apply({'params': params}, tokens,
                                           attention_mask=jnp.ones_like(tokens))
  else:
    logits = models.DecoderLM(cfg).apply({'params': params}, tokens)
  np.savez(os.path.join(hf_dir, 'check.npz'), tokens=np.asarray(tokens),
           logits=np.asarray(logits))
  print(f'wrote {hf_dir}/check.npz: {kind}, tokens {tokens.shape}, logits {logits.shape}')


def theirs(hf_dir: str) -> None:
  import torch
  import transformers
  data = np.load(os.path.join(hf_dir, 'check.npz'))
  config = transformers.AutoConfig.from_pretrained(hf_dir)
  auto = (transformers.AutoModelForMaskedLM if config.model_type == 'bert'
          else transformers.AutoModelForCausalLM)
  model = auto.from_pretrained(hf_dir).eval()
  tokens = torch.from_numpy(data['tokens'].astype(np.int64))
  with torch.no_grad():
    logits = model(input_ids=tokens, attention_mask=torch.ones_like(tokens)).logits.numpy()
  diff = np.abs(logits - data['logits']).max()
  print(f'{type(model).__name__} from {hf_dir}: logits {logits.shape}, max |HF - ours| = '
        f'{diff:.3g} (max |logit| {np.abs(logits).max():.3g}); torch {torch.__version__}, '
        f'transformers {transformers.__version__}')


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('side', choices=['ours', 'theirs'])
  parser.add_argument('--workdir')
  parser.add_argument('--hf_dir', required=True)
  args = parser.parse_args()
  ours(args.workdir, args.hf_dir) if args.side == 'ours' else theirs(args.hf_dir)
