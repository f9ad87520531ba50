"""tools.plan's estimates against a real GPU step (issue 27), on a CUDA machine:

  python benchmarks/plan_vs_gpu.py --out=DIR --name=NAME --config=configs/gpt2_small.py \\
      [--config.FIELD=VALUE ...]

1. The deviceless plan for one H200 (`python -m tools.plan --topology=h200:1 --shapes_only`,
   a subprocess: it runs JAX on the CPU), kept as DIR/NAME_plan.json: XLA's compiled memory.
2. On the real GPU: the same Experiment on the same batch shapes (zeros: a speed and memory
   check, no training result), its step compiled for the device (memory analysis, cost
   analysis, and tools.plan's roofline from them), then 3 untimed and 20 timed steps, each
   synchronized; the allocator's peak bytes in use.
Writes DIR/NAME.json with the plan's numbers beside the measured ones.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
  args = [a for a in sys.argv[1:]]
  out = next(a.split('=', 1)[1] for a in args if a.startswith('--out='))
  name = next(a.split('=', 1)[1] for a in args if a.startswith('--name='))
  rest = [a for a in args if not a.startswith(('--out=', '--name='))]
  os.makedirs(out, exist_ok=True)
  plan_json = os.path.join(out, f'{name}_plan.json')
  t0 = time.time()
  res = subprocess.run([sys.executable, '-m', 'tools.plan', '--topology=h200:1',
                        '--shapes_only', f'--json={plan_json}', *rest], cwd=ROOT,
                       capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS='cpu'))
  with open(os.path.join(out, f'{name}_plan.txt'), 'w') as f:
    f.write(res.stdout + res.stderr[-4000:])
  plan = json.load(open(plan_json)) if os.path.exists(plan_json) else None
  plan_seconds = time.time() - t0

  import jax
  from absl import flags
  from ml_collections import config_flags

  from tools import plan as plan_lib
  from transformer import engine, flops, tasks
  config_flags.DEFINE_config_file('config', None, 'Experiment config.', lock_config=False)
  flags.FLAGS([sys.argv[0], *rest])
  config = flags.FLAGS.config
  data = tasks.task_class(config).shape_data(config)
  task = tasks.make_task(config, None, data=data)
  exp = engine.Experiment(config, None, task=task)
  state = exp.init_state()
  raw = data.train_batch(0, config.batch_size, config.seed)
  batch = exp.put_batch(raw)
  device = jax.devices()[0]
  with exp.context():
    t0 = time.perf_counter()
    compiled = exp.train_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
    for _ in range(3):
      state, m = exp.train_step(state, batch)
    jax.block_until_ready(m)
    times = []
    for _ in range(20):
      t = time.perf_counter()
      state, m = exp.train_step(state, batch)
      jax.block_until_ready(m)
      times.append(time.perf_counter() - t)
  step = statistics.median(times)
  colls = plan_lib.collectives(compiled.as_text(), 1)
  roof = plan_lib.roofline(device.device_kind, 1, cost.get('flops'), cost.get('bytes accessed'),
                           colls)
  analytic = float(task.train_flops(raw))
  peak = flops.peak_flops(device.device_kind, 'bfloat16')
  stats = device.memory_stats() or {}
  result = {
      'name': name, 'args': rest, 'device': device.device_kind, 'jax': jax.__version__,
      'batch_shapes': {k: list(v.shape) for k, v in raw.items()},
      'plan_deviceless_h200': None if plan is None else {
          k: plan.get(k) for k in ('total_bytes', 'temp_bytes', 'argument_bytes',
                                   'params_bytes', 'opt_state_bytes', 'fits')},
      'plan_seconds': plan_seconds,
      'on_gpu_compiled': {
          'total_bytes': plan_lib.memory_totals(mem)['total_bytes'] if mem else None,
          'temp_bytes': mem.temp_size_in_bytes if mem else None,
          'flops': cost.get('flops'), 'bytes_accessed': cost.get('bytes accessed'),
          'compile_s': compile_s},
      'roofline': roof,
      'analytic_flops': analytic,
      'analytic_at_peak_seconds': analytic / peak if peak else None,
      'measured': {'step_seconds_median': step, 'step_seconds_min': min(times),
                   'step_seconds_max': max(times),
                   'peak_bytes_in_use': stats.get('peak_bytes_in_use'),
                   'mfu': analytic / step / peak if peak else None},
  }
  with open(os.path.join(out, f'{name}.json'), 'w') as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result, indent=1))


if __name__ == '__main__':
  main()
