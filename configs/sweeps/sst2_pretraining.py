"""SST-2 transfer, second round: which pretraining text, and which sentence summary.

The first round (configs/sweeps/sst2_bert.py) left the pretrained BERT no better than the
same model from scratch. Two changes, chosen on the 872 sentences held out of SST-2's train
(never its dev split), fine-tuning with configs/sst2_bert.py at the learning rate the first
round chose (1e-3):
- the pretraining text: PTB + SST-2's train sentences (configs/mlm_wordpiece.py) against
  SST-2's train sentences alone (in-domain only), both 3,000 steps with the masked-LM head
  computed at 20 positions per row (`mlm.max_predictions`, 1.6x faster);
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
  python -m tools.sweep run --sweep=configs/sweeps/sst2_pretraining.py \\
      --parent=runs/sst2_pretraining --parallel=2 \\
      --config.tokenizer=hf:runs/tokenizers/wordpiece_ptb_sst2 --config.learning_rate=1e-3
  python -m tools.sweep summary --parent=runs/sst2_pretraining \\
      --metric=validation/accuracy --descending

The trials start from the pretraining workdirs directly (the tokenizer they were trained
with); the recipe then goes through Hugging Face's layout as configs/sst2_bert.py does.
"""

from transformer import sweep_space as sweep

BASE = 'configs/sst2_bert.py'


def get_sweep():
  return sweep.product(
      sweep.axis('init_from', ['runs/exp/mlm_mix', 'runs/exp/mlm_sst', '']),
      sweep.axis('model.pool', ['cls', 'gap']))
