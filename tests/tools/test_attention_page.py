"""tools/attention_page.py and `tools.visualize attention --html`: the page's data is the
model's attention, the page needs no network, rollout is the formula, bad input is one line.

The page in a real browser: tests/integration/test_browser.py."""

import html.parser
import os
import re

import numpy as np
import pytest

from tests import helpers
from tools import attention_page, fault_campaign, visualize
from transformer import hf, models

FIXTURES = os.path.join(helpers.REPO, 'tests', 'fixtures', 'hf')


def softmax_rows(rng, *shape):
  x = rng.normal(size=shape) * 3
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


class Attributes(html.parser.HTMLParser):
  """Every start tag and its attributes, in order."""

  def __init__(self):
    super().__init__()
    self.tags = []

  def handle_starttag(self, tag, attrs):
    self.tags.append((tag, dict(attrs)))


def parse(page: str) -> list:
  p = Attributes()
  p.feed(page)
  p.close()
  return p.tags


def assert_offline(page: str) -> None:
  """No external reference: no src or href at all, no <link>, no url() or @import in the
  style, nothing fetched by the script."""
  tags = parse(page)
  assert tags and tags[0][0] == 'html'
  for tag, attrs in tags:
    assert tag not in ('link', 'iframe', 'img', 'object', 'embed'), tag
    assert not {'src', 'href', 'srcset', 'action'} & set(attrs), (tag, attrs)
  style = re.search(r'<style>(.*?)</style>', page, re.S).group(1)
  assert 'url(' not in style and '@import' not in style
  script = page[page.rindex('<script>'):]
  for call in ('fetch(', 'XMLHttpRequest', 'import(', 'WebSocket', '.src', 'http'):
    assert call not in script, call


def test_the_page_holds_the_weights_within_one_quantization_step():
  rng = np.random.default_rng(0)
  weights = softmax_rows(rng, 3, 4, 6, 7)                   # [layers, heads, q, k]
  weights[1, 2] = 0.0
  weights[1, 2, :, 0] = 1.0                                 # a head that looks at one key
  queries = ['the', 'cat', '</script><script>alert(1)</script>', '<!--', '"q"', 'é\u2423']
  keys = [f'k{j}' for j in range(7)]
  view = attention_page.TokenView('self', weights, queries, keys, layers=[0, 5, 11])
  page = attention_page.render([attention_page.Explorer('a "title" <b>', [view])])
  assert_offline(page)
  (payload,) = attention_page.decode(page).values()
  (v,) = payload['views']
  assert v['queries'] == queries and v['keys'] == keys and v['layers'] == [0, 5, 11]
  step = weights.max(axis=(-2, -1), keepdims=True) / 255   # one quantization step per head
  error = np.abs(v['weights'] - weights)
  assert np.all(error <= step / 2 + 1e-9)
  assert error.max() > 0                                    # it is quantized: not the floats
  assert np.all(np.abs(v['weights'].sum(-1) - 1.0) <= 7 * step[..., 0] / 2 + 1e-9)
  np.testing.assert_array_equal(v['weights'][1, 2, :, 0], 1.0)
  # Compact: one byte per weight, base64.
  assert len(v['data']) == 4 * -(-weights.size // 3)


def test_several_explorers_on_one_page_keep_their_own_ids():
  rng = np.random.default_rng(1)
  make = lambda n: attention_page.Explorer(f'model {n}', [   # noqa: E731
      attention_page.TokenView('self', softmax_rows(rng, 2, 2, 3, 3), 'abc', 'abc'),
      attention_page.ImageView('image', rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                               {'rollout': rng.random((2, 2))})])
  page = attention_page.render([make(0), make(1)])
  ids = [a['id'] for _, a in parse(page) if 'id' in a]
  assert ids == ['attn0', 'attn0-data', 'attn1', 'attn1-data']
  data = attention_page.decode(page)
  assert sorted(data) == ['attn0-data', 'attn1-data']
  image = data['attn1-data']['views'][1]
  assert image['image'].shape == (8, 8, 3) and image['maps'][0]['values'].shape == (2, 2)


def test_layer_filter_and_size_cap_say_what_was_dropped():
  rng = np.random.default_rng(2)
  enc = attention_page.TokenView('enc', softmax_rows(rng, 12, 2, 4, 4), *[list('abcd')] * 2)
  dec = attention_page.TokenView('dec', softmax_rows(rng, 6, 2, 3, 3), *[list('xyz')] * 2)
  views, notes = attention_page.layer_filter([enc, dec], [0, -1], 1e9)
  assert [v.layers for v in views] == [[0, 11], [0]] and notes == []
  np.testing.assert_array_equal(views[0].weights[1], enc.weights[11])
  # 12 layers of 2 x 4 x 4 (+ 2 x 3 x 3 for the first 6) bytes; room for 4 of the largest.
  views, notes = attention_page.layer_filter([enc, dec], None, 4 * (32 + 18))
  assert views[0].layers == [0, 4, 7, 11] and views[1].layers == [0, 4]
  assert len(notes) == 1 and 'Layers 1-3, 5-6, 8-10 left out' in notes[0]
  with pytest.raises(attention_page.PageError, match='no layer 12; the model has layers 0..11'):
    attention_page.layer_filter([enc, dec], [3, 12], 1e9)
  with pytest.raises(attention_page.PageError, match='labels'):
    attention_page.TokenView('bad', enc.weights, list('abc'), list('abcd'))


def test_rollout_is_the_formula_on_a_tiny_vit():
  """The page's maps of the tiny Hugging Face ViT against rollout computed here in float64
  from Hugging Face's own attention weights (the fixture's, written by transformers)."""
  ref = np.load(os.path.join(FIXTURES, 'vit', 'outputs.npz'))
  cfg, params = hf.from_hf(*hf.read_checkpoint(os.path.join(FIXTURES, 'vit')))
  images = np.transpose(ref['pixel_values'], (0, 2, 3, 1))   # NCHW -> NHWC
  _, maps = visualize.attention_maps(models.ViT(cfg), params, images[:1])
  layers = visualize.stacked(maps, 'encoder', 'self_attention')
  theirs = np.stack([ref[f'attention_{i}'][0] for i in range(len(layers))]).astype(np.float64)
  np.testing.assert_allclose(layers, theirs, atol=1e-5)
  # Abnar and Zuidema (2020), eq. in section 3: A_hat = 0.5 A + 0.5 I, rollout = product.
  expected = np.eye(theirs.shape[-1])
  for a in theirs:
    a_hat = 0.5 * a.mean(0) + 0.5 * np.eye(len(expected))
    a_hat = a_hat / a_hat.sum(-1, keepdims=True)
    expected = a_hat @ expected
  got = visualize.attention_rollout(list(layers))
  np.testing.assert_allclose(got, expected, atol=1e-5)
  np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-6)
  g = cfg.image_size // cfg.patch_size
  drawn = visualize.vit_maps(list(layers), (g, g), 'cls')
  names = list(drawn)
  assert names[0] == 'attention rollout, all layers' and len(names) == 1 + cfg.num_heads + 1
  np.testing.assert_allclose(drawn[names[0]], expected[0, 1:].reshape(g, g), atol=1e-5)
  for h in range(cfg.num_heads):   # the last layer's [CLS] row per head, without itself
    np.testing.assert_allclose(drawn[names[1 + h]], theirs[-1, h, 0, 1:].reshape(g, g),
                               atol=1e-5)
  no_cls = expected[1:, 1:]   # pool='gap': no class token, the mean over every row
  np.testing.assert_allclose(visualize.rollout_map(no_cls, (g, g), 'gap'),
                             no_cls.mean(0).reshape(g, g))
  # One layer of uniform attention over N tokens: 0.5 I + 0.5 / N everywhere.
  n = 5
  np.testing.assert_allclose(visualize.attention_rollout([np.full((2, n, n), 1 / n)]),
                             0.5 * np.eye(n) + 0.5 / n)


@pytest.mark.parametrize('name,kind', [('bert', 'encoder'), ('gpt2', 'decoder')])
def test_hugging_face_page_is_the_models_attention(name, kind):
  ids = [13, 34, 17, 11, 33, 11, 16, 26, 22]
  title, views = visualize.hf_views(os.path.join(FIXTURES, name), ids=ids)
  cfg, params = hf.from_hf(*hf.read_checkpoint(os.path.join(FIXTURES, name)))
  model = getattr(models, hf.ARCHITECTURES[name].model)(cfg)
  _, maps = visualize.attention_maps(model, params, np.asarray([ids], np.int32))
  page = attention_page.render([attention_page.Explorer(title, views)])
  (v,) = next(iter(attention_page.decode(page).values()))['views']
  expected = visualize.stacked(maps, kind, 'self_attention')
  assert v['name'].startswith(kind) and v['causal'] == (kind == 'decoder')
  assert v['queries'] == [str(i) for i in ids]
  step = expected.max(axis=(-2, -1), keepdims=True) / 255
  assert np.all(np.abs(v['weights'] - expected) <= step / 2 + 1e-6)
  if kind == 'decoder':
    assert np.all(v['weights'][..., np.triu_indices(len(ids), 1)[0],
                               np.triu_indices(len(ids), 1)[1]] == 0)


def test_t5_page_translates_then_shows_three_kinds(tmp_path):
  title, views = visualize.hf_views(os.path.join(FIXTURES, 't5'), ids=[2, 5, 7, 9, 1])
  assert [v.name for v in views] == ['encoder self-attention', 'decoder self-attention',
                                     'cross-attention']
  enc, dec, cross = views
  out_len = len(cross.queries)
  assert enc.weights.shape[2:] == (5, 5) and dec.weights.shape[2:] == (out_len, out_len)
  assert cross.weights.shape[2:] == (out_len, 5) and cross.keys == ['2', '5', '7', '9', '1']
  assert dec.queries[0] == '0' and dec.queries[1:] == cross.queries[:-1]   # start, then outputs
  np.testing.assert_allclose(cross.weights.sum(-1), 1.0, atol=1e-5)


def run_visualize(*args):
  return helpers.run_python(['-m', 'tools.visualize', 'attention', *args])


@pytest.mark.slow
def test_html_command_and_its_bad_input(tmp_path):
  image = tmp_path / 'cat.png'
  from PIL import Image
  Image.fromarray(np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)).save(image)
  vit = os.path.join(FIXTURES, 'vit')
  p = run_visualize('--html', f'--hf={vit}', f'--image={image}', f'--out={tmp_path / "v"}')
  assert p.returncode == 0, p.stderr[-2000:]
  page = (tmp_path / 'v' / 'attention.html').read_text()
  assert_offline(page)
  views = next(iter(attention_page.decode(page).values()))['views']
  assert [v['kind'] for v in views] == ['tokens', 'image']
  assert views[1]['image'].shape == (8, 8, 3)              # resized to the model's 8 x 8
  p = run_visualize(f'--hf={vit}', f'--image={image}', f'--out={tmp_path / "png"}')
  assert p.returncode == 0 and os.listdir(tmp_path / 'png') == ['vit_rollout.png']
  # The same model converted to a workdir: the page goes into it, with the same weights.
  run = tmp_path / 'vit_run'
  p = helpers.run_python(['-m', 'tools.convert', 'import', f'--hf={vit}', f'--workdir={run}'])
  assert p.returncode == 0, p.stderr[-2000:]
  p = run_visualize('--html', f'--hf={run}', f'--image={image}')
  assert p.returncode == 0, p.stderr[-2000:]
  converted = (run / 'attention' / 'attention.html').read_text()
  again = next(iter(attention_page.decode(converted).values()))['views']
  np.testing.assert_array_equal(again[0]['weights'], views[0]['weights'])
  np.testing.assert_array_equal(again[1]['maps'][0]['values'], views[1]['maps'][0]['values'])
  gpt2 = os.path.join(FIXTURES, 'gpt2')
  out = f'--out={tmp_path / "x"}'
  cases = [
      ([f'--hf={gpt2}', '--ids=' + ','.join(['5'] * 17), out], '17 tokens; the model has 16'),
      ([f'--hf={gpt2}', '--ids=5,6', '--layers=0,2', out], 'no layer 2; the model has layers'),
      ([f'--hf={gpt2}', '--ids=5,6', '--layers=one', out], 'give whole numbers'),
      ([f'--hf={vit}', out], 'pass --image=FILE'),
      ([f'--hf={vit}', f'--image={tmp_path / "missing.png"}', out], 'cannot read it as an image'),
      ([f'--hf={gpt2}', f'--image={image}', '--ids=5', out], '--image is for ViT'),
      ([f'--workdir={tmp_path / "empty"}', '--config=configs/lm_shakespeare_char.py'],
       'No checkpoint in'),
  ]
  os.makedirs(tmp_path / 'empty')
  for args, message in cases:
    p = run_visualize('--html', *args)
    problem = fault_campaign.one_line_error(p.returncode, p.stdout, p.stderr, message)
    assert problem is None, (args, problem, p.stderr[-1500:])
