"""Sequence packing: the packed row layout, the models on packed rows (each sequence's logits and
loss as if alone), and lm1b's packed batches (a pure function of (seed, step); every sentence of
an epoch once)."""

import os

import numpy as np
import pytest
import jax.numpy as jnp

from tests import helpers
from transformer.data import lm as lm_data
from transformer.data.packing import greedy_row_starts, pack_row
from transformer.models import DecoderLM, EncoderDecoder
from transformer.tasks.base import token_cross_entropy

CFG = helpers.tiny_model_cfg(vocab_size=17, max_len=16, num_encoder_layers=2,
                             num_decoder_layers=2)
VARIANTS = {
    'post_ln_sinusoidal_einsum': {},
    # Rotary positions restart per packed sequence too (the sinusoidal table covers
    # position lookups, learned tables included: one code path).
    'pre_rmsnorm_rope_gqa_swiglu_xla': dict(norm_position='pre', norm='rmsnorm',
                                            positional='rope', num_kv_heads=1, activation='silu',
                                            gated_ffn=True, attention_impl='xla'),
}


def reference_row_starts(lengths, row_len):
  """Greedy packing written out: a row takes sequences while they fit."""
  starts, used = [0], 0
  for i, n in enumerate(lengths):
    n = min(n, row_len)
    if used and used + n > row_len:
      starts.append(i)
      used = 0
    used += n
  starts.append(len(lengths))
  return starts


def test_greedy_rows_match_the_plain_loop():
  rng = np.random.default_rng(0)
  for row_len in (8, 16, 33):
    lengths = rng.integers(1, 40, size=300)
    np.testing.assert_array_equal(greedy_row_starts(lengths, row_len),
                                  reference_row_starts(lengths, row_len))


def test_pack_row_layout():
  tokens, segments, positions = pack_row([np.array([5, 6, 7]), np.array([8, 9])], 7)
  np.testing.assert_array_equal(tokens, [5, 6, 7, 8, 9, 0, 0])
  np.testing.assert_array_equal(segments, [1, 1, 1, 2, 2, 0, 0])
  np.testing.assert_array_equal(positions, [0, 1, 2, 0, 1, 0, 0])


def _packed(seq_groups, row_len):
  rows = [pack_row(group, row_len) for group in seq_groups]
  return tuple(jnp.asarray(np.stack([r[k] for r in rows])) for k in range(3))


@pytest.mark.slow
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_decoder_lm_on_packed_rows_equals_each_sequence_alone(variant):
  cfg = CFG.replace(**VARIANTS[variant])
  rng = np.random.default_rng(1)
  groups = [[rng.integers(1, 17, n) for n in (5, 3, 6)], [rng.integers(1, 17, n) for n in (9, 4)]]
  row_len = 16
  tokens, segments, positions = _packed(groups, row_len)
  model = DecoderLM(cfg)
  params = helpers.random_params(model, tokens, seed=3)
  packed = np.asarray(model.apply({'params': params}, tokens, segments=segments,
                                  positions=positions))
  unmasked = np.asarray(model.apply({'params': params}, tokens))
  # Targets: the next token within each sequence; weights 0 at padding.
  targets = np.zeros_like(np.asarray(tokens))
  total_nll, total_weight = 0.0, 0.0
  for r, group in enumerate(groups):
    at = 0
    for seq in group:
      alone = np.asarray(model.apply({'params': params}, jnp.asarray(seq[None, :-1])))[0]
      np.testing.assert_allclose(packed[r, at:at + len(seq) - 1], alone, rtol=1e-5, atol=1e-5)
      if at:   # without the segment mask later sequences would see earlier ones
        assert np.abs(unmasked[r, at:at + len(seq) - 1] - alone).max() > 1e-3
      sums = token_cross_entropy(jnp.asarray(alone[None]), jnp.asarray(seq[None, 1:]),
                                 jnp.ones((1, len(seq) - 1)))
      total_nll += float(sums['nll'])
      total_weight += float(sums['weight'])
      targets[r, at:at + len(seq) - 1] = seq[1:]
      at += len(seq)
  # The packed loss over real tokens (inputs of the last position of a sequence predict its
  # next token; here each sequence's final token has no target: weight 0).
  weights = np.zeros(targets.shape, np.float32)
  for r, group in enumerate(groups):
    at = 0
    for seq in group:
      weights[r, at:at + len(seq) - 1] = 1.0
      at += len(seq)
  sums = token_cross_entropy(jnp.asarray(packed), jnp.asarray(targets), jnp.asarray(weights))
  np.testing.assert_allclose(float(sums['weight']), total_weight)
  np.testing.assert_allclose(float(sums['nll']), total_nll, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('variant', list(VARIANTS))
def test_encoder_decoder_on_packed_rows_equals_each_pair_alone(variant):
  cfg = CFG.replace(**VARIANTS[variant])
  rng = np.random.default_rng(2)
  pairs = [[(rng.integers(4, 17, a), rng.integers(4, 17, b)) for a, b in ((4, 6), (7, 3))],
           [(rng.integers(4, 17, a), rng.integers(4, 17, b)) for a, b in ((10, 9),)]]
  src, src_seg, src_pos = _packed([[p[0] for p in g] for g in pairs], 16)
  tgt, tgt_seg, tgt_pos = _packed([[p[1] for p in g] for g in pairs], 16)
  model = EncoderDecoder(cfg)
  params = helpers.random_params(model, src, tgt, seed=4)
  packed = np.asarray(model.apply({'params': params}, src, tgt, src_segments=src_seg,
                                  tgt_segments=tgt_seg, src_positions=src_pos,
                                  tgt_positions=tgt_pos))
  unmasked = np.asarray(model.apply({'params': params}, src, tgt))
  for r, group in enumerate(pairs):
    at = 0
    for s, t in group:
      alone = np.asarray(model.apply({'params': params}, jnp.asarray(s[None]),
                                     jnp.asarray(t[None])))[0]
      np.testing.assert_allclose(packed[r, at:at + len(t)], alone, rtol=1e-5, atol=1e-5)
      if len(group) > 1:
        assert np.abs(unmasked[r, at:at + len(t)] - alone).max() > 1e-3
      at += len(t)
  with pytest.raises(ValueError, match='both sides'):
    model.apply({'params': params}, src, tgt, src_segments=src_seg)


@pytest.fixture(scope='module')
def lm1b_standin(tmp_path_factory, require_data):
  """lm1b in its local layout, from real PTB sentences."""
  data_dir = require_data('ptb')
  d = tmp_path_factory.mktemp('lm1b_data')
  (d / 'lm1b').mkdir()
  with open(os.path.join(data_dir, 'ptb', 'ptb.valid.txt'), encoding='utf-8') as f:
    lines = [l.strip() for l in f if l.strip()]
  (d / 'lm1b' / 'train.txt').write_text('\n'.join(lines[:1200]) + '\n')
  (d / 'lm1b' / 'test.txt').write_text('\n'.join(lines[1200:1300]) + '\n')
  return str(d), str(tmp_path_factory.mktemp('lm1b_work'))


def test_lm1b_packed_batches_cover_an_epoch_once_and_are_pure(lm1b_standin):
  data_dir, workdir = lm1b_standin
  make = lambda packing: lm_data.make_lm_data('lm1b', data_dir, 128, workdir, vocab_size=300,
                                              spm_max_sentences=1200, packing=packing)
  packed, again, plain = make(True), make(True), make(False)
  rows_per_step, seed = 8, 3
  # Step 7 asked first of a fresh source equals step 7 after steps 0..6 (resume is exact).
  late = again.train_batch(7, rows_per_step, seed)
  seen = []
  for step in range(8):
    b = packed.train_batch(step, rows_per_step, seed)
    seen.append(b)
  for k in late:
    np.testing.assert_array_equal(late[k], seen[7][k])
  # The rows of epoch 0, in order, hold every training sentence exactly once.
  epochs = packed._packed_epochs()
  n_rows = epochs.rows_in_epoch(seed, 0)
  members = np.concatenate(epochs.rows(0, n_rows, seed))
  assert sorted(members.tolist()) == list(range(1200))
  # Layout: segments number the sentences, positions restart, targets are inputs shifted
  # within a sentence, weights mark real targets; rows are far fuller than unpacked ones.
  b = seen[0]
  for r in range(rows_per_step):
    seg, pos, inp, tgt = (b[k][r] for k in ('segments', 'positions', 'inputs', 'targets'))
    real = seg > 0
    np.testing.assert_array_equal(b['weights'][r] > 0, real)
    starts = np.flatnonzero(real & (pos == 0))
    assert np.all(inp[starts] == lm_data.BOS_ID)
    assert np.all(np.diff(seg[real]) >= 0) and seg[real][0] == 1
    for a, c in zip(starts, list(starts[1:]) + [int(real.sum())]):
      np.testing.assert_array_equal(pos[a:c], np.arange(c - a))
      np.testing.assert_array_equal(inp[a + 1:c], tgt[a:c - 1])
  # Every member sentence's targets are in the row (none lost), and rows are much fuller.
  step0 = epochs.rows(0, rows_per_step, seed)
  want = sum(min(int(epochs.lengths[i]), 128) for row in step0 for i in row)
  assert b['weights'].sum() == want
  fill = lambda batch: batch['weights'].mean()
  assert fill(seen[0]) > 1.5 * fill(plain.train_batch(0, rows_per_step, seed))


def test_translation_packed_batches(tmp_path, require_data):
  from transformer.data import translation as tr
  data = tr.make_translation_data('multi30k', require_data('multi30k'), workdir=str(tmp_path),
                                  source_lang='de', target_lang='en', vocab_size=300,
                                  max_len=64, tokens_per_batch=2048, spm_max_sentences=4000,
                                  packing=True)
  plan = data.plan(8)
  # tokens_per_batch counts real tokens: rows x max_len x fill is about 1024.
  assert plan.rows % 8 == 0 and abs(plan.rows * 64 * plan.fill - 2048) <= 8 * 64 * plan.fill
  b = data.train_batch(5, 8, seed=1)
  again = tr.make_translation_data('multi30k', require_data('multi30k'), workdir=str(tmp_path),
                                   source_lang='de', target_lang='en', vocab_size=300,
                                   max_len=64, tokens_per_batch=2048, spm_max_sentences=4000,
                                   packing=True).train_batch(5, 8, seed=1)
  for k in b:
    np.testing.assert_array_equal(b[k], again[k])        # a pure function of (seed, step)
  pairs = data.tokenized('train')
  members = data.plan(8).packed.rows(5, plan.rows, 1)
  for r, row in enumerate(members):
    src_seg, tgt_seg = b['source_segments'][r], b['target_segments'][r]
    assert src_seg.max() == tgt_seg.max() == len(row)
    for s, i in enumerate(row, start=1):
      src = b['inputs'][r][src_seg == s]
      tgt = b['targets'][r][tgt_seg == s]
      tin = b['targets_in'][r][tgt_seg == s]
      np.testing.assert_array_equal(src, list(pairs.source(int(i))) + [tr.EOS_ID])
      np.testing.assert_array_equal(tgt, list(pairs.target(int(i))) + [tr.EOS_ID])
      np.testing.assert_array_equal(tin, [tr.BOS_ID] + list(pairs.target(int(i))))
      np.testing.assert_array_equal(b['target_positions'][r][tgt_seg == s], np.arange(len(tgt)))
    np.testing.assert_array_equal(b['weights'][r] > 0, tgt_seg > 0)
  assert np.mean([len(row) for row in members]) > 1.3     # several pairs per row
