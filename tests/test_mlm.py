"""Masked language modeling: BERT's masking rule, and the mlm task training on PTB's text."""

import jax
import jax.numpy as jnp
import numpy as np

from configs import mlm_ptb
from tests import helpers
from transformer import train_lib
from transformer.tasks.mlm import mask_tokens


def test_masking_follows_bert_rates_and_leaves_padding_alone():
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, 50, size=(400, 500)), jnp.int32)
  real = jnp.asarray(np.arange(500)[None, :] < 450).repeat(400, 0)   # the last 50 are padding
  inputs, selected = mask_tokens(jax.random.PRNGKey(1), tokens, real, mask_id=50,
                                 vocab_size=50)
  inputs, selected, tokens = map(np.asarray, (inputs, selected, tokens))
  n_real = 400 * 450
  assert not selected[:, 450:].any()
  assert abs(selected.sum() / n_real - 0.15) < 0.003
  np.testing.assert_array_equal(inputs[~selected], tokens[~selected])   # the rest unchanged
  s_in, s_tok = inputs[selected], tokens[selected]
  masked = (s_in == 50).mean()
  replaced = ((s_in != 50) & (s_in != s_tok)).mean()
  kept = (s_in == s_tok).mean()
  assert abs(masked - 0.8) < 0.01
  # a random replacement equals the original with probability 1/49 (ids 1..49)
  assert abs(replaced - 0.1 * 48 / 49) < 0.01 and abs(kept - (0.1 + 0.1 / 49)) < 0.01
  assert s_in[s_in != 50].min() >= 1
  again, _ = mask_tokens(jax.random.PRNGKey(1), jnp.asarray(tokens), real, 50, 50)
  np.testing.assert_array_equal(np.asarray(again), inputs)           # a pure function of the key


def test_mlm_task_trains_on_ptb_and_counts_only_masked_tokens(tmp_path, require_data):
  require_data('ptb')
  c = helpers.tiny_config(mlm_ptb, dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                                        max_len=16),
                          seq_len=16, batch_size=8, eval_batch_size=32, eval_max_batches=2,
                          num_train_steps=3, warmup_steps=1, log_every_steps=1,
                          eval_every_steps=3, checkpoint_every_steps=3)
  train_lib.train_and_evaluate(c, str(tmp_path))
  train = helpers.records(str(tmp_path), 'train')
  val = helpers.records(str(tmp_path), 'validation')
  assert [r['step'] for r in train] == [1, 2, 3]
  for r in train:   # about 15% of 8 x 16 tokens per step
    assert 8 <= r['masked_tokens'] <= 32 and np.isfinite(r['loss'])
  (v,) = val
  assert 0.08 * 2 * 32 * 16 <= v['masked_tokens'] <= 0.22 * 2 * 32 * 16
  assert 0.0 <= v['accuracy'] <= 1.0 and v['perplexity'] > 1.0
