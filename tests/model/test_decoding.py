"""Tests of transformer.decoding: cached decoding against full forward passes,
beam search against greedy and against hand-computed scores, sampling filters,
EOS handling. Models are tiny and random; expected values are recomputed here
independently (naive loops without a cache, numpy log-prob sums).

Every decoding loop is jitted once (compilation dominates the run time)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import helpers
from transformer import decoding
from transformer.model_config import TransformerConfig
from transformer.data.tokenizers import BOS_ID, EOS_ID, PAD_ID
from transformer.models import DecoderLM, EncoderDecoder

CFG = TransformerConfig(vocab_size=16, d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                        num_decoder_layers=1, max_len=12, dropout_rate=0.0, deterministic=True,
                        logits_via_embedding=False)
SRC = jnp.array([[5, 6, 7, 8, 3], [9, 4, 3, 0, 0], [4, 4, 5, 3, 0]], jnp.int32)
OUT_LEN = min(SRC.shape[1] + 50, CFG.max_len)  # translate's output length


def sharp_logits(names, z):
  """random_params' fill here: kernels scaled by 1/sqrt(fan_in) (logits 4x: sharper),
  norm scales 1 + 0.1 z, biases 0.1 z, embeddings z.

  Seeds are picked so that greedy outputs vary and some, not all, rows end in
  EOS before the length limit (checked by the tests).
  """
  name, x = '/'.join(names), z.astype(np.float32)
  if 'kernel' in name:  # 1/sqrt(fan_in); sharper logits
    x = x / np.sqrt(x.size / x.shape[-1]) * (4.0 if 'logits' in name else 1.0)
  elif 'scale' in name:
    x = 1.0 + 0.1 * x
  elif 'bias' in name:
    x = 0.1 * x
  return x


@pytest.fixture(scope='module')
def s2s():
  """(params, jitted full forward pass (tgt_in [3, OUT_LEN]) -> logits) of an EncoderDecoder."""
  params = helpers.random_params(EncoderDecoder(CFG), SRC, SRC, seed=23, fill=sharp_logits)
  return params, jax.jit(lambda tgt_in: EncoderDecoder(CFG).apply({'params': params}, SRC, tgt_in))


def naive_greedy(logits_fn, prefix, n, eos_id=EOS_ID):
  """Greedy decoding by a full forward pass (no cache) over the whole prefix at each step.

  `logits_fn(buffer)` gives logits [B, T, V] of a right-padded buffer
  [B, P + n]; causal attention keeps the padding from affecting earlier positions.
  """
  prefix = np.asarray(prefix)
  batch, p = prefix.shape
  buf = np.zeros((batch, p + n), np.int32)
  buf[:, :p] = prefix
  done = np.zeros(batch, bool)
  for i in range(n):
    tok = np.asarray(logits_fn(jnp.asarray(buf))[:, p - 1 + i]).argmax(-1)
    tok = np.where(done, PAD_ID, tok)
    done |= tok == eos_id
    buf[:, p + i] = tok
  return buf[:, p:]


def _lengths(tokens):
  """Hypothesis lengths, counting the EOS: up to the first EOS, else all positions."""
  is_eos = tokens == EOS_ID
  return np.where(is_eos.any(-1), is_eos.argmax(-1) + 1, tokens.shape[-1])


def _some_but_not_all_end(out):
  ends = (np.asarray(out) == EOS_ID).any(-1)
  return ends.any() and not ends.all()


# ---------------------------------------------------------------------------
# Cached decoding of the models equals the full forward pass.
# ---------------------------------------------------------------------------

def test_lm_greedy_on_cache_matches_naive_loop():
  params = helpers.random_params(DecoderLM(CFG), SRC, seed=28, fill=sharp_logits)
  prompt, n = SRC[:, :3], 8
  out = decoding.generate(params, CFG, prompt, n, temperature=0.0, eos_id=EOS_ID)
  forward = jax.jit(lambda t: DecoderLM(CFG).apply({'params': params}, t))
  np.testing.assert_array_equal(out, naive_greedy(forward, prompt, n))
  assert _some_but_not_all_end(out)


@pytest.mark.slow
def test_decoding_past_the_cache_raises_instead_of_clamping():
  params = helpers.random_params(DecoderLM(CFG), SRC, seed=28, fill=sharp_logits)
  cache = decoding.init_cache(CFG, 3)
  step = decoding.lm_step_fn(CFG, params)
  assert decoding.cache_length(cache) == CFG.max_len
  # 3 prompt tokens + 10 new ones feed 12 positions: fits; 11 new ones would need 13.
  decoding.check_cache_room(cache, 3 + 10 - 1, 'x')
  for run in (lambda: decoding.greedy(step, cache, SRC[:, :3], 11),
              lambda: decoding.beam_search(step, decoding.init_cache(CFG, 6), SRC[:2, :3],
                                           max_len=11, beam_size=3)):
    with pytest.raises(ValueError, match='needs 13 key/value cache positions .* holds 12'):
      run()
  # A model call past the end (the index is concrete outside jit) raises too.
  _, full = step(SRC[:, :1].repeat(CFG.max_len, axis=1), cache)
  with pytest.raises(ValueError, match='cache overflow'):
    step(SRC[:, :1], full)
  # Under jit the index is a tracer: the write past the end makes the output NaN (it was
  # clamped, silently overwriting the last slot, with finite logits).
  jitted = jax.jit(step)
  inside, _ = jitted(SRC[:, :1], decoding.init_cache(CFG, 3))
  assert np.all(np.isfinite(np.asarray(inside)))
  past, _ = jitted(SRC[:, :1], full)
  assert np.all(np.isnan(np.asarray(past)))


@pytest.mark.slow
@pytest.mark.parametrize('positional', ['sinusoidal', 'rope'])   # learned: sinusoidal's lookup
def test_ragged_prompts_padded_on_the_left_continue_as_each_alone(positional):
  cfg = CFG.replace(positional=positional)
  params = helpers.random_params(DecoderLM(cfg), SRC, seed=28, fill=sharp_logits)
  prompts = [[5, 6], [7, 8, 9, 4, 5], [6, 7, 8]]
  tokens, left_pad = decoding.pad_left(prompts)
  np.testing.assert_array_equal(left_pad, [3, 0, 2])
  np.testing.assert_array_equal(tokens[0], [PAD_ID] * 3 + [5, 6])
  model = DecoderLM(cfg)
  padded = np.asarray(model.apply({'params': params}, tokens, left_pad))
  unmasked = np.asarray(model.apply({'params': params}, tokens))
  n = 6
  out = np.asarray(decoding.generate(params, cfg, tokens, n, temperature=0.0, left_pad=left_pad))
  for r, p in enumerate(prompts):
    alone = np.asarray(model.apply({'params': params}, jnp.asarray([p])))[0]
    np.testing.assert_allclose(padded[r, left_pad[r]:], alone, rtol=1e-5, atol=1e-5)
    if left_pad[r]:   # without left_pad the padding changes the row: the test can fail
      assert np.abs(unmasked[r, left_pad[r]:] - alone).max() > 1e-3
    one = decoding.generate(params, cfg, jnp.asarray([p]), n, temperature=0.0)
    np.testing.assert_array_equal(out[r], np.asarray(one)[0])
    # ... and the greedy walk of the full forward pass on the prompt alone.
    np.testing.assert_array_equal(
        out[r], naive_greedy(lambda t: model.apply({'params': params}, t), [p], n, None)[0])


def test_seq2seq_greedy_on_cache_matches_naive_loop(s2s):
  params, forward = s2s
  out = decoding.translate(params, CFG, SRC, method='greedy')
  assert out.shape == (SRC.shape[0], OUT_LEN)
  # Decoder input [BOS, y1, ...]: the buffer [BOS, y1, ..., y_n] minus its last slot.
  naive = naive_greedy(lambda buf: forward(buf[:, :OUT_LEN]), np.full((3, 1), BOS_ID), OUT_LEN)
  np.testing.assert_array_equal(out, naive)
  assert _some_but_not_all_end(out)


@pytest.mark.slow
def test_cross_kv_cache_leaves_translations_and_scores_unchanged(s2s):
  params, _ = s2s
  old = CFG.replace(cache_cross_kv=False)
  for method in ('greedy', 'beam'):
    np.testing.assert_array_equal(decoding.translate(params, CFG, SRC, method=method),
                                  decoding.translate(params, old, SRC, method=method))
  new_beam = decoding.translate_beam(params, CFG, SRC, beam_size=3)
  old_beam = decoding.translate_beam(params, old, SRC, beam_size=3)
  np.testing.assert_array_equal(new_beam.beam_tokens, old_beam.beam_tokens)
  np.testing.assert_allclose(new_beam.beam_scores, old_beam.beam_scores, rtol=1e-5)


def test_seq2seq_beam_search(s2s):
  """Every returned beam's score is its log-prob (full pass, no cache) / lp(|Y|).

  This checks the cache reordering and the per-beam copies of encoded/src:
  a wrong one changes the log-probs.
  """
  params, forward = s2s
  alpha, k = 0.6, 4

  res = decoding.translate_beam(params, CFG, SRC, beam_size=k, alpha=alpha, extra_len=50,
                                bos_id=BOS_ID, eos_id=EOS_ID)
  assert res.beam_tokens.shape == (3, k, OUT_LEN)
  for j in range(k):
    y = np.asarray(res.beam_tokens[:, j])
    tgt_in = np.concatenate([np.full((3, 1), BOS_ID), y[:, :-1]], 1)
    logp = np.asarray(jax.nn.log_softmax(forward(jnp.asarray(tgt_in))))
    tok_logp = np.take_along_axis(logp, y[..., None], -1)[..., 0]
    n = _lengths(y)
    total = np.where(np.arange(OUT_LEN) < n[:, None], tok_logp, 0.0).sum(-1)
    np.testing.assert_allclose(res.beam_scores[:, j], total / ((5 + n) / 6) ** alpha,
                               rtol=1e-4, atol=1e-4)
    assert np.all(y[np.arange(OUT_LEN) >= n[:, None]] == PAD_ID)
  np.testing.assert_array_equal(res.tokens, res.beam_tokens[:, 0])
  np.testing.assert_array_equal(res.scores, res.beam_scores[:, 0])
  assert np.all(np.diff(np.asarray(res.beam_scores), axis=1) <= 0)  # best first
  # translate(method='beam') is the same search (the same compiled function).
  np.testing.assert_array_equal(
      decoding.translate(params, CFG, SRC, method='beam', beam_size=k, alpha=alpha), res.tokens)


# ---------------------------------------------------------------------------
# Markov chains: next-token log-probs depend on the last token only.
# ---------------------------------------------------------------------------

def markov_step(logp):
  """Step function of a chain with log-prob table logp [V, V]; the cache counts steps
  (a leaf with one row per sequence, so beam search has to reorder it)."""
  table = jnp.asarray(logp)

  def step_fn(tokens, cache):
    return table[tokens[:, -1]], {'steps': cache['steps'] + 1}
  return step_fn


def chain_cache(rows):
  return {'steps': jnp.zeros((rows,), jnp.int32)}


A, B, C, D, V = 4, 5, 6, 7, 8
CHAIN = {BOS_ID: {A: .5, B: .4, C: .05, D: .05},   # greedy takes A ...
         A: {EOS_ID: .3, C: .25, D: .25, A: .2},    # ... whose continuations are unlikely,
         B: {EOS_ID: .9, C: .05, D: .05},           # while B nearly always ends well.
         C: {EOS_ID: .6, D: .4}, D: {C: .7, EOS_ID: .3},
         EOS_ID: {EOS_ID: 1.0}, PAD_ID: {EOS_ID: 1.0}}
LOGP = np.full((V, V), -30.0, np.float32)
for prev, nxt in CHAIN.items():
  for tok, p in nxt.items():
    LOGP[prev, tok] = np.log(p)
chain_step = markov_step(LOGP)


def chain_logprob(seq, start=BOS_ID):
  """Log-prob of a hypothesis up to and including its first EOS, from the table."""
  total, prev = 0.0, start
  for tok in np.asarray(seq):
    total += np.log(CHAIN[prev].get(int(tok), np.exp(-30.0)))
    if tok == EOS_ID:
      break
    prev = int(tok)
  return total


def test_beam_beats_greedy_on_markov_chain():
  alpha, k, n = 0.6, 2, 5
  start = jnp.array([[BOS_ID]], jnp.int32)
  g = jax.jit(lambda: decoding.greedy(chain_step, chain_cache(1), start, n))()[0]
  res = jax.jit(lambda: decoding.beam_search(chain_step, chain_cache(k), start, max_len=n,
                                             beam_size=k, alpha=alpha))()
  b = res.tokens[0]
  score = lambda s: chain_logprob(s) / ((5 + _lengths(np.asarray(s))) / 6) ** alpha
  assert score(b) > score(g) + 0.1
  np.testing.assert_allclose(res.scores[0], score(b), rtol=1e-5)
  # Greedy matches a numpy greedy walk through the table.
  np.testing.assert_array_equal(g, naive_greedy(lambda buf: jnp.asarray(LOGP)[buf], start, n)[0])


def test_beam_size_1_is_greedy():
  """Under the top-K EOS rule; on a random 16-token chain, from every start token.

  (Under the paper's rule an EOS ranked second of the two candidates still
  finishes, so one beam can end earlier than greedy; see the eos_rule tests.)

  Each token has one likely successor (EOS for some), and EOS is often the
  second choice: greedy paths end after various lengths or cycle.
  """
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(16, 16))
  logits[np.arange(16), rng.choice([EOS_ID] + list(range(4, 16)), size=16)] += 3.0
  logits[:, EOS_ID] += 1.5
  logp = np.asarray(jax.nn.log_softmax(logits, axis=-1), np.float32)
  step_fn, n = markov_step(logp), 10
  start = jnp.arange(16, dtype=jnp.int32)[:, None]
  g = jax.jit(lambda: decoding.greedy(step_fn, chain_cache(16), start, n))()
  one = jax.jit(lambda: decoding.beam_search(step_fn, chain_cache(16), start, max_len=n,
                                             beam_size=1, alpha=0.0, eos_rule='top_k'))()
  np.testing.assert_array_equal(one.tokens, g)
  np.testing.assert_array_equal(g, naive_greedy(lambda buf: jnp.asarray(logp)[buf], start, n))
  assert _some_but_not_all_end(g)


def reference_beam_search(logp, start, k, max_len, alpha, eos_rule):
  """Beam search in plain Python over a Markov table, one start token at a time.

  The procedure of decoding.beam_search written out with lists: the 2K best
  expansions; ending ones (EOS or the last step) finish when eos_rule allows
  ('all': any of the 2K; 'top_k': ranked in the first K); the K best others
  stay alive. Returns (tokens, score) of the best finished hypothesis.
  """
  lp = lambda n: ((5.0 + n) / 6.0) ** alpha
  live, finished = [(0.0, [])], []
  for t in range(max_len):
    if len(finished) == k and min(s for s, _ in finished) >= max(l for l, _ in live) / lp(max_len):
      break
    cands = [(l + float(logp[seq[-1] if seq else start][v]), seq + [v])
             for l, seq in live for v in range(logp.shape[1])]
    cands = sorted(cands, key=lambda c: -c[0])[:2 * k]
    ends = [c[1][-1] == EOS_ID or t == max_len - 1 for c in cands]
    for i, (c, e) in enumerate(zip(cands, ends)):
      if e and (eos_rule == 'all' or i < k):
        finished.append((c[0] / lp(t + 1), c[1]))
    finished = sorted(finished, key=lambda f: -f[0])[:k]
    live = [c for c, e in zip(cands, ends) if not e][:k]
  score, tokens = finished[0]
  return tokens, score


@pytest.mark.parametrize('eos_rule', decoding.EOS_RULES)
def test_beam_search_matches_a_python_reference_under_each_eos_rule(eos_rule):
  """Random 12-token chains where EOS is often a close second: the two rules disagree
  on some start tokens, and each agrees with the plain-Python search everywhere."""
  k, n, alpha = 3, 8, 0.6
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(12, 12)) * 1.5
  logits[:, EOS_ID] += 1.0
  logits[:, PAD_ID] = -30.0
  logp = np.asarray(jax.nn.log_softmax(logits, axis=-1), np.float32)
  step_fn = markov_step(logp)
  starts = [t for t in range(12) if t not in (PAD_ID, EOS_ID)]
  start = jnp.asarray(starts, jnp.int32)[:, None]
  run = lambda rule: jax.jit(lambda: decoding.beam_search(
      step_fn, chain_cache(len(starts) * k), start, max_len=n, beam_size=k, alpha=alpha,
      eos_rule=rule))()
  res = run(eos_rule)
  for row, s in enumerate(starts):
    want_tokens, want_score = reference_beam_search(logp, s, k, n, alpha, eos_rule)
    got = np.asarray(res.tokens[row])
    np.testing.assert_array_equal(got[:len(want_tokens)], want_tokens)
    assert np.all(got[len(want_tokens):] == PAD_ID)
    np.testing.assert_allclose(res.scores[row], want_score, rtol=1e-5)
  other = run('top_k' if eos_rule == 'all' else 'all')
  assert np.any(np.asarray(other.scores) != np.asarray(res.scores))   # the rules differ here
  if eos_rule == 'all':   # keeping more finished candidates never lowers the best score
    assert np.all(np.asarray(res.scores) >= np.asarray(other.scores) - 1e-6)


def test_eos_rule_top_k_drops_an_eos_ranked_below_k():
  """BOS -> X (0.55) or EOS (0.45); X's continuations are poor. With one beam the EOS
  ranks second of two candidates: the paper's rule finishes it, Hugging Face's drops it."""
  X, Y = 4, 5
  logp = np.full((6, 6), -30.0, np.float32)
  logp[BOS_ID, X], logp[BOS_ID, EOS_ID] = np.log(0.55), np.log(0.45)
  logp[X, Y], logp[X, EOS_ID] = np.log(0.6), np.log(0.4)
  logp[Y, EOS_ID], logp[Y, X] = np.log(0.6), np.log(0.4)
  start = jnp.array([[BOS_ID]], jnp.int32)
  run = lambda rule: jax.jit(lambda: decoding.beam_search(
      markov_step(logp), chain_cache(1), start, max_len=6, beam_size=1, alpha=0.0,
      eos_rule=rule))()
  paper, hf = run('all'), run('top_k')
  np.testing.assert_array_equal(np.asarray(paper.tokens[0, :1]), [EOS_ID])
  np.testing.assert_allclose(paper.scores[0], np.log(0.45), rtol=1e-6)
  # Top-K rule: the EOS after BOS and the one after X both rank second and are dropped.
  np.testing.assert_array_equal(np.asarray(hf.tokens[0, :3]), [X, Y, EOS_ID])
  np.testing.assert_allclose(hf.scores[0], np.log(0.55 * 0.6 * 0.6), rtol=1e-6)
  with pytest.raises(ValueError, match='eos_rule'):
    decoding.beam_search(markov_step(logp), chain_cache(1), start, max_len=6, beam_size=1,
                         eos_rule='hf')


def test_length_penalty_formula():
  for length in (1, 3, 10, 57):
    for alpha in (0.0, 0.6, 1.0, 2.0):
      np.testing.assert_allclose(decoding.length_penalty(length, alpha),
                                 ((5.0 + length) / 6.0) ** alpha, rtol=1e-6)
  np.testing.assert_allclose(decoding.length_penalty(jnp.array([1, 7]), 0.6),
                             [1.0, 2.0 ** 0.6], rtol=1e-6)


def test_eos_then_only_padding_and_early_stop():
  calls = []
  def counting_step(tokens, cache):
    jax.debug.callback(lambda: calls.append(1))
    return chain_step(tokens, cache)

  # Rows stop at different steps: from B (B -> EOS), from D (D -> C -> EOS), from A (A -> EOS).
  prompt = jnp.array([[BOS_ID, B], [BOS_ID, D], [BOS_ID, A]], jnp.int32)
  n = 10
  out = np.asarray(jax.jit(lambda c: decoding.greedy(counting_step, c, prompt, n))(
      chain_cache(3)))
  jax.effects_barrier()
  np.testing.assert_array_equal(out, naive_greedy(lambda buf: jnp.asarray(LOGP)[buf], prompt, n))
  lengths = _lengths(out)
  for row, length in zip(out, lengths):
    assert row[length - 1] == EOS_ID and np.all(row[length:] == PAD_ID)
  assert len(calls) == lengths.max() + 1  # prefill + one step per token, then the loop stops

  # Sampling and beam search: EOS then padding, and no padding before it.
  rng = jax.random.PRNGKey(0)
  prompt = jnp.full((64, 1), BOS_ID, jnp.int32)
  sampled = np.asarray(jax.jit(lambda: decoding.sample(chain_step, chain_cache(64), prompt, n,
                                                       rng))())
  beams = np.asarray(jax.jit(lambda: decoding.beam_search(
      chain_step, chain_cache(64 * 3), prompt, max_len=n, beam_size=3).beam_tokens)())
  beams = beams.reshape(-1, n)
  for seqs in (sampled, beams):
    lengths = _lengths(seqs)
    assert np.any(lengths < n)
    for row, length in zip(seqs, lengths):
      assert np.all(row[:length] != PAD_ID) and np.all(row[length:] == PAD_ID)
      assert np.sum(row == EOS_ID) == (1 if length < n or row[-1] == EOS_ID else 0)


# ---------------------------------------------------------------------------
# Sampling filters. The step function returns a fixed random table row per step.
# ---------------------------------------------------------------------------

STEPS, VOCAB, DRAWS = 4, 16, 512
TABLE = np.random.default_rng(42).normal(size=(STEPS, VOCAB)).astype(np.float32) * 2.0


def table_step(tokens, cache):
  t = cache['t']
  return jnp.broadcast_to(jnp.asarray(TABLE)[t], (tokens.shape[0], VOCAB)), {'t': t + 1}


def draw(temperature=1.0, top_k=0, top_p=1.0):
  """DRAWS samples [DRAWS, STEPS] from the table (cached per setting)."""
  return _draw(temperature, top_k, top_p)


@functools.lru_cache(maxsize=None)
def _draw(temperature, top_k, top_p):
  prompt = jnp.ones((DRAWS, 1), jnp.int32)
  run = jax.jit(lambda key: decoding.sample(table_step, {'t': jnp.int32(0)}, prompt, STEPS, key,
                                            temperature=temperature, top_k=top_k, top_p=top_p,
                                            eos_id=None))
  return np.asarray(run(jax.random.PRNGKey(0)))


def test_top_k_sampling():
  k = 3
  top = np.argsort(-TABLE, axis=-1)[:, :k]
  out = draw(top_k=k, temperature=1.5)
  for t in range(STEPS):
    assert set(out[:, t]) <= set(top[t])
    assert len(set(out[:, t])) > 1  # it does sample
  unfiltered = draw()
  assert any(not set(unfiltered[:, t]) <= set(top[t]) for t in range(STEPS))


def nucleus(logits, p):
  """Smallest set of most likely tokens with total probability >= p."""
  probs = np.exp(logits - logits.max())
  probs /= probs.sum()
  order = np.argsort(-probs)
  m = int(np.searchsorted(np.cumsum(probs[order]), p) + 1)
  return set(order[:m].tolist())


def test_top_p():
  for p in (0.2, 0.5, 0.8, 0.95):
    kept = np.isfinite(np.asarray(decoding.filter_logits(jnp.asarray(TABLE), top_p=p)))
    for t in range(STEPS):
      assert set(np.flatnonzero(kept[t]).tolist()) == nucleus(TABLE[t], p)
  p = 0.8
  out = draw(top_p=p)
  for t in range(STEPS):
    assert set(out[:, t]) <= nucleus(TABLE[t], p)
  unfiltered = draw()
  assert any(not set(unfiltered[:, t]) <= nucleus(TABLE[t], p) for t in range(STEPS))


def test_top_k_then_top_p():
  kept = np.isfinite(np.asarray(decoding.filter_logits(jnp.asarray(TABLE), top_k=4, top_p=0.9)))
  for t in range(STEPS):
    top4 = np.argsort(-TABLE[t])[:4]
    restricted = np.full(VOCAB, -np.inf)
    restricted[top4] = TABLE[t, top4]
    assert set(np.flatnonzero(kept[t]).tolist()) == nucleus(restricted, 0.9)


def test_low_temperature_is_greedy():
  top2 = -np.sort(-TABLE, axis=-1)[:, :2]
  assert np.all(top2[:, 0] - top2[:, 1] > 0.05)  # so temperature 1e-3 is effectively argmax
  greedy = np.broadcast_to(TABLE.argmax(-1), (DRAWS, STEPS))
  np.testing.assert_array_equal(draw(temperature=0.0), greedy)
  np.testing.assert_array_equal(draw(temperature=1e-3), greedy)
  assert not np.array_equal(draw(), greedy)


# ---------------------------------------------------------------------------
# The key/value cache sized to the request (decoding.sized_for), not to max_len.
# ---------------------------------------------------------------------------

LONG = CFG.replace(max_len=40)


def test_cache_buckets_are_powers_of_two_capped_at_max_len():
  assert [decoding.cache_bucket(n, 1024) for n in (1, 64, 65, 128, 129, 1000, 1025)] == \
      [64, 64, 128, 128, 256, 1024, 1024]
  assert decoding.cache_bucket(70, 100) == 100
  assert decoding.cache_length(decoding.init_cache(decoding.sized_for(CFG.replace(
      max_len=512), 70), 2)) == 128
  fixed = CFG.replace(max_len=512, cache_len=512)
  assert decoding.sized_for(fixed, 70) is fixed   # a size the caller chose is kept


@pytest.mark.slow
@pytest.mark.parametrize('positional', ['sinusoidal', 'rope'])
def test_a_request_sized_cache_gives_the_tokens_of_a_max_len_cache(positional, monkeypatch):
  """Across bucket edges (buckets 4, 8, 16, 32 here; max_len 40), with ragged prompts: the
  same greedy tokens as decoding on a cache of max_len slots."""
  monkeypatch.setattr(decoding, 'MIN_CACHE_BUCKET', 4)
  lengths = spy_on_cache_lengths(monkeypatch)
  cfg = LONG.replace(positional=positional)
  params = helpers.random_params(DecoderLM(cfg), SRC, seed=28, fill=sharp_logits)
  tokens, left_pad = decoding.pad_left([[5, 6], [7, 8, 9], [6, 7, 8]])
  whole = cfg.replace(cache_len=cfg.max_len)
  for n in (2, 3, 7, 15, 30):   # positions 4, 5, 9, 17, 32: buckets 4, 8, 16, 32, 32
    sized = decoding.generate(params, cfg, tokens, n, temperature=0.0, left_pad=left_pad)
    full = decoding.generate(params, whole, tokens, n, temperature=0.0, left_pad=left_pad)
    np.testing.assert_array_equal(sized, full)
  assert lengths == [4, 40, 8, 40, 16, 40, 32, 40, 32, 40]   # the caches decoded on


def spy_on_cache_lengths(monkeypatch) -> list[int]:
  """The positions of every cache decoding.init_cache makes from now on (at tracing)."""
  lengths, init = [], decoding.init_cache

  def recording(*args, **kw):
    cache = init(*args, **kw)
    lengths.append(decoding.cache_length(cache))
    return cache
  monkeypatch.setattr(decoding, 'init_cache', recording)
  return lengths


@pytest.mark.slow
def test_beam_search_on_a_request_sized_cache_matches_a_max_len_cache(monkeypatch):
  """Beam search reorders the cache every step: on a cache sized to the request (buckets 8
  and 16 here) its hypotheses and scores are those of a max_len cache, for greedy too."""
  monkeypatch.setattr(decoding, 'MIN_CACHE_BUCKET', 4)
  lengths = spy_on_cache_lengths(monkeypatch)
  params = helpers.random_params(EncoderDecoder(LONG), SRC, SRC, seed=23, fill=sharp_logits)
  whole = LONG.replace(cache_len=LONG.max_len)
  for extra in (2, 9):   # output lengths 7 and 14: buckets 8 and 16
    sized = decoding.translate_beam(params, LONG, SRC, beam_size=3, extra_len=extra)
    full = decoding.translate_beam(params, whole, SRC, beam_size=3, extra_len=extra)
    np.testing.assert_array_equal(sized.beam_tokens, full.beam_tokens)
    np.testing.assert_allclose(sized.beam_scores, full.beam_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        decoding.translate_greedy(params, LONG, SRC, extra_len=extra),
        decoding.translate_greedy(params, whole, SRC, extra_len=extra))
  assert lengths == [8, 40, 8, 40, 16, 40, 16, 40]


def test_gather_beams_reorders_the_self_cache_and_leaves_the_shared_cross_cache():
  """Beams of one element share their source's cross-attention keys/values (primed from
  repeat_beams rows), so a reorder within the element leaves them; the self-attention
  cache and its index follow the new beams."""
  rng = np.random.default_rng(0)
  cross = jnp.asarray(rng.normal(size=(2 * 3, 1, 5, 4)), jnp.float32)
  self_k = jnp.asarray(rng.normal(size=(2 * 3, 1, 8, 4)), jnp.float32)
  cache = {'layer': {'cached_key': self_k, 'cross_key': cross, 'cache_index': jnp.int32(3)}}
  beam_idx = jnp.asarray([[2, 2, 0], [1, 0, 0]])
  out = decoding.gather_beams(cache, beam_idx)
  rows = [2, 2, 0, 3 + 1, 3 + 0, 3 + 0]
  np.testing.assert_array_equal(np.asarray(out['layer']['cached_key']), np.asarray(self_k)[rows])
  assert out['layer']['cross_key'] is cross
  assert int(out['layer']['cache_index']) == 3
