"""Word-level Penn Treebank language model (Mikolov's preprocessing, 10k vocabulary).

  python train.py --config=configs/lm_ptb.py --workdir=runs/ptb
  python eval.py --config=configs/lm_ptb.py --workdir=runs/ptb --config.eval_split=test
  # sliding windows: every test word scored once with >= 48 words of context
  python eval.py --workdir=runs/ptb --config.eval_split=test --config.eval_stride=16

A small pre-LN Transformer with heavy dropout (PTB is small and overfits),
tied input/output embeddings, trained with AdamW and cosine decay, sized to
train in under an hour on 2 CPU cores. Reference test perplexities: 114
(Zaremba et al. 2014, small LSTM) and 82 (medium LSTM).

Result (results/lm_ptb.json, 2026-12-02, the commands above, 5,000 steps, about 11
epochs): test perplexity 105.91 with non-overlapping windows, 100.99 with sliding windows
(stride 16), validation 114.55. Issue 15's target (< 100 within 60 minutes) is not met.
The run's 96 minutes are of a contended machine (about 14% of the cores stolen, and the run
reniced and paused while tests and benchmarks ran); alone its steps take about 0.6 s,
about 50 minutes in all. Rows of 128 words x 16 tracked 7-10% worse on validation at
steps 500-1,500 and were dropped. (Before: 108.7 after 4,500 steps, 2026-11-22.)

Run log: benchmarks/RESULTS.md (2026-11-22, Penn Treebank; 2026-12-02 night, PTB rerun).
"""

from configs import base


def get_config():
  c = base.get_config()
  c.task = 'lm'
  c.dataset = 'ptb'
  c.seq_len = 64
  c.eval_stride = 0                    # 0: non-overlapping windows; 0 < S < seq_len: sliding
  c.batch_size = 32
  c.num_train_steps = 5000
  c.log_every_steps = 100
  c.eval_every_steps = 500
  c.eval_batch_size = 64
  c.checkpoint_every_steps = 1000
  c.model.update(dict(
      d_model=192, num_heads=4, d_ff=768, num_encoder_layers=0, num_decoder_layers=3,
      dropout_rate=0.3, attention_dropout_rate=0.0, norm_position='pre', activation='gelu',
      positional='learned', scale_embeddings=False, logits_via_embedding=True))
  c.optimizer = 'adamw'
  c.learning_rate = 2e-3
  c.schedule = 'cosine'
  c.warmup_steps = 200
  c.min_learning_rate = 1e-4
  c.b1, c.b2, c.eps = 0.9, 0.98, 1e-8
  c.weight_decay = 0.1
  c.grad_clip_norm = 1.0
  c.sample.prompt = 'the company said'
  c.sample.num_tokens = 30
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='test/perplexity',          # eval.py --config.eval_split=test
    higher_is_better=False,
    reference=114.0,
    source='Zaremba et al. 2014, small LSTM; their medium LSTM: 82',
    target=100.0,                      # issue 15: test perplexity below 100 ...
    time_budget_min=60,                # ... within 60 minutes on 2 CPU cores
    runnable_here=True,
    why=None,
)
