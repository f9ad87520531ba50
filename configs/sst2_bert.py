"""Fine-tune a BERT on SST-2 with its own tokenizer: the second stage of the transfer recipe.

  # 1. pretrain (configs/mlm_wordpiece_long.py has the tokenizer command), 2. export it to
  # Hugging Face's layout and import it back, as a user with a published BERT would:
  python train.py --config=configs/mlm_wordpiece_long.py --workdir=runs/mlm_wordpiece_long
  python -m tools.convert export --workdir=runs/mlm_wordpiece_long --out=runs/bert_long_hf
  python -m tools.convert import --hf=runs/bert_long_hf --workdir=runs/bert_long
  # 3. fine-tune, choosing the recipe on 872 whole sentences held out of SST-2's train:
  python train.py --config=configs/sst2_bert.py --workdir=runs/sst2_bert
  # the same model from scratch, same steps:
  python train.py --config=configs/sst2_bert.py --config.init_from= --workdir=runs/sst2_scratch
  # 4. SST-2's dev split, once, at the end:
  python eval.py --workdir=runs/sst2_bert --config.eval_split=dev

Data (dataset='files', transformer/data/files.py): GLUE's SST-2 TSV files by
path. SST-2's training rows are every phrase of every sentence, so rows drawn
at random share phrases with the rows left in train (the first round's
validation: 0.85-0.87 where dev gave 0.78-0.80). `validation_holdout=872` with
`validation_holdout_whole` holds out 872 whole sentences (rows that are no
other row's span; a fixed draw) and drops every training row inside one
(10,059 rows; 57,290 remain): unseen sentences, like GLUE's dev set (872
sentences), which is 'dev'. The pretraining leaves the same sentences out
(files.skip_holdout). Text is read with the pretrained model's tokenizer.json
(config.tokenizer: [CLS] ... [SEP], WordPiece, lowercased by the tokenizer),
at most 64 tokens.
Model: the converted BERT's encoder and embeddings (init_from); the pooler and
the 2-class classifier over [CLS] start fresh (transformer/pretrained.py).
AdamW at 1e-3, warmup 10% then linear decay, batch 32, dropout 0.1; 1,500 steps.

Result (2026-12-05, 2-core AMD EPYC CPU; results/sst2_bert.json and
results/sweep_sst2_transfer.md from configs/sweeps/sst2_transfer.py): the
learning rate chosen on the held-out sentences for each start (1e-3 of 1e-3,
3e-4, for both), then 3 seeds each, SST-2 dev evaluated once per trial:
  pretrained (mlm_wordpiece_long, through Hugging Face's layout)  0.7993 +- 0.0061
  the same model from scratch, same steps                         0.7894 +- 0.0043
(mean +- sample standard deviation over seeds 0, 1, 2; pretrained 0.8039, 0.8016,
0.7924; scratch 0.7844, 0.7924, 0.7913). Pretraining adds 0.99 points, more
than either spread; the validation split agrees (0.7974 against 0.7817). This
config's own command, alone on the machine, gave 0.8096 (seed 0 again: CPU runs
are not bitwise repeatable under different load), in 25.0 minutes in all
(21.2 pretraining, 0.2 export and import, 3.3 fine-tuning). Against the target
(at least 0.80 in 30 minutes, beating scratch by more than the spread): the
time and the margin are met; 0.80 is reached by two seeds of three and this
run, not by the 3-seed mean (0.07 points under).
Earlier rounds: results/sweep_sst2_bert.md (3,000 steps of pretraining, random-row
validation: pretrained 0.7901 +- 0.0083 against scratch 0.7997 +- 0.0035 on dev)
and results/sweep_sst2_pretraining.md (the pretraining text and the pooling,
chosen on whole sentences). GLUE's baselines on the test set (not like for
like): CBOW 80.0, BiLSTM 85.9, BERT-base 93.5.
"""

from configs import sst2_from_mlm_ptb


def get_config():
  c = sst2_from_mlm_ptb.get_config()   # its model and optimizer; the BERT's own tokenizer
  c.dataset = 'files'
  c.files.train = '{data_dir}/sst2/train.tsv'
  c.files.validation = '{data_dir}/sst2/dev.tsv'
  c.files.text_column, c.files.label_column = 'sentence', 'label'
  c.validation_holdout = 872
  c.validation_holdout_whole = True   # whole sentences, none of their phrases trained on
  c.vocab_from = ''
  c.tokenizer = 'hf:runs/bert_long/hf'
  c.init_from = 'runs/bert_long'
  c.num_train_steps = 1500
  c.learning_rate = 1e-3              # chosen on the held-out split (configs/sweeps/sst2_bert.py)
  c.warmup_steps = 150
  c.eval_batch_size = 128
  return c


# Reference and target for docs/RESULTS.md (python -m tools.report build).
REFERENCE = dict(
    metric='dev/accuracy',              # GLUE's SST-2 dev set, evaluated once at the end
    higher_is_better=True,
    reference=0.80,
    source=("GLUE's CBOW baseline on SST-2 (Wang et al. 2019; BiLSTM 85.9, BERT-base 93.5), "
            'test set: not like for like with dev'),
    target=0.80,                        # within 30 minutes of pretraining plus fine-tuning
    time_budget_min=30,
    runnable_here=True,
    why=None,
)
