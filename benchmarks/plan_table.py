"""The pod-scale planning table of docs/SHARDING.md, from tools.plan (deviceless TPU compiles).

  JAX_PLATFORMS=cpu python benchmarks/plan_table.py --out=results/plan_table [--only=CONFIG]

needs libtpu (`pip install -r requirements-tpu.txt`). For each config and TPU slice it runs
`python -m tools.plan --compare --presets=data,fsdp` (one process per cell: the commands
are in the output), keeps the JSON and the printed report of each, and where no preset fits,
plans the changes that make it fit, in order: gradient accumulation (2, 4, 8, 16 micro-
batches: the same batch, smaller activations), then remat with it. Writes OUT/table.md (the
table docs/SHARDING.md quotes) and OUT/cells.json. Every step time is an ESTIMATE (the
roofline of tools.plan), not a measurement.

A batch that the slice's devices cannot divide (WMT's row granularity of 8 on 32 or 256
devices, an evaluation batch of 1000) is raised to the next multiple of the device count,
and a token budget under one row per device (WMT's 25,000 tokens on 256 devices) to one
row per device; the table says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = ['wmt14_ende_base', 'wmt14_ende_big', 'lm1b', 'vit_b16_imagenet', 'gpt2_small']
# Google's slice names -> libtpu topology, and its JAX devices (a v4 device is a
# TensorCore: v4-32 is 16 chips, 32 devices; v5p-8 is 4 chips, 8 TensorCores joined in pairs).
SLICES = {'v5e-8': ('v5e:2x4', 8), 'v5e-256': ('v5e:16x16', 256), 'v4-32': ('v4:2x2x4', 32),
          'v5p-8': ('v5p:2x2x1', 4)}
# Paper (or recipe) step counts, the config's num_train_steps.
FIXES = [['--config.grad_accum_steps=%d' % k] for k in (2, 4, 8, 16)] + [
    ['--config.grad_accum_steps=%d' % k, '--config.model.remat=True'] for k in (4, 16)]


def config_value(name: str, field: str):
  sys.path.insert(0, ROOT)
  import importlib
  return importlib.import_module(f'configs.{name}').get_config().get(field)


def divisible_overrides(name: str, devices: int) -> list[str]:
  """Overrides that let `devices` divide the config's batches: batch sizes raised to a
  multiple of the device count, and a translation token budget raised to fill at least
  that many rows (the pipeline refuses a budget under one row per device)."""
  out, batch = [], config_value(name, 'batch_size')
  for field in ('batch_size', 'eval_batch_size'):
    value = config_value(name, field) or batch
    if value % devices:
      value = -(-value // devices) * devices
      out.append(f'--config.{field}={value}')
    if field == 'batch_size':
      batch = value
  tokens, seq_len = config_value(name, 'tokens_per_batch'), config_value(name, 'seq_len')
  if tokens and tokens < batch * seq_len:
    out.append(f'--config.tokens_per_batch={batch * seq_len}')
  return out


def run_plan(args: list[str], stem: str, out_dir: str) -> tuple[list | dict | None, float]:
  cmd = [sys.executable, '-m', 'tools.plan', *args, f'--json={stem}.json']
  start = time.time()
  res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
  seconds = time.time() - start
  with open(f'{stem}.txt', 'w') as f:
    f.write('$ ' + ' '.join(['python', *cmd[1:]]) + '\n\n' + res.stdout
            + (f'\nexit status {res.returncode}\n' + res.stderr[-2000:] if res.returncode else ''))
  if res.returncode or not os.path.exists(f'{stem}.json'):
    return None, seconds
  with open(f'{stem}.json') as f:
    return json.load(f), seconds


def best(rows) -> dict | None:
  ok = [r for r in rows or [] if 'error' not in r]
  return ok[0] if ok else None


def cell(name: str, slice_name: str, out_dir: str) -> dict:
  topology, devices = SLICES[slice_name]
  base = [f'--config=configs/{name}.py', f'--topology={topology}', '--compare',
          '--presets=data,fsdp', *divisible_overrides(name, devices)]
  stem = os.path.join(out_dir, f'{name}__{slice_name}')
  rows, seconds = run_plan(base, stem, out_dir)
  out = {'config': name, 'slice': slice_name, 'topology': topology, 'args': base[3:],
         'rows': rows, 'compile_seconds': seconds, 'fix': None, 'fix_rows': None}
  first = best(rows)
  if first is None or first.get('fits', True):
    return out
  for i, fix in enumerate(FIXES):
    fixed, secs = run_plan(base + fix, f'{stem}__fix{i}', out_dir)
    out['compile_seconds'] += secs
    top = best(fixed)
    out['fix'], out['fix_rows'] = fix, fixed
    if top is not None and top.get('fits', True):
      break
  return out


def _gib(b) -> str:
  return f'{b / 2**30:.1f} GiB'


def _hours(r) -> str:
  s = r.get('estimated_seconds_to_num_train_steps')
  return f'{s / 3600:.1f} h' if s else '-'


def table(cells: list[dict]) -> str:
  lines = ['| config | slice (devices) | preset chosen | memory per device (chip) | fits | '
           'est. step | est. time to num_train_steps | notes |',
           '|---|---|---|---|---|---|---|---|']
  order = list(SLICES)
  for c in sorted(cells, key=lambda c: (CONFIGS.index(c['config']), order.index(c['slice']))):
    rows = c['fix_rows'] if c['fix'] else c['rows']
    r = best(rows)
    if r is None:
      lines.append(f'| {c["config"]} | {c["slice"]} | - | - | - | - | - | plan failed: see '
                   f'{c["config"]}__{c["slice"]}.txt |')
      continue
    first = best(c['rows'])
    notes = [a.replace('--config.', '') for a in c['args'] if a.startswith('--config.')]
    if c['fix']:
      notes.insert(0, f'{first["parallelism"]} alone needs {_gib(first["total_bytes"])} '
                   f'(over by {first["overflow_gib"]:.1f} GiB); fits with '
                   + ', '.join(a.replace('--config.', '') for a in c['fix']))
    others = [o for o in rows if 'error' not in o and o['parallelism'] != r['parallelism']]
    for o in others:
      est = (f', {o["estimated_step_seconds"] * 1e3:.0f} ms'
             if 'estimated_step_seconds' in o else '')
      notes.append(f'{o["parallelism"]}: {_gib(o["total_bytes"])}'
                   + ('' if o.get('fits', True) else ' (does not fit)') + est)
    fits = 'yes' if r.get('fits', True) else f'no (+{r["overflow_gib"]:.1f} GiB)'
    step = (f'{r["estimated_step_seconds"] * 1e3:.0f} ms' if 'estimated_step_seconds' in r
            else '-')
    lines.append(f'| {c["config"]} | {c["slice"]} ({r["devices"]}) | {r["parallelism"]} | '
                 f'{_gib(r["total_bytes"])} ({_gib(r["chip_memory_bytes"])}) | {fits} | '
                 f'{step} | {_hours(r)} | {"; ".join(notes)} |')
  return '\n'.join(lines)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--out', default='results/plan_table')
  ap.add_argument('--only', default='', help='comma-separated configs (default: all)')
  ap.add_argument('--slices', default=','.join(SLICES))
  args = ap.parse_args()
  out_dir = os.path.join(ROOT, args.out)
  os.makedirs(out_dir, exist_ok=True)
  cells_path = os.path.join(out_dir, 'cells.json')
  cells = json.load(open(cells_path)) if os.path.exists(cells_path) else []
  done = {(c['config'], c['slice']) for c in cells}
  for name in (args.only.split(',') if args.only else CONFIGS):
    for slice_name in args.slices.split(','):
      if (name, slice_name) in done:
        continue
      c = cell(name, slice_name, out_dir)
      cells.append(c)
      print(f'{name} on {slice_name}: {c["compile_seconds"]:.0f} s', flush=True)
      with open(cells_path, 'w') as f:
        json.dump(cells, f, indent=1)
      with open(os.path.join(out_dir, 'table.md'), 'w') as f:
        f.write(table(cells) + '\n')
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(table(cells) + '\n')
  print(table(cells))


if __name__ == '__main__':
  main()
