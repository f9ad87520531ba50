"""tools.visualize on tiny random models: the weights drawn are the model's own."""

import os
import struct

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import app

from configs import lm_shakespeare_char, mlm_ptb, translate_multi30k, vit_fashion_mnist
from tests import helpers
from transformer import checkpoint as ckpt_lib
from tools import attention_page, visualize
from transformer import engine, models, tasks
from transformer import workdir as workdir_lib
from transformer.attention import causal_mask, dot_product_attention, padding_mask
from transformer.model_config import TransformerConfig
from transformer.data.tokenizers import BOS_ID, EOS_ID
from transformer.errors import InputError

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
TINY = dict(d_model=16, num_heads=2, d_ff=32, dropout_rate=0.0, max_len=16)
# The model fields of the real tasks' tiny configs (tiny_config).
TINY_MODEL = dict(d_model=16, num_heads=2, d_ff=32, dropout_rate=0.0, dtype='float32',
                  attention_impl='xla')


def png_size(path) -> tuple[int, int]:
  """(width, height) of a PNG file; fails unless it is one (signature, IHDR, decodable)."""
  with open(path, 'rb') as f:
    head = f.read(24)
  assert head[:8] == PNG_SIGNATURE and head[12:16] == b'IHDR', path
  import matplotlib.image
  pixels = matplotlib.image.imread(path)
  width, height = struct.unpack('>II', head[16:24])
  assert pixels.shape[:2] == (height, width)
  return width, height


def drawn(fig) -> list[list[np.ndarray]]:
  """The image arrays of each panel that has any (colorbars have none)."""
  return [[np.asarray(im.get_array()) for im in ax.images] for ax in fig.axes if ax.images]


def captured_qkv(model, params, *inputs):
  """Each attention module's query/key/value projections, captured from a separate run."""
  model = model.clone(cfg=visualize.visualization_config(model.cfg))
  _, state = jax.jit(lambda p, *x: model.apply(
      {'params': p}, *x, mutable=['intermediates'],
      capture_intermediates=lambda m, _: m.name in ('query', 'key', 'value')))(params, *inputs)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(state['intermediates']))
  out = {}
  for path, value in flat.items():
    if path[-1] == '__call__':
      out.setdefault('/'.join(path[:-2]), {})[path[-2]] = value[0]
  return out


def test_encoder_decoder_weights_are_the_models_own():
  # 'xla' in the config: visualization must switch to the einsum path that sows weights.
  cfg = TransformerConfig(vocab_size=20, num_encoder_layers=1, num_decoder_layers=1,
                          attention_impl='xla', deterministic=True, **TINY)
  model = models.EncoderDecoder(cfg)
  src = jnp.array([[5, 6, 7, 8, 9, 3], [5, 6, 7, 3, 0, 0]], jnp.int32)    # row 1: 2 pad keys
  tgt = jnp.array([[2, 4, 5, 6, 7], [2, 4, 5, 0, 0]], jnp.int32)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), src, tgt)['params']
  logits, maps = visualize.attention_maps(model, params, src, tgt)
  assert logits.shape == (2, 5, 20)
  assert sorted(maps) == sorted(
      ['encoder/layer_0/self_attention'] +
      ['decoder/layer_0/self_attention', 'decoder/layer_0/cross_attention'])
  qkv = captured_qkv(model, params, src, tgt)
  masks = {'self_attention': causal_mask(5), 'cross_attention': padding_mask(src)}
  for path, w in maps.items():
    stack, _, name = path.split('/')
    causal = stack == 'decoder' and name == 'self_attention'
    assert w.shape == (2, 2, 6 if stack == 'encoder' else 5, 5 if causal else 6)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)          # every row is a distribution
    mask = padding_mask(src) if stack == 'encoder' else masks[name]
    _, expected = dot_product_attention(qkv[path]['query'], qkv[path]['key'], qkv[path]['value'],
                                        mask=mask, return_weights=True)
    np.testing.assert_allclose(w, expected, atol=1e-6, err_msg=path)
    if causal:
      future = np.triu(np.ones((5, 5), bool), 1)
      assert np.all(w[..., future] == 0.0) and np.all(w[..., ~future] > 0.0)
    else:
      assert np.all(w[1, :, :, 4:] == 0.0)                          # padded source keys
      assert np.all(w[1, :, :, :4] > 0.0)
  # select_layer counts from the end like Python; out of range is an error.
  layer, w = visualize.select_layer(maps, 'cross', -1)
  assert layer == 0 and w is maps['decoder/layer_0/cross_attention']
  with pytest.raises(ValueError, match='layers 0..0'):
    visualize.select_layer(maps, 'decoder', 1)


def test_plot_attention_draws_each_head_and_writes_pngs(tmp_path):
  rng = np.random.default_rng(0)
  weights = rng.dirichlet(np.ones(5), size=(3, 4)).astype(np.float32)   # [heads, q=4, kv=5]
  x, y = list('abcde'), list('wxyz')
  grid = visualize.plot_attention(weights, x, y, head=-1, title='all')
  panels = drawn(grid)
  assert len(panels) == 3
  for h in range(3):
    np.testing.assert_array_equal(panels[h][0], weights[h])
  assert [t.get_text() for t in grid.axes[0].get_xticklabels()] == x
  assert [t.get_text() for t in grid.axes[0].get_yticklabels()] == y
  one = visualize.plot_attention(weights, x, y, head=-1 + 3, title='head 2')
  (only,) = drawn(one)
  np.testing.assert_array_equal(only[0], weights[2])
  paths = [visualize.save(grid, str(tmp_path / 'grid.png')),
           visualize.save(one, str(tmp_path / 'one.png'))]
  assert sorted(os.listdir(tmp_path)) == ['grid.png', 'one.png']
  assert all(min(png_size(p)) > 100 for p in paths)
  with pytest.raises(ValueError, match='labels'):
    visualize.plot_attention(weights, x[:4], y)
  with pytest.raises(ValueError, match='heads 0..2'):
    visualize.plot_attention(weights, x, y, head=3)


def tiny_vit(pool):
  return TransformerConfig(vocab_size=1, num_encoder_layers=1, num_decoder_layers=0, image_size=8,
                           patch_size=4, num_channels=1, num_classes=3, pool=pool,
                           positional='learned', deterministic=True, **TINY)


@pytest.mark.parametrize('pool', ['gap', 'cls'])
def test_vit_patch_attention_and_overlay(pool, tmp_path):
  model = models.ViT(tiny_vit(pool))
  images = jax.random.normal(jax.random.PRNGKey(1), (1, 8, 8, 1))
  params = jax.jit(model.init)(jax.random.PRNGKey(0), images)['params']
  _, maps = visualize.attention_maps(model, params, images)
  _, w = visualize.select_layer(maps, 'encoder', -1)
  n = 4 + (pool == 'cls')
  assert w.shape == (1, 2, n, n)
  np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
  received = visualize.patch_attention(w[0], (2, 2), pool)
  assert received.shape == (2, 2, 2)
  if pool == 'gap':   # mean over the 4 query patches of the weight each patch receives
    np.testing.assert_allclose(received.reshape(2, 4), w[0].mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(received.sum((1, 2)), 1.0, atol=1e-5)
  else:               # the class token's row, without its weight on itself
    np.testing.assert_array_equal(received.reshape(2, 4), w[0, :, 0, 1:])
    np.testing.assert_allclose(received.sum((1, 2)) + w[0, :, 0, 0], 1.0, atol=1e-5)
  fig = visualize.plot_patch_attention(np.zeros((8, 8, 1)), received, [0, 1])
  panels = drawn(fig)
  assert len(panels) == 4                          # input, head 0, head 1, mean over heads
  for h in range(2):
    np.testing.assert_array_equal(panels[1 + h][1], received[h])
  np.testing.assert_allclose(panels[3][1], received.mean(0))
  if pool == 'gap':
    # Learned position tables come out of the params as they are, with the patch-grid map.
    (name, table), = visualize.learned_position_tables(params).items()
    assert name == 'pos_embedding'
    np.testing.assert_array_equal(table, np.asarray(nn.meta.unbox(params)['pos_embedding'])[0])
    paths = visualize.posenc_figures(str(tmp_path), 10, 8, params, model.cfg)
    assert sorted(os.listdir(tmp_path)) == ['posenc_pos_embedding.png',
                                            'posenc_vit_similarity.png']
    assert all(png_size(p) for p in paths)


def test_sinusoidal_heatmap_is_the_formula(tmp_path):
  length, width = 40, 24
  (table,), = drawn(visualize.sinusoidal_figure(length, width))
  expected = np.zeros((length, width))
  for pos in range(length):
    for i in range(width // 2):
      angle = pos / 10000 ** (2 * i / width)
      expected[pos, 2 * i], expected[pos, 2 * i + 1] = np.sin(angle), np.cos(angle)
  np.testing.assert_allclose(table, expected, atol=1e-6)
  (path,) = visualize.posenc_figures(str(tmp_path), length, width)   # no model: the table only
  assert os.path.basename(path) == 'posenc_sinusoidal_40x24.png' and png_size(path)


# ----------------------------------------------------------------------------- real tasks

def tiny_config(module, **fields):
  return helpers.tiny_config(module, TINY_MODEL, **fields)


def fresh_checkpoint(config, workdir):
  """A workdir with a step-0 checkpoint of a randomly initialized model (no training)."""
  exp = engine.Experiment(config, workdir)
  ckpt = ckpt_lib.Checkpointer(workdir_lib.checkpoint_dir(workdir))
  ckpt.save(0, exp.unreplicate(exp.init_state()))
  ckpt.close()
  return exp


@pytest.mark.slow
def test_translation_decodes_then_draws_all_three_kinds(tmp_path, data_dir):
  c = tiny_config(translate_multi30k, vocab_size=300, spm_max_sentences=2000, seq_len=24)
  c.model.update(num_encoder_layers=2, num_decoder_layers=1)
  c.decoding.update(method='greedy', extra_len=6)
  task = tasks.make_task(c, str(tmp_path))
  model = task.model(train=False)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), *task.init_inputs())['params']
  text = 'Ein Mann mit einem Hut.'
  r = visualize.translate_and_attend(task, params, text)
  tok = task.data.tokenizer
  assert r['source_ids'] == tok.encode(text) + [EOS_ID]
  expected = np.asarray(task.translate_tokens(params, np.asarray([r['source_ids']])))[0]
  n = len(r['output_ids'])
  assert r['output_ids'] == expected[:n].tolist() and np.all(expected[n:] == 0)
  assert r['targets_in'] == [BOS_ID] + r['output_ids'][:-1]
  _, cross = visualize.select_layer(r['maps'], 'cross', -1)
  assert cross.shape == (1, 2, n, len(r['source_ids']))
  assert visualize.token_labels(tok, r['source_ids'])[-1] == '</s>'
  out = str(tmp_path / 'figures')
  paths = visualize.draw_translation(r, tok, text, out, head=-1)
  paths += visualize.draw_translation(r, tok, text, out, head=1, kinds=['cross'])
  assert sorted(os.path.basename(p) for p in paths) == sorted(os.listdir(out)) == sorted(
      ['encoder_layer1_heads.png', 'decoder_layer0_heads.png', 'cross_layer0_heads.png',
       'cross_layer0_head1.png'])
  assert all(png_size(p) for p in paths)
  # The page's three tabs: every layer of the same maps, labelled by the same tokens.
  labels = [visualize.token_labels(tok, r[k]) for k in ('source_ids', 'targets_in', 'output_ids')]
  enc, dec, cross = visualize.translation_views(r['maps'], *labels)
  assert (enc.layers, dec.layers, cross.layers) == ([0, 1], [0], [0])
  np.testing.assert_array_equal(cross.weights[0], r['maps']['decoder/layer_0/cross_attention'][0])
  np.testing.assert_array_equal(enc.weights[1], r['maps']['encoder/layer_1/self_attention'][0])
  assert (cross.queries, cross.keys, dec.queries) == (labels[2], labels[0], labels[1])
  assert dec.causal and not enc.causal
  title, views = visualize.run_views(c, task, params, text=text)   # what --html shows
  assert title == f'{text}  \u2192  {r["translation"]}' and len(views) == 3
  np.testing.assert_array_equal(views[2].weights, cross.weights)
  with pytest.raises(InputError, match=r'tokens; the model has \d+ positions: shorten it'):
    visualize.translate_and_attend(task, params, 'ein ' * 80)


@pytest.mark.slow
def test_vit_from_a_checkpoint(tmp_path, data_dir):
  c = tiny_config(vit_fashion_mnist, data_dir=data_dir)
  c.model.num_encoder_layers = 2
  workdir = str(tmp_path / 'run')
  fresh_checkpoint(c, workdir)
  task, params, step = visualize.restore(c, workdir)
  assert step == 0
  out = str(tmp_path / 'figures')
  paths = visualize.vit_figures(task, params, 'test', 3, out, layer=0, head=-1)
  paths += visualize.vit_figures(task, params, 'test', 3, out, head=1)
  assert sorted(os.listdir(out)) == ['vit_layer0_heads.png', 'vit_layer1_head1.png',
                                     'vit_rollout.png']
  assert all(png_size(p) for p in paths)
  page = visualize.attention_html(c, workdir, str(tmp_path / 'page' / 'attention.html'),
                                  split='test', index=3)
  with open(page, encoding='utf-8') as f:
    (payload,) = attention_page.decode(f.read()).values()
  tokens, over_image = payload['views']
  image, x, _ = visualize.image_example(task.data, 'test', 3)
  _, maps = visualize.attention_maps(task.model(train=False), params, jnp.asarray(x[None]))
  expected = visualize.stacked(maps, 'encoder', 'self_attention')
  step = expected.max(axis=(-2, -1), keepdims=True) / 255
  assert np.all(np.abs(tokens['weights'] - expected) <= step / 2 + 1e-6)
  np.testing.assert_array_equal(over_image['image'], image[..., 0])
  g = 28 // c.model.patch_size
  rollout = visualize.rollout_map(visualize.attention_rollout(list(expected)), (g, g),
                                  c.model.pool)
  (first,) = [m for m in over_image['maps'] if m['name'].startswith('attention rollout')]
  assert np.all(np.abs(first['values'] - rollout) <= rollout.max() / 510 + 1e-6)
  image, x, label = visualize.image_example(task.data, 'test', 3)
  assert image.shape == (28, 28, 1) and image.dtype == np.uint8 and x.shape == (28, 28, 1)
  assert label == task.data.labels('test')[3]
  with pytest.raises(ValueError, match='out of range'):
    visualize.image_example(task.data, 'test', 10_000)


@pytest.mark.slow
def test_command_line_lm_attention(tmp_path, data_dir):
  c = tiny_config(lm_shakespeare_char, seq_len=16)
  c.model.num_decoder_layers = 2
  workdir = str(tmp_path / 'run')
  exp = fresh_checkpoint(c, workdir)
  tok = exp.task.data.tokenizer
  assert visualize.token_labels(tok, tok.encode('RO: h\n')) == ['R', 'O', ':', '\u2423', 'h', '\\n']
  flags = ['--config=configs/lm_shakespeare_char.py', f'--workdir={workdir}',
           '--config.seq_len=16', '--config.model.d_model=16', '--config.model.num_heads=2',
           '--config.model.d_ff=32', '--config.model.num_decoder_layers=2',
           '--config.model.dropout_rate=0.0']
  p = helpers.run_python(['-m', 'tools.visualize', 'attention', *flags, '--text=ROMEO: hi',
                          '--layer=0'])
  assert p.returncode == 0, p.stderr[-2000:]
  out = os.path.join(workdir, 'attention')
  assert os.listdir(out) == ['decoder_layer0_heads.png']
  png_size(os.path.join(out, 'decoder_layer0_heads.png'))
  with pytest.raises(app.UsageError, match='attention[|]posenc'):
    visualize.main(['visualize', 'heatmap'])
  p = helpers.run_python(['-m', 'tools.visualize', 'attention', '--html', *flags,
                          '--text=ROMEO: hi', '--layers=-1'])
  assert p.returncode == 0, p.stderr[-2000:]
  with open(os.path.join(out, 'attention.html'), encoding='utf-8') as f:
    (payload,) = attention_page.decode(f.read()).values()
  (view,) = payload['views']
  assert view['layers'] == [1] and view['causal'] and view['queries'] == list('ROMEO:\u2423hi')
  w = view['weights'][0]
  assert np.all(w[:, np.triu_indices(9, 1)[0], np.triu_indices(9, 1)[1]] == 0)
  assert np.all(np.abs(w.sum(-1) - 1) <= 9 * w.max() / 510 + 1e-6)
  # --split/--index: window 3 of the validation stream (seq_len 16 characters).
  page = visualize.attention_html(c, workdir, os.path.join(out, 'window.html'),
                                  split='validation', index=3)
  with open(page, encoding='utf-8') as f:
    (payload,) = attention_page.decode(f.read()).values()
  window = exp.task.data._streams['validation'][48:64]
  assert payload['views'][0]['queries'] == visualize.token_labels(tok, window)
  assert payload['title'].endswith('tiny_shakespeare validation #3')
  with pytest.raises(InputError, match='out of range'):
    visualize.attention_html(c, workdir, os.path.join(out, 'x.html'), split='validation',
                             index=10**6)


@pytest.mark.slow
def test_mlm_page_is_bidirectional(tmp_path, data_dir):
  c = tiny_config(mlm_ptb, seq_len=16, data_dir=data_dir)
  c.model.update(num_encoder_layers=2, max_len=16)
  workdir = str(tmp_path / 'run')
  exp = fresh_checkpoint(c, workdir)
  text = 'the company said it would buy the stock'
  page = visualize.attention_html(c, workdir, str(tmp_path / 'attention.html'), text=text)
  with open(page, encoding='utf-8') as f:
    (payload,) = attention_page.decode(f.read()).values()
  (view,) = payload['views']
  ids = exp.task.data.tokenizer.encode(text)
  assert view['name'].startswith('encoder') and not view['causal']
  assert view['queries'] == visualize.token_labels(exp.task.data.tokenizer, ids) == text.split()
  assert np.all(view['weights'] > 0)                        # every token sees every token
  with pytest.raises(InputError, match='the model has 16 positions'):
    visualize.attention_html(c, workdir, str(tmp_path / 'long.html'), text=text + ' a' * 9)


def test_confusion_matrix_is_drawn_as_row_fractions(tmp_path):
  matrix = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
  fig = visualize.plot_confusion(matrix, ['a', 'b', 'c'])
  (image,), = drawn(fig)
  np.testing.assert_allclose(image, [[0.8, 0.2, 0.0], [0.25, 0.25, 0.5], [0.0, 0.0, 0.0]])
  csv_path = tmp_path / 'confusion_matrix_test_step3.csv'
  csv_path.write_text('true \\ predicted,a,b,c\na,8,2,0\nb,1,1,2\nc,0,0,0\n')
  png = visualize.confusion_png(str(csv_path))
  assert png == str(tmp_path / 'confusion_matrix_test_step3.png') and min(png_size(png)) > 100


def test_the_readme_s_hugging_face_attention_commands_run(tmp_path):
  """The README's `tools.visualize attention --hf=...` on a converted workdir crashed with
  DuplicateFlagError (tools.convert defined --hf at import, as tools.visualize does), and on a
  Hugging Face folder wrote the figures into the model's folder. Both README commands, on the
  tiny BERT fixture: the Hugging Face folder (to --out) and its converted workdir."""
  import shutil
  import subprocess
  import sys
  fixture = os.path.join(helpers.REPO, 'tests', 'fixtures', 'hf', 'bert')
  model = tmp_path / 'bert-base-uncased'
  shutil.copytree(fixture, model)
  ids = '--ids=2,5,7,9,3'   # the fixture has no tokenizer.json: ids instead of --text
  run = lambda *args: subprocess.run([sys.executable, '-m', *args], cwd=helpers.REPO,  # noqa
                                     capture_output=True, text=True, timeout=300)
  res = run('tools.visualize', 'attention', f'--hf={model}', ids)   # no --out: refused
  assert res.returncode == 2 and 'never written into' in res.stderr, res.stderr[-2000:]
  res = run('tools.visualize', 'attention', f'--hf={model}', f'--out={tmp_path / "figs"}', ids)
  assert res.returncode == 0, res.stderr[-2000:]
  assert sorted(os.listdir(model)) == sorted(os.listdir(fixture))   # the model folder untouched
  assert [f for f in os.listdir(tmp_path / 'figs') if f.endswith('.png')]
  res = run('tools.convert', 'import', f'--hf={model}', f'--workdir={tmp_path / "runs"}')
  assert res.returncode == 0, res.stderr[-2000:]
  res = run('tools.visualize', 'attention', f'--hf={tmp_path / "runs"}', ids)
  assert res.returncode == 0, res.stderr[-2000:]
  assert 'DuplicateFlagError' not in res.stderr
  assert [f for f in os.listdir(tmp_path / 'runs' / 'attention') if f.endswith('.png')]
