"""Side by side: our Shakespeare char train step against PyTorch's, in one process.

  pip install torch==2.13.0        # only for this benchmark; not a project requirement
  python benchmarks/torch_reference.py [--rounds=8] [--steps_per_round=25] [--config.FIELD=VALUE ...]

The PyTorch model is the same network as configs/lm_shakespeare_char.py
builds with transformer.DecoderLM, written the way a PyTorch user would write
it (nanoGPT's layout: one fused query/key/value projection and
torch.nn.functional.scaled_dot_product_attention, eager mode): learned token
and position embeddings, pre-LN blocks of causal self-attention and a
tanh-GELU MLP without biases, a final LayerNorm, logits through the tied
embedding; AdamW with the config's betas, weight decay on matrices only,
gradient clipping, and the same warmup + cosine learning rate. Both frameworks
train on the same batches (the task's own train_batch) in float32.

With --compile (the default) a second PyTorch copy of the model, from the
same initialization, runs through torch.compile (inductor) as a third
contender; if compiling fails (inductor needs a C++ compiler on a CPU) the
result says why and the eager comparison stands.

Timing: after warm-up (our first step compiles, and so does torch.compile's;
both compile times are reported), `--rounds` rounds each run
`--steps_per_round` steps of ours, then as many of eager PyTorch's, then of
compiled PyTorch's, so all see the same machine load; every step is timed
alone (our step synchronized with block_until_ready; PyTorch on the CPU is
synchronous). Printed: median and p10/p90 step time of each, the ratios
PyTorch / ours (> 1 means we are faster), and the mean training loss of each
over the last round as a check that all learn the same way.
"""

import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import print_results

flags.DEFINE_integer('rounds', 8, 'Interleaved rounds (ours, then PyTorch).')
flags.DEFINE_integer('steps_per_round', 25, 'Steps of each framework per round.')
flags.DEFINE_integer('warmup', 10, 'Untimed steps of each framework before the rounds.')
flags.DEFINE_integer('threads', 0, 'torch.set_num_threads (0: leave PyTorch\'s default).')
flags.DEFINE_bool('compile', True, 'Also time PyTorch with torch.compile (a third contender).')
flags.DEFINE_string('json_out', '', 'Optional path to write the results as JSON.')
config_flags.DEFINE_config_file('config', 'configs/lm_shakespeare_char.py', 'LM config.',
                                lock_config=False)
FLAGS = flags.FLAGS


def torch_model(config, vocab_size: int):
  """The same decoder-only LM in PyTorch (see the module docstring)."""
  import torch
  from torch import nn
  import torch.nn.functional as F

  m = config.model
  d, heads, layers, d_ff, length = m.d_model, m.num_heads, m.num_decoder_layers, m.d_ff, config.seq_len
  if m.use_bias or m.norm_position != 'pre' or m.activation != 'gelu' or not m.logits_via_embedding:
    raise ValueError('torch_reference mirrors the Shakespeare recipe: pre-LN, GELU, no biases, '
                     'tied logits; this config differs')

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      self.ln1 = nn.LayerNorm(d, eps=m.norm_epsilon)
      self.qkv = nn.Linear(d, 3 * d, bias=False)
      self.proj = nn.Linear(d, d, bias=False)
      self.ln2 = nn.LayerNorm(d, eps=m.norm_epsilon)
      self.fc = nn.Linear(d, d_ff, bias=False)
      self.fc_out = nn.Linear(d_ff, d, bias=False)

    def forward(self, x):
      b, t, _ = x.shape
      q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
      q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
      a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
      x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
      return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate='tanh'))

  class LM(nn.Module):
    def __init__(self):
      super().__init__()
      self.embed = nn.Embedding(vocab_size, d)
      self.pos = nn.Embedding(length, d)
      self.blocks = nn.ModuleList(Block() for _ in range(layers))
      self.ln_f = nn.LayerNorm(d, eps=m.norm_epsilon)
      for p in self.parameters():
        if p.dim() == 2:
          nn.init.normal_(p, std=0.02)

    def forward(self, tokens):
      x = self.embed(tokens) + self.pos(torch.arange(tokens.shape[1]))
      for blk in self.blocks:
        x = blk(x)
      return self.ln_f(x) @ self.embed.weight.T

  return LM()


def torch_trainer(config, vocab_size: int, compiled: bool = False):
  """(step(batch) -> loss, parameter count) for the PyTorch model and optimizer.

  compiled: the model's forward (and through AOTAutograd its backward) runs
  through torch.compile (default inductor backend, C++ kernels on a CPU); the
  optimizer step stays eager, as in a typical compiled training script.
  """
  import torch
  import torch.nn.functional as F
  torch.manual_seed(config.seed)
  model = torch_model(config, vocab_size)
  decay = [p for p in model.parameters() if p.dim() >= 2]
  no_decay = [p for p in model.parameters() if p.dim() < 2]
  opt = torch.optim.AdamW([{'params': decay, 'weight_decay': config.weight_decay},
                           {'params': no_decay, 'weight_decay': 0.0}],
                          lr=config.learning_rate, betas=(config.b1, config.b2), eps=config.eps)
  warm, total = config.warmup_steps, config.num_train_steps
  ratio = config.min_learning_rate / config.learning_rate

  def lr_factor(step):
    if step < warm:
      return (step + 1) / warm
    frac = min(1.0, (step - warm) / max(1, total - warm))
    return ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * frac))

  sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

  forward = torch.compile(model) if compiled else model

  def step(batch):
    inputs = torch.from_numpy(np.asarray(batch['inputs'], np.int64))
    targets = torch.from_numpy(np.asarray(batch['targets'], np.int64))
    logits = forward(inputs)
    loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip_norm:
      torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm)
    opt.step()
    sched.step()
    return loss.item()

  return step, sum(p.numel() for p in model.parameters())


def summary(times: list[float]) -> dict:
  q = statistics.quantiles(times, n=10)
  return {'median_ms': statistics.median(times) * 1e3, 'p10_ms': q[0] * 1e3,
          'p90_ms': q[-1] * 1e3}


def measure(config, rounds: int, per_round: int, warmup: int, threads: int = 0,
            with_compile: bool = True) -> dict:
  import torch
  from transformer import engine
  if threads:
    torch.set_num_threads(threads)
  exp = engine.Experiment(config, None)
  state = exp.init_state()
  n = warmup + rounds * per_round + 1
  batches = [exp.task.data.train_batch(i, config.batch_size, config.seed) for i in range(n)]
  t_step, t_params = torch_trainer(config, exp.task.data.vocab_size)
  c_step, compile_error, torch_compile_s = None, '', None
  if with_compile:
    c_step, _ = torch_trainer(config, exp.task.data.vocab_size, compiled=True)
    try:
      t0 = time.perf_counter()
      c_step(batches[0])                      # compiles (and takes step 0, as ours does)
      torch_compile_s = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - e.g. no C++ compiler for inductor
      c_step, compile_error = None, f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'

  ours, theirs, comp, our_loss, their_loss, comp_loss = [], [], [], [], [], []
  with exp.context():
    t0 = time.perf_counter()
    state, m = exp.train_step(state, exp.put_batch(batches[0]))
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    t_step(batches[0])
    for i in range(1, warmup + 1):
      state, m = exp.train_step(state, exp.put_batch(batches[i]))
      t_step(batches[i])
      if c_step:
        c_step(batches[i])
    jax.block_until_ready(m)
    for r in range(rounds):
      idx = range(warmup + 1 + r * per_round, warmup + 1 + (r + 1) * per_round)
      losses = []
      for i in idx:
        b = exp.put_batch(batches[i])
        t0 = time.perf_counter()
        state, m = exp.train_step(state, b)
        jax.block_until_ready(m)
        ours.append(time.perf_counter() - t0)
        losses.append(m)
      our_loss = [float(x['objective'] / x['weight']) for x in losses]
      their_loss = []
      for i in idx:
        t0 = time.perf_counter()
        their_loss.append(t_step(batches[i]))
        theirs.append(time.perf_counter() - t0)
      if c_step:
        comp_loss = []
        for i in idx:
          t0 = time.perf_counter()
          comp_loss.append(c_step(batches[i]))
          comp.append(time.perf_counter() - t0)
  a, b = summary(ours), summary(theirs)
  compiled = {'torch_compile_error': compile_error} if not c_step else {}
  if c_step:
    c = summary(comp)
    compiled = {**{f'compiled_{k}': v for k, v in c.items()},
                'torch_compile_s': torch_compile_s,
                'ratio_compiled_over_ours': c['median_ms'] / a['median_ms'],
                'compiled_last_round_loss': statistics.mean(comp_loss)}
  return {
      'config': config.dataset, 'tokens_per_step': config.batch_size * config.seq_len,
      'params_ours': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'params_torch': int(t_params), 'torch_version': torch.__version__,
      'torch_threads': torch.get_num_threads(), 'jax_version': jax.__version__,
      'steps_each': len(ours), 'our_compile_s': compile_s,
      **{f'ours_{k}': v for k, v in a.items()}, **{f'torch_{k}': v for k, v in b.items()},
      'ratio_torch_over_ours': b['median_ms'] / a['median_ms'],
      'ours_last_round_loss': statistics.mean(our_loss),
      'torch_last_round_loss': statistics.mean(their_loss),
      **compiled,
  }


def main(argv):
  del argv
  try:
    import torch  # noqa: F401
  except ImportError:
    sys.exit('PyTorch is not installed: pip install torch==2.13.0 (only for this benchmark)')
  from transformer import host
  host.tune_allocator()   # as train.py does (transformer/host.py)
  res = measure(FLAGS.config, FLAGS.rounds, FLAGS.steps_per_round, FLAGS.warmup, FLAGS.threads,
                FLAGS.compile)
  print_results(res, FLAGS.json_out)


if __name__ == '__main__':
  app.run(main)
