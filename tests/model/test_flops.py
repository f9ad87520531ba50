"""Analytic FLOP counts against the matmuls the model really runs (its jaxpr)."""

import math

import jax
import jax.extend.core as jax_core   # jax.core's copy was removed in JAX 0.11
import jax.numpy as jnp
import pytest

from transformer import flops, models
from transformer.model_config import TransformerConfig


def jaxpr_dot_flops(fn, *args) -> float:
  """2 x multiply-adds of every dot_general in fn's jaxpr (sub-jaxprs included)."""
  def walk(jaxpr):
    total = 0.0
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'dot_general':
        (lc, _), (lb, _) = eqn.params['dimension_numbers']
        lhs, rhs = (v.aval.shape for v in eqn.invars)
        out = eqn.outvars[0].aval.shape
        total += 2.0 * math.prod(out) * math.prod(lhs[i] for i in lc)
      elif eqn.primitive.name == 'conv_general_dilated':
        rhs = eqn.invars[1].aval.shape         # kernel; out has one value per out feature
        spec = eqn.params['dimension_numbers'].rhs_spec   # (out, in, spatial...)
        out = eqn.outvars[0].aval.shape
        per_output = math.prod(rhs[i] for i in spec[1:])  # in-features x window
        total += 2.0 * math.prod(out) * per_output
      for sub in jax_core.jaxprs_in_params(eqn.params):
        total += walk(sub)
    return total
  return walk(jax.make_jaxpr(fn)(*args).jaxpr)


def attention_full(cfg, batch, q_len, k_len, layers):
  return 4.0 * batch * layers * q_len * k_len * cfg.num_heads * cfg.qkv_dim


BASE = dict(d_model=64, num_heads=4, d_ff=96, vocab_size=50, max_len=32, deterministic=True,
            dropout_rate=0.0)


# Grouped-query keys/values and a gated feed-forward change the projections' count.
SWITCHES = [{}, dict(num_kv_heads=2, gated_ffn=True, activation='silu', positional='rope')]


@pytest.mark.parametrize('switches', SWITCHES)
def test_lm_count_is_the_jaxpr_with_causal_attention_halved(switches):
  cfg = TransformerConfig(**BASE, num_encoder_layers=0, num_decoder_layers=3, head_dim=24,
                          **switches)
  model = models.DecoderLM(cfg)
  tokens = jnp.ones((3, 20), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), tokens)
  measured = jaxpr_dot_flops(lambda p: model.apply(p, tokens), params)
  # The model computes the whole score matrix; the count keeps only the causal half.
  assert flops.lm_forward_flops(cfg, 3, 20) == pytest.approx(
      measured - 0.5 * attention_full(cfg, 3, 20, 20, 3), rel=1e-12)


@pytest.mark.parametrize('switches', SWITCHES)
def test_encoder_decoder_count_is_the_jaxpr(switches):
  cfg = TransformerConfig(**BASE, num_encoder_layers=2, num_decoder_layers=3, **switches)
  model = models.EncoderDecoder(cfg)
  src, tgt = jnp.ones((2, 11), jnp.int32), jnp.ones((2, 7), jnp.int32)
  params = jax.eval_shape(model.init, jax.random.key(0), src, tgt)
  measured = jaxpr_dot_flops(lambda p: model.apply(p, src, tgt), params)
  assert flops.encdec_forward_flops(cfg, 2, 11, 7) == pytest.approx(
      measured - 0.5 * attention_full(cfg, 2, 7, 7, 3), rel=1e-12)


@pytest.mark.parametrize('pool,stem,extra', [('cls', 'patch', 0), ('gap', 'patch', 0),
                                             ('gap', 'conv', 0), ('cls', 'conv', 2)])
def test_vit_count_is_the_jaxpr(pool, stem, extra):
  cfg = TransformerConfig(**BASE, num_encoder_layers=2, num_decoder_layers=0, image_size=12,
                          patch_size=4, num_channels=3, num_classes=7, pool=pool, stem=stem,
                          stem_extra_convs=extra)
  model = models.ViT(cfg)
  images = jnp.ones((2, 12, 12, 3))
  params = jax.eval_shape(model.init, jax.random.key(0), images)
  measured = jaxpr_dot_flops(lambda p: model.apply(p, images), params)
  assert flops.vit_forward_flops(cfg, 2) == pytest.approx(measured, rel=1e-12)


def test_peak_table_and_mfu_inputs():
  assert flops.peak_flops('NVIDIA H100 80GB HBM3') == 989e12
  assert flops.peak_flops('TPU v5 lite') == 197e12      # v5e, not v5p's 459e12
  assert flops.peak_flops('TPU v5p') == 459e12
  assert flops.peak_flops('cpu') is None
  assert flops.train_flops(2.0) == 6.0


@pytest.mark.parametrize('head', ['mlm', 'classify'])
def test_encoder_only_count_is_the_jaxpr(head):
  cfg = TransformerConfig(**BASE, num_encoder_layers=2, num_decoder_layers=0, num_classes=3)
  model = models.EncoderOnly(cfg)
  tokens = jnp.ones((2, 9), jnp.int32)
  params = jax.eval_shape(lambda k: model.init(k, tokens, head=head), jax.random.key(0))
  measured = jaxpr_dot_flops(lambda p: model.apply(p, tokens, head=head), params)
  assert flops.encoder_only_forward_flops(cfg, 2, 9, head) == pytest.approx(measured, rel=1e-12)
  if head == 'mlm':   # the head at 4 of the 9 positions (config.mlm.max_predictions)
    positions = jnp.zeros((2, 4), jnp.int32)
    measured = jaxpr_dot_flops(
        lambda p: model.apply(p, tokens, head=head, mlm_positions=positions), params)
    assert flops.encoder_only_forward_flops(cfg, 2, 9, head, predictions=4) == pytest.approx(
        measured, rel=1e-12)


def test_every_task_counts_its_training_flops(data_dir):
  """flops dispatched on the task's name and knew three of five tasks: mlm and
  text_classification logged no TFLOP/s or MFU. Now each task counts its own batch."""
  from configs import mlm_ptb
  from tests import helpers
  from transformer import tasks
  c = helpers.tiny_config(mlm_ptb, dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1),
                          seq_len=8, batch_size=2)
  task = tasks.make_task(c, None)
  batch = task.data.train_batch(0, 2, 0)
  assert task.train_flops(batch) == pytest.approx(
      3 * flops.encoder_only_forward_flops(task.model_cfg, 2, 8, 'mlm'))
  assert set(tasks.TASKS) == {'lm', 'translation', 'classification', 'mlm',
                              'text_classification'}
  for name, cls in tasks.TASKS.items():
    assert cls.forward_flops is not tasks.Task.forward_flops, name
