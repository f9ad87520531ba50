"""Screenshots of attention explorer pages for the README (run by hand, not in CI).

  python docs/figures/explorer_screenshots.py PAGE.html OUT.png [ACTION ...]

Opens PAGE.html in headless Chromium (Debian's package, through Playwright, as
tests/integration/test_browser.py does), performs the actions in order, then
writes a screenshot of the first explorer. Actions: `layer=N` (the first view's
layer selector), `head=H` (double-click: only head H), `hover=q3` or `hover=k3` (a
query or key token), `model` (the model view), `tab=N`.

The README's figures:
  python docs/figures/explorer_screenshots.py runs/mlm_ptb/attention/attention.html \\
      docs/figures/attention_explorer.png layer=2 hover=q3
  python docs/figures/explorer_screenshots.py runs/mlm_ptb/attention/attention.html \\
      docs/figures/attention_explorer_model.png model
  python docs/figures/explorer_screenshots.py runs/vit_fashion/attention/attention.html \\
      docs/figures/attention_explorer_vit.png tab=1
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests import browser  # noqa: E402


def main(page_path: str, out: str, *actions: str) -> None:
  from playwright.sync_api import sync_playwright
  with sync_playwright() as p:
    b = browser.launch(p)
    page = b.new_page(viewport={'width': 1000, 'height': 700}, device_scale_factor=1)
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto('file://' + os.path.abspath(page_path))
    page.wait_for_function('window.attentionExplorers && window.attentionExplorers.attn0')
    view = 'attn0-v0'
    for action in actions:
      name, _, value = action.partition('=')
      if name == 'layer':
        page.select_option(f'#{view}-layer', value)
      elif name == 'head':
        page.dblclick(f'#{view}-head{value}')
      elif name == 'hover':
        page.hover(f'#{view}-{value}')
      elif name == 'model':
        page.click(f'#{view}-mode')
      elif name == 'tab':
        page.click(f'#attn0-tab{value}')
        view = f'attn0-v{value}'
      else:
        raise SystemExit(f'unknown action {action!r}')
    page.locator('#attn0').screenshot(path=out)
    b.close()
  if errors:
    raise SystemExit(f'the page reported errors: {errors}')
  print(f'wrote {out}')


if __name__ == '__main__':
  if len(sys.argv) < 3:
    raise SystemExit(__doc__)
  main(*sys.argv[1:])
