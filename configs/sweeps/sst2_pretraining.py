"""SST-2 transfer, second round: which pretraining text, and which sentence summary.

The first round (configs/sweeps/sst2_bert.py) left the pretrained BERT no better than the
same model from scratch. Two changes, chosen on the 872 sentences held out of SST-2's train
(never its dev split), fine-tuning with configs/sst2_bert.py at the learning rate the first
round chose (1e-3):
- the pretraining text: PTB + SST-2's train sentences (configs/mlm_wordpiece.py) against
  SST-2's train sentences alone (in-domain only), both 3,000 steps with the masked-LM head
  computed at 20 positions per row (`mlm.max_predictions`: the same loss, a faster step);
- the sentence summary the classifier reads: [CLS] (never trained by masked-LM
  pretraining) or the mean over the real tokens (`model.pool='gap'`).

  python -m tools.tokenizer --kind=wordpiece --vocab_size=8000 \\
      --files=../shared/data/ptb/ptb.train.txt,../shared/data/sst2/train.tsv \\
      --out=runs/tokenizers/wordpiece_ptb_sst2
  python train.py --config=configs/mlm_wordpiece.py --workdir=runs/exp/mlm_mix \\
      --config.num_train_steps=3000 --config.mlm.max_predictions=20
  python train.py --config=configs/mlm_wordpiece.py --workdir=runs/exp/mlm_sst \\
      --config.num_train_steps=3000 --config.mlm.max_predictions=20 \\
      --config.files.train={data_dir}/sst2/train.tsv
  # on 872 whole sentences held out of train (sst2_bert's validation_holdout_whole):
  python -m tools.sweep run --sweep=configs/sweeps/sst2_pretraining.py \\
      --parent=runs/sst2_pretraining_whole --parallel=2 \\
      --config.tokenizer=hf:runs/tokenizers/wordpiece_ptb_sst2 --config.learning_rate=1e-3
  # on 872 rows drawn at random, as in the first round:
  python -m tools.sweep run --sweep=configs/sweeps/sst2_pretraining.py \\
      --parent=runs/sst2_pretraining --parallel=2 \\
      --config.tokenizer=hf:runs/tokenizers/wordpiece_ptb_sst2 --config.learning_rate=1e-3 \\
      --config.validation_holdout_whole=False

Results (results/sweep_sst2_pretraining.md and results/sweep_sst2_pretraining_rows.md,
validation accuracy at step 1,500, seed 0):

  start                        pool   whole sentences   random rows
  PTB + SST-2 (mlm_mix)        cls    0.8096            0.8647
  PTB + SST-2                  gap    0.7959            0.8624
  SST-2 alone (mlm_sst)        cls    0.7913            0.8658
  SST-2 alone                  gap    0.7890            0.8761
  from scratch                 cls    0.7718            0.8544
  from scratch                 gap    0.7741            0.7890

Rows drawn at random share phrases with the training rows (SST's rows are every phrase
of every sentence): that split ranked SST-2-alone + mean pooling first, which memorizes the
training sentences, and put from scratch within 1 point of the best. Whole sentences,
none of their phrases trained on, are like GLUE's dev set (unseen reviews); on them PTB +
SST-2 with [CLS] leads from scratch by 3.8 points, and it became the recipe
(configs/mlm_wordpiece_long.py, configs/sst2_bert.py). Both pretraining runs here read
all of SST-2's train, the held-out sentences' text included (no labels);
`files.skip_holdout` came after this round and leaves them out of the recipe's pretraining.

The trials start from the pretraining workdirs directly (the tokenizer they were trained
with); the recipe then goes through Hugging Face's layout as configs/sst2_bert.py does.
"""

from transformer import sweep_space as sweep

BASE = 'configs/sst2_bert.py'


def get_sweep():
  return sweep.product(
      sweep.axis('init_from', ['runs/exp/mlm_mix', 'runs/exp/mlm_sst', '']),
      sweep.axis('model.pool', ['cls', 'gap']))
