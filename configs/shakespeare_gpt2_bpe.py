"""Fine-tune the BPE GPT-2 of configs/lm_gpt2_bpe.py on Tiny Shakespeare: the second stage.

  # 1. pretrain (configs/lm_gpt2_bpe.py), 2. export to Hugging Face's layout, import back:
  python -m tools.convert export --workdir=runs/lm_gpt2_bpe --out=runs/gpt2_small_hf
  python -m tools.convert import --hf=runs/gpt2_small_hf --workdir=runs/gpt2_small
  # 3. fine-tune with the same BPE, and the same model from scratch with the same steps:
  python train.py --config=configs/shakespeare_gpt2_bpe.py --workdir=runs/shakespeare_bpe
  python train.py --config=configs/shakespeare_gpt2_bpe.py --config.init_from= \
      --workdir=runs/shakespeare_bpe_scratch

Data: Tiny Shakespeare (nanoGPT's 90/10 split of input.txt, as the char recipe)
read with the pretrained model's byte-level BPE (config.tokenizer), windows of
64 tokens (about 3 characters each). The metric that compares with the char
model's 1.86 is `validation/nll_per_char`: the summed loss over the whole
validation split divided by its characters (each token's characters from the
tokenizer's offsets), in nats.
Model: configs/lm_gpt2_bpe.py's (GPT-2 shaped, 4 layers, d_model 128, biases),
from the imported checkpoint (init_from) or from scratch.
AdamW (0.9, 0.99), warmup 100 steps, cosine to 1e-5, weight decay 0.1,
clipping 1.0, dropout 0.1; 2,000 steps of 12 windows, as the char recipe.

Result (2026-12-04, 2-core AMD EPYC CPU shared with other runs; results/
shakespeare_gpt2_bpe.json and results/sweep_shakespeare_gpt2_bpe.md, from
`python -m tools.sweep run --sweep=configs/sweeps/shakespeare_gpt2_bpe.py`):
validation loss per character, whole split, one seed each, each start at the
better of learning rates 3e-4 and 1e-3 (1e-3 for both):
  pretrained (PTB + Multi30k text, exported and imported back)   1.591
  the same model from scratch, same steps                         1.670
  the char model of the same size and steps (lm_shakespeare_char) 1.8585
The pretrained start is 0.08 nats per character better than from scratch; both
BPE models beat the char model, which sees a third of the text per step.
"""

from configs import lm_gpt2_bpe


def get_config():
  c = lm_gpt2_bpe.get_config()   # its model; Shakespeare with the same BPE, from the import
  c.dataset = 'tiny_shakespeare'
  c.files.train = c.files.validation = ''
  c.tokenizer = 'hf:runs/gpt2_small/hf'
  c.init_from = 'runs/gpt2_small'
  c.batch_size = 12
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.model.dropout_rate = 0.1
  c.learning_rate = 3e-4
  c.min_learning_rate = 1e-5
  c.sample.prompt = 'ROMEO:'
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='validation/nll_per_char',   # nats per character of the validation split
    higher_is_better=False,
    reference=1.8585,
    source=('this repository: lm_shakespeare_char (the char model of the same size and steps: '
            '12 windows of 64 characters per step, where these are 64 BPE tokens), '
            'results/lm_shakespeare_char.json; the same split'),
    target=None,                        # a comparison: pretrained against from scratch
    time_budget_min=None,
    runnable_here=True,
    why=None,
)
