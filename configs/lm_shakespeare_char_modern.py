"""The Shakespeare character LM with the decoder-only switches of LLaMA-style models.

  python train.py --config=configs/lm_shakespeare_char_modern.py --workdir=runs/shakespeare_modern

Everything is lm_shakespeare_char's recipe (data, 2,000 steps, optimizer,
schedule, width 128, 4 layers, 4 heads, pre-LN, no biases) except three
switches, so the two validation losses compare the switches alone:
- rotary position embeddings (positional='rope', Su et al. 2021) instead of
  learned absolute positions;
- grouped-query attention with 2 key/value heads for the 4 query heads
  (num_kv_heads=2, Ainslie et al. 2023): half the key/value cache;
- a SwiGLU feed-forward (gated_ffn, activation 'silu', Shazeer 2020) of width
  344 ~ 2/3 x 512, so its three matrices hold about as many weights as the
  baseline's two (LLaMA's convention).

Result: see results/lm_shakespeare_char_modern.json and benchmarks/RESULTS.md
(validation loss at step 2,000 beside the baseline's, same machine).
"""

from configs import lm_shakespeare_char


def get_config():
  c = lm_shakespeare_char.get_config()
  c.model.update(dict(positional='rope', num_kv_heads=2, gated_ffn=True, activation='silu',
                      d_ff=344))
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/loss',          # SPLIT/NAME as written in WORKDIR/metrics.jsonl
    higher_is_better=False,
    reference=1.8585,
    source=('this repository: lm_shakespeare_char (learned positions, 4 key/value heads, GELU '
            'feed-forward), results/lm_shakespeare_char.json, same steps and machine'),
    target=None,                       # a comparison of switches, not a target
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
