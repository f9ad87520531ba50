"""Train-step speed and memory of an experiment config.

  python benchmarks/train_speed.py --config=configs/lm_shakespeare_char.py [--steps=200] \
      [--config.FIELD=VALUE ...]

Builds the experiment exactly as train.py does (same task, data, jitted step,
shardings), runs `--warmup` steps and one step of every other batch shape
among the timed batches (length buckets compile once each), then times
`--steps` steps one by one with the device synchronized after each, and
prints: compile time (first step), median / p10 / p90 step time, steps/s,
real tokens (or examples) per second, the real-token fraction of the token
batches (packing raises it), parameter count, peak memory (host RSS on
CPU; the allocator's peak on GPU/TPU), the model FLOPs per step counted
analytically (transformer/flops.py: matmuls only, causal attention counted as
half, training = 3 x forward), the achieved model TFLOP/s and, on devices in
flops.PEAK_FLOPS, the model FLOPs utilization (MFU). With --eval (the
default) it then evaluates config.eval_split whole, twice, as train.py's
periodic evaluation does, and reports the second pass (compiled) as eval
seconds and eval examples (or tokens) per second. No checkpoints or metrics
are written (a SentencePiece vocabulary, where the task trains one, goes to
--workdir).
"""

import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import print_results

flags.DEFINE_integer('steps', 200, 'Timed steps.')
flags.DEFINE_integer('warmup', 10, 'Untimed steps after the first (compiling) one.')
flags.DEFINE_bool('eval', True, 'Also time a whole-split evaluation of config.eval_split.')
flags.DEFINE_string('json_out', '', 'Optional path to write the results as JSON.')
flags.DEFINE_string('workdir', '', 'Where tasks keep what they build (a SentencePiece '
                    'vocabulary); default: a temporary directory. Nothing else is written.')
config_flags.DEFINE_config_file('config', 'configs/lm_shakespeare_char.py', 'Experiment config.',
                                lock_config=False)
FLAGS = flags.FLAGS


def peak_memory_bytes() -> tuple[str, int]:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return 'device_peak_bytes', int(stats['peak_bytes_in_use'])
  return 'host_peak_rss_bytes', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _shapes(batch) -> tuple:
  return tuple(sorted((k, np.shape(v)) for k, v in batch.items()))


def measure(config, steps: int, warmup: int, evaluate: bool = True, workdir: str = '') -> dict:
  from transformer import engine
  if not workdir:
    import tempfile
    workdir = tempfile.mkdtemp(prefix='train_speed_')
  exp = engine.Experiment(config, workdir)
  state = exp.init_state()
  batches = [exp.task.data.train_batch(i, config.batch_size, config.seed)
             for i in range(steps + warmup + 1)]
  weights = [float(b.get('weights', b.get('labels')).sum()) if 'weights' in b else
             len(next(iter(b.values()))) for b in batches]
  times = []
  with exp.context():
    t0 = time.perf_counter()
    state, m = exp.train_step(state, exp.put_batch(batches[0]))
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    for i in range(1, warmup + 1):
      state, m = exp.train_step(state, exp.put_batch(batches[i]))
    # Length-bucketed batches come in several shapes, each compiled once: compile them all
    # before timing, so that the timed steps measure steps, not compilations.
    seen = {_shapes(batches[i]) for i in range(warmup + 1)}
    for b in batches[warmup + 1:]:
      if _shapes(b) not in seen:
        seen.add(_shapes(b))
        state, m = exp.train_step(state, exp.put_batch(b))
    jax.block_until_ready(m)
    for i in range(warmup + 1, warmup + 1 + steps):
      t0 = time.perf_counter()
      state, m = exp.train_step(state, exp.put_batch(batches[i]))
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  from transformer import flops
  step_flops = statistics.mean(
      exp.task.train_flops(b)
      for b in batches[warmup + 1:])
  # Every device of the mesh runs the step: MFU is over their summed peak.
  devices = jax.local_devices() if exp.pmap else list(exp.mesh.devices.flat)
  mfu = flops.mfu(step_flops / med, devices, np.dtype(exp.task.model_cfg.dtype).name)
  q = statistics.quantiles(times, n=10)
  per_step = statistics.mean(weights[warmup + 1:])
  extra = {}
  timed = batches[warmup + 1:]
  if 'weights' in timed[0] and np.ndim(timed[0]['weights']) == 2:   # token tasks
    extra['real_token_fraction'] = (sum(float(b['weights'].sum()) for b in timed)
                                    / sum(b['weights'].size for b in timed))
  if evaluate:
    exp.evaluate(state.params, config.eval_split)     # compiles every eval batch shape
    t0 = time.perf_counter()
    ev = exp.evaluate(state.params, config.eval_split)
    eval_s = time.perf_counter() - t0
    extra.update({'eval_split': config.eval_split, 'eval_s': eval_s,
                  f'eval_{exp.task.weight_name}_per_s': ev[exp.task.weight_name] / eval_s})
  mem_kind, mem = peak_memory_bytes()
  return {
      'config': config.dataset, 'device': jax.devices()[0].device_kind,
      'num_devices': jax.device_count(),
      'params': int(sum(x.size for x in jax.tree.leaves(state.params))),
      'batch_size': config.batch_size, 'compile_s': compile_s,
      'step_ms_median': med * 1e3, 'step_ms_p10': q[0] * 1e3, 'step_ms_p90': q[-1] * 1e3,
      'steps_per_s': 1.0 / med, f'{exp.task.weight_name}_per_s': per_step / med,
      'model_tflop_per_step': step_flops / 1e12,
      'model_tflops_per_s': step_flops / med / 1e12,
      'mfu': mfu if mfu is not None else 'n/a (no peak for this device)',
      **extra, mem_kind: mem,
  }


def main(argv):
  del argv
  from transformer import host
  host.tune_allocator()   # step temporaries stay in the heap (transformer/host.py)
  res = measure(FLAGS.config, FLAGS.steps, FLAGS.warmup, FLAGS.eval, FLAGS.workdir)
  print_results(res, FLAGS.json_out)


if __name__ == '__main__':
  app.run(main)
