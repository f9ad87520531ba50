"""Schedules, optimizers and the token loss against their formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from transformer import optim, tasks


def _config(**kw):
  c = base.get_config()
  c.update(kw)
  return c


def test_rsqrt_schedule_is_the_papers_formula():
  c = _config(schedule='rsqrt', learning_rate=1.0, warmup_steps=4000, num_train_steps=10**5)
  sched = optim.make_schedule(c, d_model=512)
  for count in [0, 1, 100, 3999, 4000, 4001, 20000, 99999]:
    step = count + 1
    expected = 512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
    np.testing.assert_allclose(float(sched(count)), expected, rtol=1e-5)
  # Peak at the end of warmup.
  values = [float(sched(c)) for c in range(3990, 4010)]
  assert int(np.argmax(values)) + 3990 in (3998, 3999)


def test_cosine_schedule_warms_up_and_decays_to_min():
  c = _config(schedule='cosine', learning_rate=1e-3, warmup_steps=100, min_learning_rate=1e-4,
              num_train_steps=2000)
  sched = optim.make_schedule(c, d_model=128)
  np.testing.assert_allclose(float(sched(50)), 0.5e-3, rtol=1e-5)
  np.testing.assert_allclose(float(sched(100)), 1e-3, rtol=1e-5)
  mid = 100 + 950
  expected = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + np.cos(np.pi * 950 / 1900))
  np.testing.assert_allclose(float(sched(mid)), expected, rtol=1e-4)
  np.testing.assert_allclose(float(sched(2000)), 1e-4, rtol=1e-4)


def test_weight_decay_mask_skips_vectors_and_position_tables():
  params = {'dense': {'kernel': jnp.ones((3, 4)), 'bias': jnp.ones((4,))},
            'norm': {'scale': jnp.ones((4,))}, 'position': {'pos_embedding': jnp.ones((8, 4))}}
  mask = optim.weight_decay_mask(params, 'matrices')
  assert mask == {'dense': {'kernel': True, 'bias': False}, 'norm': {'scale': False},
                  'position': {'pos_embedding': False}}


def test_adamw_decays_only_masked_params():
  c = _config(optimizer='adamw', schedule='constant', learning_rate=0.1, warmup_steps=0,
              weight_decay=0.5)
  opt, _ = optim.make_optimizer(c, d_model=4)
  params = {'w': jnp.ones((2, 2)), 'b': jnp.ones((2,))}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = opt.update(zero_grads, opt.init(params), params)
  np.testing.assert_allclose(updates['w'], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
  np.testing.assert_allclose(updates['b'], 0.0)


def test_gradient_clipping_bounds_the_update_norm():
  c = _config(optimizer='sgd', b1=0.0, schedule='constant', learning_rate=1.0, warmup_steps=0,
              grad_clip_norm=1.0)
  opt, _ = optim.make_optimizer(c, d_model=4)
  params = {'w': jnp.zeros((3,))}
  updates, _ = opt.update({'w': jnp.array([30.0, 40.0, 0.0])}, opt.init(params), params)
  np.testing.assert_allclose(updates['w'], [-0.6, -0.8, 0.0], rtol=1e-6)


@pytest.mark.parametrize('smoothing', [0.0, 0.1])
def test_token_cross_entropy_matches_numpy(smoothing):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7))
  targets = rng.integers(0, 7, size=(2, 5))
  weights = (rng.random((2, 5)) > 0.3).astype(np.float64)
  out = tasks.token_cross_entropy(jnp.asarray(logits, jnp.float32), jnp.asarray(targets),
                                  jnp.asarray(weights, jnp.float32), smoothing)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
  q = np.full(logits.shape, smoothing / 6)
  np.put_along_axis(q, targets[..., None], 1 - smoothing, -1)
  ce = -(q * logp).sum(-1)
  entropy = -(q * np.log(np.where(q > 0, q, 1))).sum(-1)
  np.testing.assert_allclose(out['nll'], (nll * weights).sum(), rtol=1e-5)
  np.testing.assert_allclose(out['objective'], ((ce - entropy) * weights).sum(), rtol=1e-5)
  np.testing.assert_allclose(out['weight'], weights.sum())
  correct = (logits.argmax(-1) == targets) * weights
  np.testing.assert_allclose(out['correct'], correct.sum())
