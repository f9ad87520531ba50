"""One Billion Word benchmark (TFDS `lm1b`), for accelerators.

  python train.py --config=configs/lm1b.py --workdir=runs/lm1b

The Flax lm1b example's recipe: a 30k-piece SentencePiece vocabulary trained
from the training text (saved as WORKDIR/spm_lm1b.model and reused), a
6-layer decoder-only Transformer of width 512 (8 heads, MLP 2048, dropout
0.1), sequences of up to 128 pieces, batch 256, Adam with the rsqrt schedule
(peak 0.0016 after 1000 warmup steps) and weight decay 0.1, bfloat16
computation. The Flax example's README (google/flax, examples/lm1b, its
table of supported setups) reports for this recipe a loss of 3.127
(perplexity about 22.8) after 13 h 18 m on a TPU v3-8; the "about 33" quoted
here before came from an older version of that example (8 V100s). The figure
is taken as issue 15 quotes it; the README's commit could not be checked
offline.

The data cannot be downloaded on machines without internet; there, put one
sentence per line in DATA_DIR/lm1b/{train,test}.txt (the tests use such a
tiny stand-in).

Result of this config: not run yet (it needs the TFDS lm1b download, which the
project's machine cannot make without internet, and an accelerator: 500,000
steps of batch 256 x 128 tokens).
"""

from configs import base


def get_config():
  c = base.get_config()
  c.task = 'lm'
  c.dataset = 'lm1b'
  c.vocab_size = 30000
  c.spm_max_sentences = 200_000        # sentences sampled to train the vocabulary
  c.seq_len = 128
  c.packing = True                   # several sentences per row (the flax example packs too)
  c.batch_size = 256
  c.num_train_steps = 500_000
  c.log_every_steps = 200
  c.eval_every_steps = 5000
  c.eval_split = 'test'
  c.eval_max_batches = 100
  c.checkpoint_every_steps = 5000
  c.model.update(dict(
      d_model=512, num_heads=8, d_ff=2048, num_encoder_layers=0, num_decoder_layers=6,
      dropout_rate=0.1, norm_position='pre', activation='relu', positional='sinusoidal',
      logits_via_embedding=True, dtype='bfloat16', attention_impl='auto'))
  c.optimizer = 'adamw'
  # rsqrt schedule: lr = learning_rate * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5);
  # 1.145 * 512^-0.5 * 1000^-0.5 = 0.0016 at the peak, as the Flax example.
  c.learning_rate = 1.145
  c.schedule = 'rsqrt'
  c.warmup_steps = 1000
  c.b1, c.b2, c.eps = 0.9, 0.98, 1e-9
  c.weight_decay = 0.1
  c.sample.prompt = 'I love to'
  c.sample.num_tokens = 40
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='test/perplexity',          # over eval_max_batches=100 batches of the test split
    higher_is_better=False,
    reference=22.8,
    source='google/flax examples/lm1b README, supported-setups table: loss 3.127 (perplexity '
           '~22.8), TPU v3-8, 13 h 18 m',
    target=None,
    time_budget_min=None,
    runnable_here=False,
    why=('needs the TFDS lm1b download (no internet here) and an accelerator: '
         '500,000 steps of batch 256 x 128 tokens'),
)
