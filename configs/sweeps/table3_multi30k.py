"""The paper's Table 3 ablations (Vaswani et al. 2017) at Multi30k scale, on a CPU.

Each trial is configs/translate_multi30k.py (3+3 post-LN layers, d_model 256,
4 heads of d_k = d_v = 64, d_ff 512, dropout 0.1, label smoothing 0.1,
sinusoidal positions) with one row of Table 3 changed:

  base  no overrides
  (A)   number of heads 1, 2, 8, 16 at constant d_model: head_dim is left unset,
        so d_k = d_v = d_model / heads = 256, 128, 32, 16 (the paper: 1, 4, 16,
        32 heads around its 8)
  (B)   smaller attention key size: model.head_dim 16 and 32 with 4 heads (the
        paper: d_k 16 and 32 around its 64). Unlike the paper, head_dim here
        sets the query, key AND value size (transformer/attention.py projects
        q, k and v to [heads, head_dim]; TransformerConfig.qkv_dim), so d_v
        shrinks with d_k and the attention's inner width becomes
        heads * head_dim = 64 or 128 instead of 256: the row measures a
        narrower attention, not the key size alone.
  (C)   model size: 2 and 4 layers (encoder and decoder each; the paper: 2, 4,
        8 around 6); d_model 128 and 512 with d_ff scaled to 2 x d_model and 4
        heads (so d_k = 32 and 128; the paper: 256 and 1024 around 512);
        d_ff 256 and 1024 (the paper: 1024 and 4096 around 2048)
  (D)   dropout 0.0 and 0.2; label smoothing 0.0 and 0.2
  (E)   learned positional embeddings instead of sinusoids

18 trials. Run (TRANSFORMER_DATA_DIR=../shared/data):

  python -m tools.sweep run --sweep=configs/sweeps/table3_multi30k.py \\
      --parent=runs/table3 --config.num_train_steps=400 --config.warmup_steps=100 \\
      --config.eval_split=val
  python -m tools.report sweep --parent=runs/table3 --name=table3 \\
      --metric=val/perplexity

--config.eval_split=val measures every trial on Multi30k's validation split
(the paper's Table 3 is on its development set, newstest2013) and keeps
test_2016_flickr for the final model. The perplexity is per SentencePiece
piece of the shared 8,000-piece vocabulary (the same in every trial, so the
numbers compare) and excludes label smoothing (`nll`). BLEU per trial, as the
paper's table also has: eval.py takes the same flags as train.py, so

  python -m tools.sweep commands --sweep=configs/sweeps/table3_multi30k.py \\
      --parent=runs/table3 --config.num_train_steps=400 --config.warmup_steps=100 \\
      --config.eval_split=val | sed 's/train\\.py/eval.py/' | sh

decodes each trial's val split with beam search (a few minutes per trial on
the CPU) and appends val/tokenized_bleu to its metrics.jsonl; then add
--columns=val/tokenized_bleu,val/accuracy to the `report sweep` command.

Time on the project's 2-core CPU (an estimate from the base config's
numbers, not a measurement of this sweep): the full recipe trains 1,400 steps
in about 60-70 minutes (2.3-3 s per step with the ~10 bucket shapes compiling
once, about 10 s each), so 18 full trials take about 20 hours. With
--config.num_train_steps=400 --config.warmup_steps=100 (the cosine schedule
ends at num_train_steps; 200 warmup steps would be half the run) a trial of
the base size takes about 20 minutes, and the sweep about 6 hours: the
d_model=512 trial costs roughly 3x the base, d_ff=1024 and 4 layers about
1.3x, d_model=128 and 2 layers less. 400 steps is about 3 epochs, well short
of convergence: the ranking of the rows is the result, not the BLEU level.

Result: so far run only at a short budget (2026-12-02, all 18 trials, 56 min
34 s on the 2-core AMD EPYC CPU, results/sweep_table3_multi30k_short.md,
included in docs/RESULTS.md):

  python -m tools.sweep run --sweep=configs/sweeps/table3_multi30k.py \\
      --parent=runs/table3_short --config.num_train_steps=300 --config.warmup_steps=50 \\
      --config.tokens_per_batch=1024 '--config.bucket_boundaries=(16,24,32,64)' \\
      --config.eval_split=val --config.eval_every_steps=300 --config.checkpoint_every_steps=300 \\
      --config.log_every_steps=50
  python -m tools.report sweep --parent=runs/table3_short --name=table3_multi30k_short \\
      --metric=val/perplexity --columns=val/perplexity,val/accuracy

300 steps of 1,024 tokens (padding included) is under one epoch, and one
seed per row: the base trial (val perplexity 80.9) sits mid-table, and both of its d_ff neighbours
(256: 74.3, 1024: 69.9) beat it, so differences under ~15 perplexity are
within run-to-run noise at this budget. What stands out: 1 head (111.1) is
clearly worst among the head counts, as in the paper; 4+4 layers (145.8) and
d_model 512 (87.9) train slower in 300 steps, while 2+2 layers (52.9) train
fastest, which says more about early optimization speed than about final
quality.
"""

from transformer import sweep_space as sweep

BASE = 'configs/translate_multi30k.py'


def get_sweep():
  return sweep.chain(
      [{}],                                                               # base
      sweep.axis('model.num_heads', [1, 2, 8, 16]),                       # (A)
      sweep.axis('model.head_dim', [16, 32]),                             # (B)
      sweep.zipped(sweep.axis('model.num_encoder_layers', [2, 4]),        # (C) layers
                   sweep.axis('model.num_decoder_layers', [2, 4])),
      sweep.zipped(sweep.axis('model.d_model', [128, 512]),               # (C) d_model
                   sweep.axis('model.d_ff', [256, 1024])),
      sweep.axis('model.d_ff', [256, 1024]),                              # (C) d_ff
      sweep.axis('model.dropout_rate', [0.0, 0.2]),                       # (D)
      sweep.axis('label_smoothing', [0.0, 0.2]),                          # (D)
      sweep.axis('model.positional', ['learned']),                        # (E)
  )
