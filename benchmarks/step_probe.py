"""What a train step costs the host besides its arithmetic, and where its time goes.

  python benchmarks/step_probe.py [--steps=20] [--config.FIELD=VALUE ...]

Builds the experiment as train.py does (host.tune_allocator first), then prints:
- per step, over --steps synchronized steps after a warm-up: wall time, minor page faults,
  user and system CPU seconds, and the cores kept busy ((user + system) / wall);
- the compiled step's temporary bytes (compiled.memory_analysis());
- the forward loss alone, forward + backward, and the whole step (optimizer included), each
  jitted apart, medians of --rounds interleaved rounds;
- the matrix products of the config's feed-forward layer alone, at the step's
  (batch x length) rows: forward x @ W_in, x @ W_out, and the backward's transposed forms,
  in GFLOP/s: the speed the step's own products reach outside it.
"""

import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from common import print_results

flags.DEFINE_integer('steps', 20, 'Synchronized steps measured with getrusage.')
flags.DEFINE_integer('rounds', 5, 'Interleaved rounds of the forward / backward / step timing.')
config_flags.DEFINE_config_file('config', 'configs/lm_shakespeare_char.py', 'Experiment config.',
                                lock_config=False)
FLAGS = flags.FLAGS


def medians(fns: dict, rounds: int) -> dict:
  """{name: median ms} of interleaved rounds, each fn called and synchronized once per round."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  times = {k: [] for k in fns}
  for _ in range(rounds):
    for k, fn in fns.items():
      t = time.perf_counter()
      jax.block_until_ready(fn())
      times[k].append(time.perf_counter() - t)
  return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv):
  del argv
  from transformer import engine, host
  tuned = host.tune_allocator()
  config = FLAGS.config
  exp = engine.Experiment(config, tempfile.mkdtemp(prefix='step_probe_'))
  state = exp.init_state()
  batch = exp.put_batch(exp.task.data.train_batch(0, config.batch_size, config.seed))
  res = {'allocator_tuned': tuned}
  with exp.context():
    for _ in range(3):
      state, m = exp.train_step(state, batch)
    jax.block_until_ready(m)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(FLAGS.steps):
      state, m = exp.train_step(state, batch)
      jax.block_until_ready(m)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, system = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    res.update(step_ms=wall / FLAGS.steps * 1e3,
               minor_faults_per_step=(r1.ru_minflt - r0.ru_minflt) / FLAGS.steps,
               user_s_per_step=user / FLAGS.steps, system_s_per_step=system / FLAGS.steps,
               cores_busy=(user + system) / wall,
               temp_bytes=exp.train_step.lower(state, batch).compile()
               .memory_analysis().temp_size_in_bytes)

    holder = [state]

    def whole_step():
      holder[0], metrics = exp.train_step(holder[0], batch)
      return metrics
    forward = jax.jit(lambda s, b: exp.task.loss_sums(s.params, b, jax.random.PRNGKey(0),
                                                      train=True))
    grads = jax.jit(lambda s, b: exp._mean_grads(s, b, None))
    for name, ms in medians({'forward': lambda: forward(holder[0], batch),
                             'forward_backward': lambda: grads(holder[0], batch),
                             'train_step': whole_step}, FLAGS.rounds).items():
      res[f'{name}_ms'] = ms

  rows, d, f = (config.batch_size * config.seq_len, config.model.d_model, config.model.d_ff)
  rng = np.random.default_rng(0)
  mat = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
  nt = lambda a, b: jax.lax.dot_general(a, b, (((1,), (1,)), ((), ())))  # noqa: E731
  tn = lambda a, b: jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())))  # noqa: E731
  products = {   # name: (fn, operands, flops)
      'x_Win': (jnp.dot, (mat(rows, d), mat(d, f)), 2 * rows * d * f),
      'h_Wout': (jnp.dot, (mat(rows, f), mat(f, d)), 2 * rows * d * f),
      'dh_Wout_T': (nt, (mat(rows, d), mat(f, d)), 2 * rows * d * f),
      'dWin_xT_dh': (tn, (mat(rows, d), mat(rows, f)), 2 * rows * d * f),
  }
  jitted = {k: (jax.jit(fn), args) for k, (fn, args, _) in products.items()}
  for name, ms in medians({k: (lambda fn=fn, args=args: fn(*args))
                           for k, (fn, args) in jitted.items()}, 3 * FLAGS.rounds).items():
    res[f'gemm_{name}_gflops'] = products[name][2] / ms / 1e6
  print_results(res)


if __name__ == '__main__':
  app.run(main)
