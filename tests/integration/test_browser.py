"""The attention explorer page in a real browser: headless Chromium (Debian's package, installed
by tests/browser.py when absent) opens a page of three real models (the tiny Hugging Face
BERT, T5 and ViT fixtures, imported by transformer.hf), and the test drives it the way a
reader does: select a layer, hover a token, toggle a head, open the model view and click a
thumbnail, switch tabs, move the opacity slider. Each step must change what is drawn (the
screenshots differ, the canvas is not blank), draw exactly the lines the page's data holds
(counted here from the decoded page), and leave the other explorers on the page alone; the
console must stay free of errors and the page must request nothing but itself."""

import io
import os

import matplotlib.image
import numpy as np
import pytest

from tests import browser, helpers
from tools import attention_page, visualize

pytestmark = pytest.mark.slow
FIXTURES = os.path.join(helpers.REPO, 'tests', 'fixtures', 'hf')
MIN_WEIGHT = 0.01   # attention_page.js: lighter lines are not drawn

# Counts the pixels of a canvas that are not transparent.
PAINTED = """id => { const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
PIXELS = """id => { const c = document.getElementById(id);
  return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""


@pytest.fixture(scope='module')
def page_file(tmp_path_factory):
  from PIL import Image
  folder = tmp_path_factory.mktemp('page')
  yy, xx = np.mgrid[0:32, 0:32]
  picture = np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)
  Image.fromarray(picture).save(folder / 'gradient.png')
  explorers = []
  for name, kw in (('bert', dict(ids=[13, 34, 17, 11, 33, 11, 16, 26, 22])),
                   ('t5', dict(ids=[2, 5, 7, 9, 1])),
                   ('vit', dict(image=str(folder / 'gradient.png')))):
    title, views = visualize.hf_views(os.path.join(FIXTURES, name), **kw)
    explorers.append(attention_page.Explorer(title, views))
  path = attention_page.write(explorers, str(folder / 'attention.html'))
  with open(path, encoding='utf-8') as f:
    return path, attention_page.decode(f.read())


@pytest.fixture(scope='module')
def chromium():
  from playwright.sync_api import sync_playwright
  with sync_playwright() as p:
    b = browser.launch(p)
    yield b
    b.close()


def image(png: bytes) -> np.ndarray:
  return matplotlib.image.imread(io.BytesIO(png), format='png')


def lines(view: dict, layer: int, heads, queries=None, keys=None) -> int:
  """How many lines the head view must draw: weights of at least MIN_WEIGHT."""
  w = view['weights'][layer][list(heads)]
  if queries is not None:
    w = w[:, queries]
  if keys is not None:
    w = w[:, :, keys]
  return int((w >= MIN_WEIGHT).sum())


def test_the_page_renders_and_responds(chromium, page_file, tmp_path):
  path, data = page_file
  bert, t5, vit = (data[f'attn{n}-data']['views'] for n in range(3))
  page = chromium.new_page(viewport={'width': 1100, 'height': 900})
  errors, requests = [], []
  page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
  page.on('pageerror', lambda e: errors.append(str(e)))
  page.on('request', lambda r: requests.append(r.url))
  page.goto('file://' + path)
  page.wait_for_function('Object.keys(window.attentionExplorers || {}).length === 3')
  drawn = lambda: int(page.get_attribute('#attn0-v0-lines', 'data-lines'))  # noqa: E731
  shots = {}

  def shot(name, selector='#attn0'):
    shots[name] = page.locator(selector).screenshot(path=str(tmp_path / f'{name}.png'))
    return image(shots[name])

  # BERT: the last layer, every head.
  enc = bert[0]
  last, heads = len(enc['layers']) - 1, range(enc['shape'][1])
  assert page.input_value('#attn0-v0-layer') == str(last)
  assert drawn() == lines(enc, last, heads) > 0
  assert page.evaluate(PAINTED, 'attn0-v0-lines') > 500
  before = shot('bert_last')
  shot('t5_start', '#attn1')
  t5_lines = page.evaluate(PIXELS, 'attn1-v0-lines')
  t5_status = page.inner_text('#attn1-v0-status')
  assert before.std() > 0.01

  page.select_option('#attn0-v0-layer', '0')                      # another layer
  assert drawn() == lines(enc, 0, heads)
  layer0 = shot('bert_layer0')
  assert np.abs(layer0 - before).max() > 0.1

  page.hover('#attn0-v0-q2')                                      # one query's lines
  assert drawn() == lines(enc, 0, heads, queries=[2]) < lines(enc, 0, heads)
  assert 'ae-focus' in page.get_attribute('#attn0-v0-q2', 'class')
  hovered = shot('bert_hover_q2')
  assert np.abs(hovered - layer0).max() > 0.1
  page.hover('#attn0-v0-k4')                                      # one key's lines
  assert drawn() == lines(enc, 0, heads, keys=[4])
  page.mouse.move(1000, 880)
  assert drawn() == lines(enc, 0, heads)

  page.click('#attn0-v0-head1')                                   # head 1 off
  assert drawn() == lines(enc, 0, [0])
  assert 'ae-off' in page.get_attribute('#attn0-v0-head1', 'class')

  page.click('#attn0-v0-mode')                                    # the model view
  assert page.is_hidden('#attn0-v0-headview') and page.is_visible('#attn0-v0-modelview')
  n_layers = len(enc['layers'])
  for layer in range(n_layers):
    for h in heads:
      assert page.evaluate(PAINTED, f'attn0-v0-m{layer}-{h}') == enc['shape'][2] * enc['shape'][3]
  shot('bert_model_view')
  page.click(f'#attn0-v0-m{n_layers - 1}-1')                      # open one in the head view
  assert page.is_visible('#attn0-v0-headview') and page.is_hidden('#attn0-v0-modelview')
  assert page.input_value('#attn0-v0-layer') == str(n_layers - 1)
  assert drawn() == lines(enc, n_layers - 1, [1])

  # The T5 explorer was not touched by any of it; its tabs show the three kinds.
  assert page.evaluate(PIXELS, 'attn1-v0-lines') == t5_lines
  assert page.inner_text('#attn1-v0-status') == t5_status
  assert [page.inner_text(f'#attn1-tab{n}') for n in range(3)] == [v['name'] for v in t5]
  page.click('#attn1-tab2')
  assert page.is_visible('#attn1-v2') and page.is_hidden('#attn1-v0')
  cross = t5[2]
  count = int(page.get_attribute('#attn1-v2-lines', 'data-lines'))
  assert count == lines(cross, len(cross['layers']) - 1, range(cross['shape'][1])) > 0
  assert page.evaluate(PAINTED, 'attn1-v2-lines') > 100
  shot('t5_cross', '#attn1')

  # ViT: the image tab draws the picture under each map; the slider changes the overlay.
  page.click('#attn2-tab1')
  maps = vit[1]['maps']
  assert [page.inner_text(f'#attn2-v1 figure:nth-of-type({n + 1}) figcaption').split(' (max')[0]
          for n in range(len(maps))] == [m['name'] for m in maps]
  first = np.asarray(page.evaluate(PIXELS, 'attn2-v1-map0'))
  assert first.reshape(-1, 4)[:, :3].std() > 10                   # not blank, not flat
  page.fill('#attn2-v1-alpha', '0')
  page.dispatch_event('#attn2-v1-alpha', 'input')
  bare = np.asarray(page.evaluate(PIXELS, 'attn2-v1-map0'))
  assert np.abs(bare - first).max() > 20
  shot('vit_image', '#attn2')

  ids = page.evaluate("[...document.querySelectorAll('[id]')].map(e => e.id)")
  assert len(ids) == len(set(ids)) > 100                          # every id once on the page
  assert errors == []
  assert requests and all(u.startswith(('file://', 'data:')) for u in requests), requests


def test_long_inputs_draw_only_the_strongest_lines(chromium, tmp_path):
  """300 tokens x 12 heads is about 50,000 visible lines: the page draws the strongest 20,000
  or fewer (every weight from a floor it states), and a hovered token gets all of its lines."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 12, 300, 300)) * 3
  w = np.exp(x - x.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  tokens = [f't{i}' for i in range(300)]
  path = attention_page.write([attention_page.Explorer('long', [attention_page.TokenView(
      'self', w, tokens, tokens)])], str(tmp_path / 'long.html'))
  with open(path, encoding='utf-8') as f:
    (view,) = next(iter(attention_page.decode(f.read()).values()))['views']
  page = chromium.new_page()
  errors = []
  page.on('pageerror', lambda e: errors.append(str(e)))
  page.goto('file://' + path)
  page.wait_for_function('window.attentionExplorers && window.attentionExplorers.attn0')
  total = lines(view, 0, range(12))
  assert int(page.get_attribute('#attn0-v0-lines', 'data-total')) == total > 40_000
  drawn = int(page.get_attribute('#attn0-v0-lines', 'data-lines'))
  status = page.inner_text('#attn0-v0-status')
  floor = float(page.get_attribute('#attn0-v0-lines', 'data-floor'))
  assert f'the strongest of {total}, weights from {floor:.3f}' in status
  assert 10_000 < drawn <= 20_000 and floor > 0.01
  # The same dequantized weights (byte / 255 * scale, in doubles) as the page compares.
  assert drawn == int((view['weights'][0] >= floor).sum())
  page.hover('#attn0-v0-q150')
  assert int(page.get_attribute('#attn0-v0-lines', 'data-lines')) == lines(view, 0, range(12),
                                                                           queries=[150])
  assert errors == []
