"""Peak host memory of `tools.convert import` against the size of the checkpoint it reads.

  python benchmarks/import_memory.py [--arch=llama] [--mb=330] [--out=/tmp/import_memory]

Writes a checkpoint of random float32 weights (about --mb megabytes of model.safetensors:
GPT-2- or Llama-shaped, vocabulary 32,000, d_model 1,024, as many layers as fit), then runs
`python -m tools.convert import` on it in a fresh process, twice: as the code reads it
(tensors read from the memory-mapped file one at a time while they are converted,
hf.LazyWeights) and with every tensor read into memory first (`--eager`, the way it was
before). Each run's peak resident memory (ru_maxrss) is compared with the same command
on the tiny GPT-2 fixture, which measures what Python, JAX and Orbax take by
themselves. Prints one JSON line per run and the increments as multiples of the file size.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, 'tests', 'fixtures', 'hf', 'gpt2')

# Runs tools.convert as a command, optionally reading every tensor first, then prints the
# process's peak resident set (ru_maxrss is in KiB on Linux).
_CHILD = '''
import json, resource, runpy, sys
sys.path.insert(0, {repo!r})
if {eager}:
  from transformer import hf
  lazy = hf.read_weights
  hf.read_weights = lambda path: dict(lazy(path))
sys.argv = ['tools.convert', 'import', '--hf=' + {hf!r}, '--workdir=' + {workdir!r}]
try:
  runpy.run_module('tools.convert', run_name='__main__')
except SystemExit as e:
  assert not e.code, e.code
print(json.dumps({{'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
'''


def write_checkpoint(folder: str, mb: float, arch: str = 'gpt2') -> int:
  """A random GPT-2- or Llama-shaped model.safetensors of about `mb` MB in `folder`; its size
  in bytes."""
  from safetensors.numpy import save_file
  vocab, d, positions, ff = 32000, 1024, 1024, 4096
  rng = np.random.default_rng(0)

  def w(*shape):
    return (rng.standard_normal(shape, np.float32) * 0.02).astype(np.float32)

  ones = lambda n: np.ones(n, np.float32)
  if arch == 'gpt2':
    per_layer = (4 * d * d + 4 * d + 2 * 4 * d * d + 5 * d + 4 * d) * 4
    layers = max(1, int((mb * 1e6 - (vocab + positions) * d * 4) // per_layer))
    state = {'wte.weight': w(vocab, d), 'wpe.weight': w(positions, d),
             'ln_f.weight': ones(d), 'ln_f.bias': w(d)}
    for i in range(layers):
      p = f'h.{i}.'
      state.update({p + 'ln_1.weight': ones(d), p + 'ln_1.bias': w(d),
                    p + 'attn.c_attn.weight': w(d, 3 * d), p + 'attn.c_attn.bias': w(3 * d),
                    p + 'attn.c_proj.weight': w(d, d), p + 'attn.c_proj.bias': w(d),
                    p + 'ln_2.weight': ones(d), p + 'ln_2.bias': w(d),
                    p + 'mlp.c_fc.weight': w(d, 4 * d), p + 'mlp.c_fc.bias': w(4 * d),
                    p + 'mlp.c_proj.weight': w(4 * d, d), p + 'mlp.c_proj.bias': w(d)})
    config = {'model_type': 'gpt2', 'architectures': ['GPT2LMHeadModel'], 'vocab_size': vocab,
              'n_embd': d, 'n_layer': layers, 'n_head': 16, 'n_positions': positions,
              'n_ctx': positions, 'layer_norm_epsilon': 1e-5,
              'activation_function': 'gelu_new', 'bos_token_id': 0, 'eos_token_id': 0}
  else:   # Llama: every projection a torch Linear (out, in), so each one is transposed
    kv = d // 4
    per_layer = (2 * d * d + 2 * kv * d + 3 * d * ff + 2 * d) * 4
    layers = max(1, int((mb * 1e6 - 2 * vocab * d * 4) // per_layer))
    state = {'model.embed_tokens.weight': w(vocab, d), 'lm_head.weight': w(vocab, d),
             'model.norm.weight': ones(d)}
    for i in range(layers):
      p = f'model.layers.{i}.'
      state.update({p + 'input_layernorm.weight': ones(d),
                    p + 'post_attention_layernorm.weight': ones(d),
                    p + 'self_attn.q_proj.weight': w(d, d), p + 'self_attn.k_proj.weight': w(kv, d),
                    p + 'self_attn.v_proj.weight': w(kv, d), p + 'self_attn.o_proj.weight': w(d, d),
                    p + 'mlp.gate_proj.weight': w(ff, d), p + 'mlp.up_proj.weight': w(ff, d),
                    p + 'mlp.down_proj.weight': w(d, ff)})
    config = {'model_type': 'llama', 'architectures': ['LlamaForCausalLM'], 'vocab_size': vocab,
              'hidden_size': d, 'intermediate_size': ff, 'num_hidden_layers': layers,
              'num_attention_heads': 16, 'num_key_value_heads': 4, 'head_dim': 64,
              'max_position_embeddings': positions, 'rms_norm_eps': 1e-5, 'hidden_act': 'silu',
              'rope_theta': 10000.0, 'tie_word_embeddings': False, 'attention_bias': False,
              'mlp_bias': False, 'bos_token_id': 1, 'eos_token_id': 2}
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, 'model.safetensors')
  save_file(state, path, metadata={'format': 'pt'})
  with open(os.path.join(folder, 'config.json'), 'w') as f:
    json.dump(config, f)
  return os.path.getsize(path)


def peak_rss_mb(hf_dir: str, workdir: str, eager: bool) -> float:
  shutil.rmtree(workdir, ignore_errors=True)
  code = _CHILD.format(repo=REPO, eager=eager, hf=hf_dir, workdir=workdir)
  r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                     env=dict(os.environ, JAX_PLATFORMS='cpu'))
  if r.returncode:
    raise SystemExit(r.stderr[-3000:])
  return json.loads(r.stdout.strip().splitlines()[-1])['peak_rss_mb']


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--arch', choices=('gpt2', 'llama'), default='gpt2')
  parser.add_argument('--mb', type=float, default=330)
  parser.add_argument('--out', default='/tmp/import_memory')
  args = parser.parse_args()
  big = os.path.join(args.out, f'{args.arch}_big')
  size = write_checkpoint(big, args.mb, args.arch)
  size_mb = size / 2**20
  base = peak_rss_mb(FIXTURE, os.path.join(args.out, 'tiny'), eager=False)
  print(json.dumps({'run': 'tiny fixture (fixed cost)', 'peak_rss_mb': round(base, 1)}))
  for eager in (False, True):
    peak = peak_rss_mb(big, os.path.join(args.out, 'converted'), eager)
    print(json.dumps({'arch': args.arch, 'run': 'eager (whole checkpoint read first)' if eager else
                      'lazy (hf.LazyWeights)', 'checkpoint_mb': round(size_mb, 1),
                      'peak_rss_mb': round(peak, 1),
                      'increment_mb': round(peak - base, 1),
                      'increment_over_checkpoint': round((peak - base) / size_mb, 2)}))


if __name__ == '__main__':
  main()
