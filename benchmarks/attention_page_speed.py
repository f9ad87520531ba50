"""How the attention explorer page scales with the input: size, load and redraw times.

  python benchmarks/attention_page_speed.py [--lengths=32,128,512] [--rounds=5]

For each length n, a page of BERT-base's shape (12 layers x 12 heads of n x n
softmax rows, random) under the default size cap (tools/attention_page.py), opened
in headless Chromium (Debian's package, through Playwright as in
tests/integration/test_browser.py). Reports the file size, the layers the cap kept,
and medians over rounds of: loading the page until it is drawn, a layer switch
(every head's lines redrawn), hovering a token, and building the model view (every
thumbnail). Times are the browser's own (performance.now() around the action, in
the page), so Playwright's round trips are not counted.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import browser  # noqa: E402
from tools import attention_page  # noqa: E402

TIMED = """async ([action, arg]) => {
  const ex = window.attentionExplorers.attn0, view = ex.views[0];
  const t = performance.now();
  if (action === 'layer') { view.layer = arg; view.draw(); }
  if (action === 'hover') { view.focus = {side: 'q', index: arg}; view.draw(); }
  if (action === 'model') { view.modelBuilt = false; view.modelView.replaceChildren();
                            view.setMode(true); }
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));   // painted
  if (action === 'model') view.setMode(false);
  return performance.now() - t; }"""


def page_for(n: int, folder: str) -> tuple[str, list[int]]:
  rng = np.random.default_rng(n)
  x = rng.normal(size=(12, 12, n, n)).astype(np.float32) * 3
  w = np.exp(x - x.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  tokens = [f't{i}' for i in range(n)]
  view = attention_page.TokenView('self-attention', w, tokens, tokens)
  path = attention_page.write([attention_page.Explorer(f'{n} tokens', [view])],
                              os.path.join(folder, f'page_{n}.html'))
  with open(path, encoding='utf-8') as f:
    (payload,) = attention_page.decode(f.read()).values()
  return path, payload['views'][0]['layers']


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--lengths', default='32,128,512')
  parser.add_argument('--rounds', type=int, default=5)
  args = parser.parse_args()
  from playwright.sync_api import sync_playwright
  with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
    b = browser.launch(p)
    print('| tokens | file MB | layers kept | load ms | layer switch ms | hover ms | '
          'model view ms |')
    print('|---|---|---|---|---|---|---|')
    for n in (int(v) for v in args.lengths.split(',')):
      path, kept = page_for(n, folder)
      times = {k: [] for k in ('load', 'layer', 'hover', 'model')}
      for r in range(args.rounds):
        page = b.new_page(viewport={'width': 1200, 'height': 900})
        t = time.perf_counter()
        page.goto('file://' + path)
        page.wait_for_function('window.attentionExplorers && window.attentionExplorers.attn0')
        times['load'].append(1000 * (time.perf_counter() - t))
        times['layer'].append(page.evaluate(TIMED, ['layer', r % len(kept)]))
        times['hover'].append(page.evaluate(TIMED, ['hover', n // 2]))
        times['model'].append(page.evaluate(TIMED, ['model', 0]))
        page.close()
      med = {k: statistics.median(v) for k, v in times.items()}
      print(f'| {n} | {os.path.getsize(path) / 2**20:.2f} | {len(kept)} of 12 | '
            f'{med["load"]:.0f} | {med["layer"]:.0f} | {med["hover"]:.1f} | '
            f'{med["model"]:.0f} |')
    b.close()


if __name__ == '__main__':
  main()
