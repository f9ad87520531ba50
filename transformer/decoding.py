"""Autoregressive decoding on the key/value cache: greedy, sampling, beam search.

Every decoder here works on a *step function*

    step_fn(tokens [B, L], cache) -> (logits [B, V] of the last position, new cache)

which feeds `tokens` through the cache and returns the next-token logits. The
decoders call it with L = 1, and once with the prompt minus its last token to
prefill the cache. `lm_step_fn` and `seq2seq_step_fn` build one for
`DecoderLM` and `EncoderDecoder` (and `init_cache` its empty cache, which
`prime_cross_cache` fills with the cross-attention keys and values of the
encoder output, once per source, before an `EncoderDecoder` decodes); any other
function with this signature works too (the tests use a hand-written Markov
chain). The cache may be any pytree; beam search needs every non-scalar leaf to
have the batch*beam rows as its leading axis (scalars such as the cache index
are shared).

Token conventions (`transformer.data.tokenizers`): 0 is padding, 2 BOS, 3 EOS.
Translation: the decoder input is [BOS, y1, ..., yn] and its output
[y1, ..., yn, EOS], so decoding starts from BOS and returns y1 ... EOS followed
by padding. Language models have no start token: the prompt is given; prompts
of different lengths share a batch padded on the left (`pad_left`), the
model masking each row's padding and restarting its positions.

Everything is jit-compatible: loops over time are `lax.while_loop`s with a fixed
maximum length that stop early once every sequence is done. Lengths, `top_k`,
`top_p`, `temperature`, `beam_size` and `alpha` are static Python numbers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from transformer.model_config import TransformerConfig
from transformer.token_ids import BOS_ID, EOS_ID, PAD_ID
from transformer.models import DecoderLM, EncoderDecoder

Array = jax.Array
Cache = Any
StepFn = Callable[[Array, Cache], tuple[Array, Cache]]


# ---------------------------------------------------------------------------
# Step functions for the models.
# ---------------------------------------------------------------------------

def cached_config(cfg: TransformerConfig) -> TransformerConfig:
  """The single-step, dropout-free variant of a model config (on a key/value cache)."""
  return cfg.replace(use_cache=True, deterministic=True)


MIN_CACHE_BUCKET = 64   # the smallest cache; then powers of two up to max_len


def cache_bucket(positions: int, max_len: int) -> int:
  """The cache size for a request that feeds `positions` tokens through the cache: the
  smallest power of two >= positions (at least MIN_CACHE_BUCKET), capped at max_len. A few
  sizes, so that compiled decoders are reused across requests of similar lengths."""
  size = MIN_CACHE_BUCKET
  while size < positions:
    size *= 2
  return min(size, max_len)


def sized_for(cfg: TransformerConfig, positions: int) -> TransformerConfig:
  """`cfg` with its key/value cache sized to a request of `positions` cached tokens (the
  prompt plus every generated token but the last), not to max_len: each decoding step then
  attends over (and beam search reorders) a cache that grows with the text, and the cost of
  a token no longer depends on the model's maximum length. The tokens are the same as with
  a max_len cache: the slots past the request are masked either way. A cache_len the
  caller set is kept (`cfg.replace(cache_len=cfg.max_len)`: the whole-length cache)."""
  if cfg.cache_len is not None:
    return cfg
  return cfg.replace(cache_len=cache_bucket(positions, cfg.max_len))


def init_cache(cfg: TransformerConfig, batch_size: int, src_length: int | None = None) -> Cache:
  """An empty key/value cache for `batch_size` rows.

  For `DecoderLM` when `src_length` is None, else for `EncoderDecoder` with
  sources of that length. Shapes come from `jax.eval_shape` (no parameters are
  initialized); every cache variable of the models starts at zero.
  """
  cfg = cached_config(cfg)
  key = jax.random.PRNGKey(0)
  tgt = jax.ShapeDtypeStruct((batch_size, 1), jnp.int32)
  if src_length is None:
    shapes = jax.eval_shape(lambda t: DecoderLM(cfg).init(key, t), tgt)
  else:
    src = jax.ShapeDtypeStruct((batch_size, src_length), jnp.int32)
    shapes = jax.eval_shape(lambda s, t: EncoderDecoder(cfg).init(key, s, t), src, tgt)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes['cache'])


def lm_step_fn(cfg: TransformerConfig, params, left_pad: Array | None = None) -> StepFn:
  """The step function of a `DecoderLM` with these parameters.

  `left_pad` [B]: the rows are left-padded ragged prompts (see `pad_left`).
  """
  model = DecoderLM(cached_config(cfg))

  def step_fn(tokens, cache):
    logits, state = model.apply({'params': params, 'cache': cache}, tokens, left_pad,
                                mutable=['cache'])
    return logits[:, -1], state['cache']
  return step_fn


def pad_left(prompts, pad_id: int = PAD_ID) -> tuple[Array, Array]:
  """Ragged prompts (lists of token ids) -> (tokens [B, P] padded on the left, left_pad [B]).

  Every row then ends at the same column, so one cache slot per step serves
  all rows; `DecoderLM` masks the padding and restarts positions per row.
  """
  prompts = [list(p) for p in prompts]
  if not prompts or min(len(p) for p in prompts) == 0:
    raise ValueError('pad_left needs at least one prompt, each with at least one token')
  width = max(len(p) for p in prompts)
  tokens = jnp.asarray([[pad_id] * (width - len(p)) + p for p in prompts], jnp.int32)
  return tokens, jnp.asarray([width - len(p) for p in prompts], jnp.int32)


def encode(cfg: TransformerConfig, params, src: Array) -> Array:
  """The `EncoderDecoder` encoder output [B, S, d_model] for source tokens [B, S]."""
  return EncoderDecoder(cached_config(cfg)).apply({'params': params}, src, method='encode')


def prime_cross_cache(cfg: TransformerConfig, params, encoded: Array, src: Array,
                      cache: Cache) -> Cache:
  """Projects the encoder output to every decoder layer's cross-attention keys and
  values once, into the cache (with cfg.cache_cross_kv; else returns the cache as is).

  Beam search: prime with `repeat_beams(encoded, k)` and `repeat_beams(src, k)`
  (every beam of an element then holds the same rows, which beam search never reorders).
  """
  if not cfg.cache_cross_kv:
    return cache
  _, state = EncoderDecoder(cached_config(cfg)).apply(
      {'params': params, 'cache': cache}, encoded, src, None, method='decode', mutable=['cache'])
  return state['cache']


def seq2seq_step_fn(cfg: TransformerConfig, params, encoded: Array | None,
                    src: Array) -> StepFn:
  """The step function of an `EncoderDecoder` decoding the given sources.

  With cfg.cache_cross_kv (default) the cache must have been filled by
  `prime_cross_cache`, and `encoded` is not used (pass None): each step reads
  the cross-attention keys/values from the cache. With cache_cross_kv=False
  every step projects `encoded` again. For beam search pass
  `repeat_beams(src, k)` (and `repeat_beams(encoded, k)`).
  """
  model = EncoderDecoder(cached_config(cfg))
  kv_source = None if cfg.cache_cross_kv else encoded

  def step_fn(tokens, cache):
    logits, state = model.apply({'params': params, 'cache': cache}, kv_source, src, tokens,
                                method='decode', mutable=['cache'])
    return logits[:, -1], state['cache']
  return step_fn


def repeat_beams(x: Array, beam_size: int) -> Array:
  """[B, ...] -> [B * beam_size, ...]: row b*beam_size + k is a copy of row b."""
  return jnp.repeat(x, beam_size, axis=0)


def cache_length(cache: Cache) -> int | None:
  """Positions the model's key/value cache holds (None: no `cached_key` in the pytree); the
  cache is heads-major, [batch, kv_heads, positions, head_dim]."""
  lengths = {leaf.shape[2] for path, leaf in jax.tree_util.tree_leaves_with_path(cache)
             if getattr(path[-1], 'key', None) == 'cached_key'}
  return min(lengths) if lengths else None


def check_cache_room(cache: Cache, positions: int, what: str) -> None:
  """Raises ValueError when decoding needs more than the cache's positions.

  `positions` is the number of tokens that will be fed through the cache:
  the prompt plus every generated token but the last. Without this check the
  cache write would clamp at its end and silently corrupt the last slots.
  """
  length = cache_length(cache)
  if length is not None and positions > length:
    raise ValueError(
        f'{what} needs {positions} key/value cache positions but the cache holds {length} '
        f'(at most model.max_len); shorten the prompt or the number of new tokens, or build the '
        f'model with a larger max_len')


def _prefill(step_fn: StepFn, cache: Cache, prompt: Array) -> tuple[Array, Cache]:
  """Feeds all prompt tokens but the last; returns the last ones [B] and the cache."""
  if prompt.shape[1] > 1:
    _, cache = step_fn(prompt[:, :-1], cache)
  return prompt[:, -1].astype(jnp.int32), cache


# ---------------------------------------------------------------------------
# Greedy decoding and sampling.
# ---------------------------------------------------------------------------

def _decode_loop(step_fn: StepFn, cache: Cache, prompt: Array, max_new_tokens: int,
                 choose: Callable[[Array, Array], Array], rng: Array,
                 eos_id: int | None, pad_id: int) -> Array:
  """Generates up to `max_new_tokens` tokens [B, N] with `choose(logits, key)`.

  A row is done after its EOS; later positions hold `pad_id`. The loop stops
  when every row is done.
  """
  batch = prompt.shape[0]
  eos = -1 if eos_id is None else eos_id
  check_cache_room(cache, prompt.shape[1] + max_new_tokens - 1,
                   f'decoding {max_new_tokens} tokens after a prompt of {prompt.shape[1]}')
  last, cache = _prefill(step_fn, cache, prompt)

  def cond(state):
    t, _, _, done, _ = state
    return (t < max_new_tokens) & ~jnp.all(done)

  def body(state):
    t, out, last, done, cache = state
    logits, cache = step_fn(last[:, None], cache)
    token = choose(logits, jax.random.fold_in(rng, t)).astype(jnp.int32)
    token = jnp.where(done, pad_id, token)
    out = out.at[:, t].set(token)
    return t + 1, out, token, done | (token == eos), cache

  out = jnp.full((batch, max_new_tokens), pad_id, jnp.int32)
  state = (jnp.int32(0), out, last, jnp.zeros((batch,), jnp.bool_), cache)
  return jax.lax.while_loop(cond, body, state)[1]


def greedy(step_fn: StepFn, cache: Cache, prompt: Array, max_new_tokens: int, *,
           eos_id: int | None = EOS_ID, pad_id: int = PAD_ID) -> Array:
  """Greedy decoding: the argmax token at every step.

  prompt [B, P] (for translation [B, 1] of BOS) -> new tokens [B, max_new_tokens],
  `pad_id` after each row's EOS (`eos_id=None`: never stop early).
  """
  choose = lambda logits, key: jnp.argmax(logits, axis=-1)
  return _decode_loop(step_fn, cache, prompt, max_new_tokens, choose, jax.random.PRNGKey(0),
                      eos_id, pad_id)


def filter_logits(logits: Array, top_k: int = 0, top_p: float = 1.0) -> Array:
  """Sets to -inf the logits [..., V] outside the top-k and then the top-p nucleus.

  top_k=0 and top_p=1.0 are off. The nucleus is the smallest set of most likely
  tokens whose total probability (after top-k) is >= top_p. Ties at the cut
  are all kept.
  """
  if top_k > 0:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  if top_p < 1.0:
    if top_p <= 0.0:
      raise ValueError(f'top_p={top_p} must be in (0, 1]')
    desc = -jnp.sort(-logits, axis=-1)
    probs = jax.nn.softmax(desc, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    # Keep a token while the more likely ones do not reach top_p yet.
    cutoff = jnp.min(jnp.where(mass_before < top_p, desc, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits >= cutoff, logits, -jnp.inf)
  return logits


def sample(step_fn: StepFn, cache: Cache, prompt: Array, max_new_tokens: int, rng: Array, *,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           eos_id: int | None = EOS_ID, pad_id: int = PAD_ID) -> Array:
  """Ancestral sampling from softmax(logits / temperature), top-k then top-p filtered.

  Same inputs and outputs as `greedy`; temperature 0 is greedy decoding.
  """
  if temperature == 0:
    return greedy(step_fn, cache, prompt, max_new_tokens, eos_id=eos_id, pad_id=pad_id)

  def choose(logits, key):
    logits = filter_logits(logits.astype(jnp.float32) / temperature, top_k, top_p)
    return jax.random.categorical(key, logits, axis=-1)
  return _decode_loop(step_fn, cache, prompt, max_new_tokens, choose, rng, eos_id, pad_id)


# ---------------------------------------------------------------------------
# Beam search.
# ---------------------------------------------------------------------------

def length_penalty(length, alpha: float):
  """GNMT length penalty lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016)."""
  return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


class BeamSearchResult(NamedTuple):
  tokens: Array       # [B, L] the best hypothesis, EOS then padding
  scores: Array       # [B] its score: log-prob / length_penalty(length)
  beam_tokens: Array  # [B, K, L] all finished hypotheses, best first
  beam_scores: Array  # [B, K] their scores


def _take(x: Array, idx: Array) -> Array:
  """x [B, n, ...], idx [B, m] -> [B, m, ...]: per-row gather along axis 1."""
  return x[jnp.arange(x.shape[0])[:, None], idx]


# Cache entries that are the same for every beam of one element (its source's cross-attention
# keys and values, primed from repeat_beams rows): a reorder within the element leaves them as
# they are, so beam search never copies them.
SHARED_BY_BEAMS = ('cross_key', 'cross_value')


def gather_beams(cache: Cache, beam_idx: Array) -> Cache:
  """Reorders cache rows [B*K, ...] so new beam k of element b is old beam beam_idx[b, k]
  (the self-attention keys and values; the beams' shared cross-attention ones stay)."""
  batch, beams = beam_idx.shape
  rows = (jnp.arange(batch)[:, None] * beams + beam_idx).reshape(-1)

  def reorder(path, x):
    if x.ndim == 0 or getattr(path[-1], 'key', None) in SHARED_BY_BEAMS:
      return x
    return x[rows]
  return jax.tree_util.tree_map_with_path(reorder, cache)


EOS_RULES = ('all', 'top_k')


def beam_search(step_fn: StepFn, cache: Cache, prompt: Array, *, max_len: int,
                beam_size: int = 4, alpha: float = 0.6, eos_id: int = EOS_ID,
                pad_id: int = PAD_ID, eos_rule: str = 'all') -> BeamSearchResult:
  """Beam search with the GNMT length penalty, as in the paper (beam 4, alpha 0.6).

  prompt [B, P] (BOS [B, 1] for translation) is expanded to `beam_size` beams;
  `step_fn` and `cache` must serve B * beam_size rows ordered as `repeat_beams`.
  Up to `max_len` tokens are generated. Each step expands the K live beams,
  keeps the 2K best candidates by log-prob, and:
  - candidates ending in EOS (or reaching max_len) are finished, scored
    log-prob / lp(|Y|) with |Y| counting the EOS, and merged with the earlier
    finished ones (the K best are kept). Which ending candidates count is
    `eos_rule`: 'all' (default) takes every one among the 2K, as
    tensor2tensor (the paper's code) and the flax WMT example do; 'top_k'
    takes only those ranked among the top K, as Hugging Face's
    `num_beams` search does (an EOS ranked K+1..2K is dropped, even when its
    length-normalized score would have won);
  - the K best candidates not ending stay alive (so K beams always continue).
  With beam_size 1, alpha 0 and eos_rule 'top_k' this is greedy decoding. Element b stops when its
  worst of K finished scores beats what its best live beam could still reach,
  best log-prob / lp(max_len) (for alpha >= 0); the loop stops when all have.
  """
  if eos_rule not in EOS_RULES:
    raise ValueError(f'eos_rule={eos_rule!r} is not one of {EOS_RULES}')
  batch, k = prompt.shape[0], beam_size
  check_cache_room(cache, prompt.shape[1] + max_len - 1,
                   f'beam search of {max_len} tokens after a prompt of {prompt.shape[1]}')
  last, cache = _prefill(step_fn, cache, repeat_beams(prompt, k))
  live_logp = jnp.tile(jnp.array([0.0] + [-jnp.inf] * (k - 1), jnp.float32), (batch, 1))
  empty = jnp.full((batch, k, max_len), pad_id, jnp.int32)
  fin_scores = jnp.full((batch, k), -jnp.inf, jnp.float32)
  best_possible_lp = length_penalty(max_len, alpha)

  def cond(state):
    t, _, live_logp, _, _, fin_scores, _ = state
    done = jnp.min(fin_scores, axis=-1) >= jnp.max(live_logp, axis=-1) / best_possible_lp
    return (t < max_len) & ~jnp.all(done)

  def body(state):
    t, last, live_logp, live_tokens, fin_tokens, fin_scores, cache = state
    logits, cache = step_fn(last.reshape(batch * k, 1), cache)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, k, -1)
    vocab = logp.shape[-1]
    cand_logp, cand = jax.lax.top_k((live_logp[..., None] + logp).reshape(batch, k * vocab), 2 * k)
    cand_beam, cand_token = cand // vocab, (cand % vocab).astype(jnp.int32)
    cand_tokens = _take(live_tokens, cand_beam).at[:, :, t].set(cand_token)
    ends = (cand_token == eos_id) | (t == max_len - 1)

    # Finished: the ending candidates (under eos_rule), merged with the old finished.
    if eos_rule == 'top_k':
      ends_counted = ends & (jnp.arange(2 * k) < k)
    else:
      ends_counted = ends
    new_scores = jnp.where(ends_counted, cand_logp / length_penalty(t + 1, alpha), -jnp.inf)
    fin_scores, idx = jax.lax.top_k(jnp.concatenate([fin_scores, new_scores], 1), k)
    fin_tokens = _take(jnp.concatenate([fin_tokens, cand_tokens], 1), idx)

    # Alive: the K best candidates that do not end.
    live_logp, idx = jax.lax.top_k(jnp.where(ends, -jnp.inf, cand_logp), k)
    cache = gather_beams(cache, _take(cand_beam, idx))
    return (t + 1, _take(cand_token, idx), live_logp, _take(cand_tokens, idx), fin_tokens,
            fin_scores, cache)

  state = (jnp.int32(0), last.reshape(batch, k), live_logp, empty, empty, fin_scores, cache)
  _, _, _, _, fin_tokens, fin_scores, _ = jax.lax.while_loop(cond, body, state)
  return BeamSearchResult(fin_tokens[:, 0], fin_scores[:, 0], fin_tokens, fin_scores)


# ---------------------------------------------------------------------------
# Conveniences for the models.
# ---------------------------------------------------------------------------

def translate(params, cfg: TransformerConfig, src: Array, *, method: str = 'greedy',
              beam_size: int = 4, alpha: float = 0.6, extra_len: int = 50,
              bos_id: int = BOS_ID, eos_id: int = EOS_ID, eos_rule: str = 'all') -> Array:
  """Translates source tokens [B, S] with an `EncoderDecoder` (`method` 'greedy' or 'beam').

  Returns target tokens [B, min(S + extra_len, cfg.max_len)]: y1 ... EOS, then
  padding. The maximum output length is the (padded) input length + 50, as in
  the paper, capped by the decoder's position limit cfg.max_len.
  """
  kw = dict(extra_len=extra_len, bos_id=bos_id, eos_id=eos_id)
  if method == 'greedy':
    return translate_greedy(params, cfg, src, **kw)
  if method == 'beam':
    return translate_beam(params, cfg, src, beam_size=beam_size, alpha=alpha,
                          eos_rule=eos_rule, **kw).tokens
  raise ValueError(f"method={method!r} is not 'greedy' or 'beam'")


def _output_len(cfg: TransformerConfig, src: Array, extra_len: int) -> int:
  return min(src.shape[1] + extra_len, cfg.max_len)


@functools.partial(jax.jit, static_argnames=('cfg', 'extra_len', 'bos_id', 'eos_id'))
def translate_greedy(params, cfg: TransformerConfig, src: Array, *, extra_len: int = 50,
                     bos_id: int = BOS_ID, eos_id: int = EOS_ID) -> Array:
  """`translate(method='greedy')`, jitted."""
  batch, src_len = src.shape
  cfg = sized_for(cfg, _output_len(cfg, src, extra_len))
  encoded = encode(cfg, params, src)
  cache = prime_cross_cache(cfg, params, encoded, src, init_cache(cfg, batch, src_len))
  step_fn = seq2seq_step_fn(cfg, params, encoded, src)
  start = jnp.full((batch, 1), bos_id, jnp.int32)
  return greedy(step_fn, cache, start, _output_len(cfg, src, extra_len), eos_id=eos_id)


@functools.partial(jax.jit, static_argnames=('cfg', 'beam_size', 'alpha', 'extra_len', 'bos_id',
                                             'eos_id', 'eos_rule'))
def translate_beam(params, cfg: TransformerConfig, src: Array, *, beam_size: int = 4,
                   alpha: float = 0.6, extra_len: int = 50, bos_id: int = BOS_ID,
                   eos_id: int = EOS_ID, eos_rule: str = 'all') -> BeamSearchResult:
  """Beam search translation (jitted), with the scores and all K hypotheses."""
  batch, src_len = src.shape
  cfg = sized_for(cfg, _output_len(cfg, src, extra_len))
  encoded = repeat_beams(encode(cfg, params, src), beam_size)
  src = repeat_beams(src, beam_size)
  cache = prime_cross_cache(cfg, params, encoded, src,
                            init_cache(cfg, batch * beam_size, src_len))
  step_fn = seq2seq_step_fn(cfg, params, encoded, src)
  start = jnp.full((batch, 1), bos_id, jnp.int32)
  return beam_search(step_fn, cache, start,
                     max_len=_output_len(cfg, src, extra_len), beam_size=beam_size, alpha=alpha,
                     eos_id=eos_id, eos_rule=eos_rule)


@functools.partial(jax.jit, static_argnames=('cfg', 'max_new_tokens', 'temperature', 'top_k',
                                             'top_p', 'eos_id'))
def generate(params, cfg: TransformerConfig, prompt: Array, max_new_tokens: int,
             rng: Array | None = None, *, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, eos_id: int | None = None,
             left_pad: Array | None = None) -> Array:
  """Continues prompts [B, P] with a `DecoderLM`: new tokens [B, max_new_tokens].

  Prompts of different lengths: pass them padded on the left with their
  `left_pad` [B] (`tokens, left_pad = pad_left(prompts)`); each row then
  continues as its prompt alone would. Sampling options as in `sample`
  (temperature 0: greedy). `eos_id` is None by default because character-
  and word-level vocabularies have no EOS id; given one, rows stop at it and
  are padded.
  """
  batch = prompt.shape[0]   # the cache's length is checked by the decoding loop
  cfg = sized_for(cfg, prompt.shape[1] + max_new_tokens - 1)
  rng = jax.random.PRNGKey(0) if rng is None else rng
  return sample(lm_step_fn(cfg, params, left_pad), init_cache(cfg, batch), prompt,
                max_new_tokens, rng,
                temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos_id)
