"""Where a train step's time goes: per-op totals from a JAX profiler trace.

  python benchmarks/profile_step.py --config=configs/lm_shakespeare_char.py [--steps=20] \
      [--top=25] [--config.FIELD=VALUE ...]

Runs `--warmup` steps, traces `--steps` more with jax.profiler (a Perfetto
trace, read back here; no TensorBoard needed), and prints the compiled
program's ops (thunks on the CPU, kernels on a GPU) by total time per step:
first each op, then grouped by kind (the op name without its numeric suffix:
`ynn_fusion` = dots and reductions handed to YNNPACK, `dot` = Eigen dots,
`*_fusion` = XLA's own elementwise loops). Ops of one step may run
concurrently, so the sum can exceed the step time. Use it with the HLO
(XLA_FLAGS=--xla_dump_to=DIR) to see which model op each name stands for.
"""

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
from absl import app, flags
from ml_collections import config_flags

flags.DEFINE_integer('steps', 20, 'Traced steps.')
flags.DEFINE_integer('warmup', 10, 'Untraced steps first (the first compiles).')
flags.DEFINE_integer('top', 25, 'Rows of each table.')
config_flags.DEFINE_config_file('config', 'configs/lm_shakespeare_char.py', 'Experiment config.',
                                lock_config=False)
FLAGS = flags.FLAGS

# Host-side and bookkeeping events, not ops of the compiled program.
NOT_OPS = ('$', 'ThunkExecutor', 'PjitFunction', 'Common', 'Slinky', 'Allocate', 'Parse',
           'DevicePut', 'shard_args', 'PjRt', 'Execute')


def op_totals(trace_dir: str) -> tuple[dict, collections.Counter]:
  files = glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True)
  if not files:
    raise RuntimeError(f'no Perfetto trace was written under {trace_dir}')
  with gzip.open(files[0]) as f:
    events = json.load(f)['traceEvents']
  total, count = collections.defaultdict(float), collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and not str(e.get('name', '')).startswith(NOT_OPS):
      total[e['name']] += e['dur'] / 1e3     # ms
      count[e['name']] += 1
  return total, count


def main(argv):
  del argv
  from transformer import engine, host
  host.tune_allocator()
  config = FLAGS.config
  exp = engine.Experiment(config, tempfile.mkdtemp(prefix='profile_step_'))  # for a vocabulary
  state = exp.init_state()
  n = FLAGS.warmup + FLAGS.steps
  batches = [exp.task.data.train_batch(i, config.batch_size, config.seed) for i in range(n)]
  with exp.context(), tempfile.TemporaryDirectory() as tmp:
    for b in batches[:FLAGS.warmup]:
      state, m = exp.train_step(state, exp.put_batch(b))
    jax.block_until_ready(m)
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    t0 = time.perf_counter()
    for b in batches[FLAGS.warmup:]:
      state, m = exp.train_step(state, exp.put_batch(b))
      jax.block_until_ready(m)
    wall = (time.perf_counter() - t0) / FLAGS.steps * 1e3
    jax.profiler.stop_trace()
    total, count = op_totals(tmp)
  k = FLAGS.steps
  kinds, kind_count = collections.defaultdict(float), collections.Counter()
  for name, ms in total.items():
    kind = re.sub(r'\.\d+$', '', name)
    kinds[kind] += ms
    kind_count[kind] += count[name]
  print(f'step time while tracing: {wall:.1f} ms; op time summed: {sum(total.values()) / k:.1f} '
        f'ms per step over {len(total)} ops')
  print('\nms/step  calls/step  op')
  for name, ms in sorted(total.items(), key=lambda kv: -kv[1])[:FLAGS.top]:
    print(f'{ms / k:7.2f}  {count[name] / k:10.1f}  {name}')
  print('\nms/step  calls/step  kind')
  for kind, ms in sorted(kinds.items(), key=lambda kv: -kv[1])[:FLAGS.top]:
    print(f'{ms / k:7.2f}  {kind_count[kind] / k:10.1f}  {kind}')


if __name__ == '__main__':
  app.run(main)
