"""WMT14 English -> German, the paper's Transformer (big), for accelerators.

  python train.py --config=configs/wmt14_ende_big.py --workdir=runs/wmt14_big
  python -m tools.average --config=configs/wmt14_ende_big.py --workdir=runs/wmt14_big --num=20
  python eval.py --config=configs/wmt14_ende_big.py --workdir=runs/wmt14_big --checkpoint=avg

"Attention Is All You Need" (Vaswani et al. 2017): the big model (6+6 layers,
d_model 1024, 16 heads, d_ff 4096, P_drop 0.3 for English-German), trained
for 300,000 steps (3.5 days on 8 P100s), the average of the last 20
checkpoints (here written every 1,000 steps, the last 20 kept); everything
else as configs/wmt14_ende_base.py (shared ~37k BPE vocabulary, ~25,000 +
25,000 tokens per batch, Adam 0.9/0.98/1e-9, rsqrt schedule with 4000 warmup
steps, label smoothing 0.1, beam 4, alpha 0.6, max length input + 50). The
paper reports 28.4 BLEU on newstest2014 (tokenized BLEU with compound
splitting). Result of this config: not run yet (as configs/wmt14_ende_base.py:
the WMT14 training data and accelerators are not available here).
"""

from configs import wmt14_ende_base


def get_config():
  c = wmt14_ende_base.get_config()
  c.model_preset = 'big'               # 6+6 layers, 1024, 16 heads, 4096, dropout 0.3
  c.num_train_steps = 300_000
  c.keep_checkpoints = 20              # the paper averaged the last 20 checkpoints
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='newstest2014/tokenized_bleu',   # eval.py --checkpoint=avg; closest to the paper's
    higher_is_better=True,
    reference=28.4,
    source='Vaswani et al. 2017, Table 2: big model, newstest2014 EN-DE, tokenized BLEU',
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs the WMT14 training data (4.5M pairs, a TFDS download; no internet here, '
         'shared/data has newstest2014 only) and accelerators: 300,000 steps of ~25,000-token '
         'batches (3.5 days on 8 P100s in the paper)'),
)
