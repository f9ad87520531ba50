"""Image classification end to end: the ViT's pieces, the loss, training, eval.py, fine-tuning."""

import csv
import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vit_mnist
from tests import helpers
from transformer import checkpoint as ckpt_lib
from transformer import model_config as model_config_lib
from transformer import engine, layers, models, pretrained, tasks
from transformer.data import DataError
from transformer.metric_writer import read_metrics
from transformer.tasks import classification

TINY_MODEL = dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1)
TINY = dict(batch_size=16, eval_batch_size=768, eval_max_batches=1, log_every_steps=1,
            eval_every_steps=1000, checkpoint_every_steps=1000, warmup_steps=2)
TINY_FLAGS = ['--config.model.d_model=16', '--config.model.num_heads=2',
              '--config.model.d_ff=32', '--config.model.num_encoder_layers=1',
              '--config.batch_size=16', '--config.log_every_steps=1']


def tiny(**overrides):
  return helpers.tiny_config(vit_mnist, TINY_MODEL, **{**TINY, **overrides})


def vit_cfg(**kw):
  values = dict(image_size=8, patch_size=4, num_channels=3, num_classes=5, d_model=8,
                num_heads=2, d_ff=16, num_encoder_layers=1, num_decoder_layers=0,
                dropout_rate=0.0, norm_position='pre', activation='gelu', positional='learned',
                pool='gap', scale_embeddings=False, vocab_size=1)
  values.update(kw)
  return model_config_lib.from_dict(values)


def random_vit_params(cfg, seed=0, image_shape=None):
  """ViT params of the right shapes filled from NumPy (no compilation: init is traced only)."""
  image_shape = image_shape or (cfg.image_size, cfg.image_size, cfg.num_channels)
  return helpers.random_params(models.ViT(cfg.replace(deterministic=True)),
                               jax.ShapeDtypeStruct((1, *image_shape), jnp.float32), seed=seed)


# -- the model's pieces ---------------------------------------------------------------------

def test_patch_embedding_is_an_explicit_reshape_and_project():
  cfg = vit_cfg(image_size=12, patch_size=4, num_channels=3, d_model=8)
  images = jax.random.normal(jax.random.PRNGKey(1), (2, 12, 8, 3))   # a 3x2 grid, non-square
  model = models.ViT(cfg.replace(deterministic=True))
  params = random_vit_params(cfg, image_shape=(12, 8, 3))
  _, state = jax.jit(lambda p, x: model.apply({'params': p}, x, capture_intermediates=True))(
      params, images)
  got = np.asarray(state['intermediates']['patch_embed']['__call__'][0], np.float64)
  kernel = np.asarray(params['patch_embed']['kernel'], np.float64)
  bias = np.asarray(params['patch_embed']['bias'], np.float64)
  x = np.asarray(images, np.float64)
  p = 4
  want = np.zeros((2, 6, 8))
  for b in range(2):
    for gi in range(3):          # patches in row-major order over the grid
      for gj in range(2):
        patch = x[b, gi * p:(gi + 1) * p, gj * p:(gj + 1) * p, :]   # [p, p, C]
        want[b, gi * 2 + gj] = patch.reshape(-1) @ kernel + bias   # (row, col, channel) order
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_resize_posemb_keeps_the_grid_at_the_same_size_and_resizes_smoothly():
  rng = np.random.default_rng(0)
  posemb = rng.normal(size=(1, 1 + 16, 6)).astype(np.float32)   # a class token + a 4x4 grid
  same = layers.resize_posemb(jnp.asarray(posemb), (4, 4), num_prefix_tokens=1)
  np.testing.assert_array_equal(np.asarray(same), posemb)
  bigger = np.asarray(layers.resize_posemb(jnp.asarray(posemb), (8, 8), num_prefix_tokens=1))
  assert bigger.shape == (1, 65, 6)
  np.testing.assert_array_equal(bigger[:, 0], posemb[:, 0])       # the class token is kept
  # Bilinear resizing reproduces an affine function of the patch position away from the
  # border: grid value 3*row + col; output k sits at input position (k + 1/2) / 2 - 1/2.
  affine = np.add.outer(3.0 * np.arange(4), np.arange(4)).astype(np.float32)
  up = np.asarray(layers.resize_posemb(jnp.asarray(affine.reshape(1, 16, 1)), (8, 8)))[0, :, 0]
  pos = (np.arange(8) + 0.5) / 2 - 0.5
  want = np.add.outer(3.0 * pos, pos)
  np.testing.assert_allclose(up.reshape(8, 8)[1:7, 1:7], want[1:7, 1:7], atol=1e-5)
  ramp = np.arange(16, dtype=np.float32).reshape(1, 16, 1) * np.ones((1, 1, 2), np.float32)
  down = np.asarray(layers.resize_posemb(jnp.asarray(ramp), (2, 2)))
  assert down.shape == (1, 4, 2) and np.all(np.diff(down[0, :, 0])[[0, 2]] > 0)


def test_adapt_params_resizes_posemb_and_reinitializes_a_new_head():
  old = random_vit_params(vit_cfg(image_size=8, num_classes=5), seed=1)
  new = random_vit_params(vit_cfg(image_size=16, num_classes=7), seed=2)
  adapted, notes = pretrained.adapt_params(old, new)
  assert adapted['pos_embedding'].shape == (1, 16, 8)
  np.testing.assert_allclose(adapted['pos_embedding'],
                             layers.resize_posemb(old['pos_embedding'], (4, 4)), rtol=1e-6)
  np.testing.assert_array_equal(adapted['head']['kernel'], new['head']['kernel'])   # as given
  np.testing.assert_array_equal(adapted['patch_embed']['kernel'], old['patch_embed']['kernel'])
  assert any('pos_embedding' in n for n in notes) and any('head' in n for n in notes)
  with pytest.raises(ValueError, match='only pos_embedding and the heads'):
    pretrained.adapt_params(old, random_vit_params(vit_cfg(d_model=12)))


# -- the loss -------------------------------------------------------------------------------

def test_classification_sums_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 120)).astype(np.float32)
  labels = rng.integers(0, 120, 6)
  mix_labels = rng.integers(0, 120, 6)
  weights = np.array([1, 1, 1, 1, 1, 0], np.float32)
  lam, eps = 0.7, 0.1
  got = classification.classification_sums(
      jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(weights), label_smoothing=eps,
      mix_labels=jnp.asarray(mix_labels), mix_ratio=jnp.full(6, lam), top5=True)
  x = logits.astype(np.float64)
  logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
  target = np.zeros((6, 120))
  target[np.arange(6), labels] += lam
  target[np.arange(6), mix_labels] += 1 - lam
  target = (1 - eps) * target + eps / 120
  want = (-(target * logp).sum(-1) * weights).sum()
  np.testing.assert_allclose(got['objective'], want, rtol=1e-5)
  assert got['weight'] == 5
  assert got['correct'] == ((logits.argmax(-1) == labels) * weights).sum()
  top5 = np.argsort(-logits, -1)[:, :5]
  assert got['correct_top5'] == ((top5 == labels[:, None]).any(-1) * weights).sum()
  plain = classification.classification_sums(jnp.asarray(logits), jnp.asarray(labels),
                                             jnp.asarray(weights))
  np.testing.assert_allclose(plain['objective'],
                             (-logp[np.arange(6), labels] * weights).sum(), rtol=1e-5)
  assert 'correct_top5' not in plain


def test_eval_flip_averages_the_probabilities_of_the_image_and_its_mirror(data_dir):
  c = tiny(eval_flip=True)
  task = tasks.make_task(c, None)
  params = random_vit_params(task.model_cfg, seed=3, image_shape=(28, 28, 1))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(5, 28, 28, 1)).astype(np.float32)
  labels = rng.integers(0, 10, 5)
  weights = np.array([1, 1, 1, 1, 0], np.float32)
  batch = {'images': jnp.asarray(images), 'labels': jnp.asarray(labels),
           'weights': jnp.asarray(weights)}
  got = task.loss_sums(params, batch, None, train=False)
  model = task.model(False)
  logits = [np.asarray(model.apply({'params': params}, jnp.asarray(x)), np.float64)
            for x in (images, images[:, :, ::-1].copy())]   # the mirror: width reversed
  assert not np.allclose(logits[0], logits[1], atol=1e-3)   # the two views differ
  probs = (helpers.np_softmax(logits[0]) + helpers.np_softmax(logits[1])) / 2
  want = -(np.log(probs[np.arange(5), labels]) * weights).sum()
  np.testing.assert_allclose(float(got['objective']), want, rtol=1e-5)
  assert float(got['correct']) == ((probs.argmax(-1) == labels) * weights).sum()
  confusion = np.asarray(task.evaluator_sums(params, batch)['confusion'])
  assert confusion.sum() == 4 and np.trace(confusion) == float(got['correct'])
  task.settings = dataclasses.replace(task.settings, eval_flip=False)   # one view again
  plain = task.loss_sums(params, batch, None, train=False)
  logp = np.log(helpers.np_softmax(logits[0]))
  np.testing.assert_allclose(float(plain['objective']),
                             -(logp[np.arange(5), labels] * weights).sum(), rtol=1e-5)


# -- training and evaluation ----------------------------------------------------------------

@pytest.mark.slow
def test_few_steps_train_and_evaluate_write_accuracy(tmp_path, data_dir):
  c = tiny(num_train_steps=3, learning_rate=3e-3)
  c.augment.update(dict(crop='random', crop_padding=2, mixup=0.2))   # the batch fields of mixup
  out = engine.train_and_evaluate(c, str(tmp_path))
  assert out['step'] == 3 and 0 <= out['accuracy'] <= 1 and np.isfinite(out['loss'])
  recs = read_metrics(str(tmp_path))
  train = [r for r in recs if r['split'] == 'train']
  val = [r for r in recs if r['split'] == 'validation']   # held out of train; test: eval.py
  assert [r['step'] for r in train] == [1, 2, 3] and all(r['examples'] == 16 for r in train)
  assert len(val) == 1 and val[0]['examples'] == 768 and 'accuracy' in val[0]
  assert 'top5_accuracy' not in val[0]   # 10 classes
  assert not [r for r in recs if r['split'] == 'test']


def test_validation_is_the_last_5000_training_images_and_not_trained_on(data_dir):
  from transformer.data import images
  task = tasks.make_task(tiny(), None)
  raw_images, raw_labels = images.load_idx_split(data_dir, 'mnist', 'train')
  train, val = task.data._split('train'), task.data._split('validation')
  assert (len(train), len(val)) == (55000, 5000)
  np.testing.assert_array_equal(val.images, raw_images[55000:])
  np.testing.assert_array_equal(val.labels, raw_labels[55000:])
  np.testing.assert_array_equal(train.images, raw_images[:55000])
  assert task.data.epoch_size == 55000      # batches are drawn from the 55,000 only


def test_evaluate_counts_every_test_image_once(data_dir):
  exp = engine.Experiment(tiny(eval_batch_size=768), None)
  metrics = exp.evaluate(exp.init_state().params, 'test')
  assert metrics['examples'] == 10000   # 14 batches of 768, the last one padded


@pytest.mark.slow
def test_eval_py_writes_accuracy_and_the_confusion_matrix(tmp_path, data_dir):
  workdir = str(tmp_path)
  flags = ['--config=configs/vit_mnist.py', f'--workdir={workdir}', f'--config.data_dir={data_dir}',
           *TINY_FLAGS, '--config.eval_batch_size=2000', '--config.num_train_steps=2',
           '--config.eval_max_batches=1']
  train = helpers.run_python(['train.py', *flags])
  assert train.returncode == 0, train.stdout + train.stderr
  res = helpers.run_python(['eval.py', *flags[:-1], '--config.eval_split=test'])   # all of test
  assert res.returncode == 0, res.stdout + res.stderr
  evals = [r for r in read_metrics(workdir) if r.get('checkpoint') == 'latest']
  assert len(evals) == 1 and evals[0]['step'] == 2 and evals[0]['examples'] == 10000
  assert 0 <= evals[0]['accuracy'] <= 1 and 'mean_class_accuracy' in evals[0]
  png = os.path.join(workdir, 'confusion_matrix_test_step2.png')
  with open(png, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with open(os.path.join(workdir, 'confusion_matrix_test_step2.csv')) as f:
    rows = list(csv.reader(f))
  assert rows[0] == ['true \\ predicted', *[str(i) for i in range(10)]]
  matrix = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
  assert matrix.shape == (10, 10) and matrix.sum() == 10000
  test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  assert matrix.sum(1).tolist() == test_counts                    # rows: the true class
  np.testing.assert_allclose(np.trace(matrix) / 10000, evals[0]['accuracy'], atol=1e-6)
  assert '--- per_class_accuracy ---' in res.stdout


def test_fine_tuning_at_another_resolution_starts_from_the_checkpoint(tmp_path, data_dir):
  pre = tiny()
  rng = np.random.default_rng(0)   # a "pretrained" state: random values, no compilation
  state = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                       engine.Experiment(pre, None).abstract_state)
  ckpt = ckpt_lib.Checkpointer(str(tmp_path / 'pre' / 'checkpoints'))
  ckpt.save(7, state)
  ckpt.close()
  fine = tiny(init_from=str(tmp_path / 'pre'))
  fine.model.image_size = 14     # MNIST resized to 14x14: a 2x2 grid instead of 4x4
  exp2 = engine.Experiment(fine, None)
  state2 = exp2.restore_or_init(None)
  assert int(state2.step) == 0
  assert state2.params['pos_embedding'].shape == (1, 4, 16)
  np.testing.assert_allclose(state2.params['pos_embedding'],
                             layers.resize_posemb(state.params['pos_embedding'], (2, 2)),
                             rtol=1e-6)
  for a, b in zip(jax.tree.leaves(state2.params['encoder']),
                  jax.tree.leaves(state.params['encoder'])):
    np.testing.assert_array_equal(a, b)
  assert exp2.task.data.train_batch(0, 16, 0)['images'].shape == (16, 14, 14, 1)


def test_missing_data_is_a_data_error_naming_the_path(tmp_path):
  with pytest.raises(DataError, match='mnist/train-images-idx3-ubyte.gz'):
    engine.Experiment(tiny(data_dir=str(tmp_path)), None)
