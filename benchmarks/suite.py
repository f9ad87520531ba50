"""The benchmark command: every speed benchmark, one after the other, and one table.

  TRANSFORMER_DATA_DIR=../shared/data python benchmarks/suite.py [--quick] \
      [--only=train,torch,decode] [--multi30k_workdir=runs/multi30k] [--out=suite.json]

Runs, each in its own process (so compile caches and peak memory do not mix):

  train   benchmarks/train_speed.py on the Shakespeare char recipe, the
          Multi30k translation model, the paper's base and big models, and the
          ViT MNIST / Fashion-MNIST configs: compile time, median step time,
          throughput, model TFLOP/s and MFU (on devices with a known peak),
          peak memory. On a CPU the WMT models are sized down (CPU_OVERRIDES):
          trained on Multi30k text with an 8,000-piece vocabulary, 2,048
          tokens per side per batch and two length buckets (32, 64: two
          compilations), instead of 37,000 pieces and 25,000 tokens; on an
          accelerator they run the config as it is (TFDS data).
  torch   benchmarks/torch_reference.py: our Shakespeare train step against
          PyTorch's on the same model, interleaved in one process (needs
          `pip install torch==2.13.0`; skipped with a note when absent).
  decode  benchmarks/decode_speed.py: cached greedy decoding against
          recomputing the growing prefix (and a fixed buffer), 256 new tokens (Shakespeare model); with
          --multi30k_workdir, also sentences/s of greedy and beam 4 on the
          Multi30k test set from that trained model.

--quick (a smoke test of the command, under 3 minutes on the 2-core CPU; its
numbers are noisy) times 5 steps per train row, skips the CPU-sized WMT rows
on a CPU, compiles one length bucket for Multi30k, runs the PyTorch comparison without torch.compile, and decodes
16 tokens. Each row is printed as soon as it finishes; an interrupt (Ctrl-C)
prints the table of the finished rows and exits with status 130. The table is printed as Markdown; --out also writes every raw
result as JSON. Absolute times on a shared machine drift: compare numbers
from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

TRAIN = [   # (label, config, extra flags)
    ('Shakespeare char (nanoGPT CPU recipe)', 'configs/lm_shakespeare_char.py', []),
    ('Multi30k translation', 'configs/translate_multi30k.py', []),
    ('WMT14 base', 'configs/wmt14_ende_base.py', []),
    ('WMT14 big', 'configs/wmt14_ende_big.py', []),
    ('ViT MNIST', 'configs/vit_mnist.py', []),
    ('ViT Fashion-MNIST', 'configs/vit_fashion_mnist.py', []),
]
# WMT models on a CPU: Multi30k text (no WMT training data here), smaller vocabulary and batches.
_WMT_ON_CPU = ['--config.dataset=multi30k', '--config.vocab_size=8000',
               '--config.tokens_per_batch=2048', '--config.seq_len=64',
               '--config.bucket_boundaries=(32,64)', '--config.eval_split=val']
CPU_OVERRIDES = {'configs/wmt14_ende_base.py': _WMT_ON_CPU, 'configs/wmt14_ende_big.py': _WMT_ON_CPU}
# --quick on a CPU: the WMT rows take 1.5-5 minutes each (seconds per step); Multi30k
# compiles one length bucket instead of eleven.
QUICK_SKIP_ON_CPU = ('configs/wmt14_ende_base.py', 'configs/wmt14_ende_big.py')
QUICK_OVERRIDES = {'configs/translate_multi30k.py': ['--config.bucket_boundaries=(64,)']}


def _emit(line: str) -> None:
  """A finished row, printed at once (the whole table follows at the end)."""
  print(line, flush=True)


def _run(cmd: list[str], json_path: str, log) -> dict | None:
  log(f'$ {" ".join(cmd)}')
  t0 = time.time()
  res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
  if res.returncode != 0 or not os.path.exists(json_path):
    tail = (res.stdout + res.stderr).strip().splitlines()[-5:]
    log(f'  failed (exit {res.returncode}):\n    ' + '\n    '.join(tail))
    return {'error': f'exit {res.returncode}: ' + (tail[-1] if tail else '')}
  log(f'  done in {time.time() - t0:.0f} s')
  with open(json_path) as f:
    return json.load(f)


def _accelerator() -> bool:
  import jax
  return jax.default_backend() != 'cpu'


def run_train(tmp: str, quick: bool, log, num_steps: int = 100,
              rows: list | None = None) -> list[dict]:
  """Train rows, appended to `rows` as each finishes (so an interrupt keeps them)."""
  accel = _accelerator()
  steps = ['--steps=5', '--warmup=1'] if quick else [f'--steps={num_steps}', '--warmup=5']
  rows = [] if rows is None else rows
  for i, (label, config, extra) in enumerate(TRAIN):
    if quick and not accel and config in QUICK_SKIP_ON_CPU:
      log(f'--quick: skipping {label} on the CPU (minutes per step)')
      continue
    out = os.path.join(tmp, f'train{i}.json')
    over = [] if accel else CPU_OVERRIDES.get(config, [])
    if quick:
      over = over + QUICK_OVERRIDES.get(config, [])
    cmd = [sys.executable, os.path.join(HERE, 'train_speed.py'), f'--config={config}',
           *steps, '--eval=false', f'--json_out={out}', *extra, *over]
    r = _run(cmd, out, log)
    rows.append({'label': label + (' (CPU-sized: ' + ', '.join(o.split('.', 1)[1] for o in over)
                                   + ')' if over else ''), **r})
    _emit(_train_line(rows[-1]))
  return rows


def run_torch(tmp: str, quick: bool, log) -> dict:
  try:
    import torch  # noqa: F401
  except ImportError:
    return {'error': 'PyTorch not installed (pip install torch==2.13.0)'}
  out = os.path.join(tmp, 'torch.json')
  rounds = (['--rounds=2', '--steps_per_round=3', '--warmup=2', '--nocompile'] if quick
            else ['--rounds=8', '--steps_per_round=25'])
  return _run([sys.executable, os.path.join(HERE, 'torch_reference.py'), *rounds,
               f'--json_out={out}'], out, log)


def run_decode(tmp: str, quick: bool, multi30k_workdir: str, log,
               rows: list | None = None) -> list[dict]:
  rows = [] if rows is None else rows
  out = os.path.join(tmp, 'lm_decode.json')
  new = 16 if quick else 256
  r = _run([sys.executable, os.path.join(HERE, 'decode_speed.py'),
            '--config=configs/lm_shakespeare_char.py', f'--config.model.max_len={new + 80}',
            f'--new_tokens={new}', f'--ragged={4 if quick else 16}', f'--json_out={out}'],
           out, log)
  rows += r.get('rows', [r])
  for row in r.get('rows', [r]):
    _emit(_decode_line(row))
  if multi30k_workdir:
    out = os.path.join(tmp, 'mt_decode.json')
    r = _run([sys.executable, os.path.join(HERE, 'decode_speed.py'),
              '--config=configs/translate_multi30k.py', f'--workdir={multi30k_workdir}',
              '--repeats=1', f'--json_out={out}'], out, log)
    rows += r.get('rows', [r])
    for row in r.get('rows', [r]):
      _emit(_decode_line(row))
  return rows


def _fmt(v, spec=',.1f') -> str:
  if isinstance(v, (int, float)) and not isinstance(v, bool):
    return format(v, spec)
  return '—' if v is None else str(v)


def _train_line(r: dict) -> str:
  if 'error' in r:
    return f"| {r['label']} | failed: {r['error']} | | | | | | |"
  unit = 'tokens' if 'tokens_per_s' in r else 'examples'
  mem = r.get('device_peak_bytes', r.get('host_peak_rss_bytes', 0)) / 2**20
  mfu = r['mfu'] if isinstance(r['mfu'], str) else f"{100 * r['mfu']:.1f}%"
  return (f"| {r['label']} | {r['params']:,} | {_fmt(r['compile_s'])} | "
          f"{_fmt(r['step_ms_median'])} | {_fmt(r[f'{unit}_per_s'], ',.0f')} {unit}/s | "
          f"{_fmt(r['model_tflops_per_s'], '.3f')} | {mfu} | {_fmt(mem, ',.0f')} |")


def _decode_line(r: dict) -> str:
  if 'error' in r:
    return f"| failed | {r['error']} | | | |"
  if 'tokens_per_s' in r:
    note = ''
    if 'speedup_vs_one_at_a_time' in r:
      note = (f"{r['speedup_vs_one_at_a_time']:.1f}x one prompt at a time, same tokens: "
              f"{r['same_tokens']}")
    if 'speedup_vs_recompute' in r:
      note = f"{r['speedup_vs_recompute']:.1f}x faster than recomputing the growing prefix"
      if 'speedup_vs_fixed_buffer' in r:
        note += f" ({r['speedup_vs_fixed_buffer']:.1f}x than a fixed buffer)"
      note += f", same tokens: {r['same_tokens']}"
    return (f"| LM {r['method']} | {r['new_tokens']} tokens x {r['batch']} | "
            f"{r['seconds']:.2f} | {r['tokens_per_s']:,.0f} tokens/s | {note} |")
  note = f"BLEU {r['bleu']:.2f}"
  if 'speedup_vs_per_step' in r:
    note += (f"; {r['speedup_vs_per_step']:.2f}x the per-step cross K/V, same "
             f"translations: {r['same_translations']}")
  return (f"| Multi30k {r['method']} | {r['sentences']} sentences | {r['seconds']:.1f} | "
          f"{r['sentences_per_s']:.1f} sentences/s | {note} |")


def markdown(results: dict) -> str:
  lines = []
  if 'train' in results:
    lines += ['| benchmark | params | compile s | step ms (median) | throughput | model TFLOP/s '
              '| MFU | peak memory MB |', '|---|---|---|---|---|---|---|---|']
    lines += [_train_line(r) for r in results['train']]
    lines.append('')
  if 'torch' in results:
    t = results['torch']
    if 'error' in t:
      lines += [f"PyTorch side by side: skipped ({t['error']})", '']
    else:
      comp = 'compiled_median_ms' in t
      head = f"| Shakespeare train step, interleaved | ours | PyTorch {t['torch_version']} eager |"
      lines += [head + (' torch.compile |' if comp else ''),
                '|---|---|---|' + ('---|' if comp else ''),
                f"| median ms (p10-p90) | {t['ours_median_ms']:.1f} ({t['ours_p10_ms']:.1f}-"
                f"{t['ours_p90_ms']:.1f}) | {t['torch_median_ms']:.1f} ({t['torch_p10_ms']:.1f}-"
                f"{t['torch_p90_ms']:.1f}) |" + (
                    f" {t['compiled_median_ms']:.1f} ({t['compiled_p10_ms']:.1f}-"
                    f"{t['compiled_p90_ms']:.1f}) |" if comp else ''),
                f"| mean loss, last round | {t['ours_last_round_loss']:.3f} | "
                f"{t['torch_last_round_loss']:.3f} |" + (
                    f" {t['compiled_last_round_loss']:.3f} |" if comp else ''),
                '', f"Ratio PyTorch eager / ours: **{t['ratio_torch_over_ours']:.2f}** "
                f"(> 1: ours is faster), {t['steps_each']} steps each." + (
                    f" torch.compile / ours: **{t['ratio_compiled_over_ours']:.2f}** "
                    f"(compiling took {t['torch_compile_s']:.0f} s)." if comp else
                    (f" torch.compile: not run ({t['torch_compile_error']})."
                     if t.get('torch_compile_error') else '')), '']
  if 'decode' in results:
    lines += ['| decoding | work | seconds | rate | note |', '|---|---|---|---|---|']
    lines += [_decode_line(r) for r in results['decode']]
  return '\n'.join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--only', default='train,torch,decode')
  p.add_argument('--quick', action='store_true')
  p.add_argument('--steps', type=int, default=100, help='timed train steps per config')
  p.add_argument('--multi30k_workdir', default='')
  p.add_argument('--out', default='')
  a = p.parse_args(argv)
  parts = [s.strip() for s in a.only.split(',') if s.strip()]
  unknown = set(parts) - {'train', 'torch', 'decode'}
  if unknown:
    p.error(f'--only: unknown parts {sorted(unknown)}; choose from train, torch, decode')
  log = lambda s: print(s, file=sys.stderr, flush=True)
  results = {}
  interrupted = False
  try:
    with tempfile.TemporaryDirectory() as tmp:
      if 'train' in parts:
        run_train(tmp, a.quick, log, a.steps, results.setdefault('train', []))
      if 'torch' in parts:
        results['torch'] = run_torch(tmp, a.quick, log)
      if 'decode' in parts:
        run_decode(tmp, a.quick, a.multi30k_workdir, log, results.setdefault('decode', []))
  except KeyboardInterrupt:
    interrupted = True
    log('interrupted: the table below holds the rows that finished')
  import jax
  results['device'] = f'{jax.devices()[0].device_kind} x {jax.device_count()}'
  print(f"\ndevice: {results['device']}{' (interrupted: partial table)' if interrupted else ''}\n")
  print(markdown(results))
  if a.out:
    with open(a.out, 'w') as f:
      json.dump(results, f, indent=2)
  if interrupted:
    return 130
  return 0 if all('error' not in r for k in ('train', 'decode') for r in results.get(k, [])) else 1


if __name__ == '__main__':
  sys.exit(main())
