"""Masked language modeling: BERT's masking rule, the mlm task training on PTB's text, and
fine-tuning the result as a sentence classifier (text_classification)."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

import pytest

from configs import mlm_ptb, sst2_from_mlm_ptb
from tests import helpers
from transformer import engine, inference
from transformer import workdir as workdir_lib
from transformer.data import DataError
from transformer.data import text_classification as text_data
from transformer.tasks.mlm import mask_tokens, selected_positions


def test_masking_follows_bert_rates_and_leaves_padding_alone():
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, 50, size=(400, 500)), jnp.int32)
  real = jnp.asarray(np.arange(500)[None, :] < 450).repeat(400, 0)   # the last 50 are padding
  inputs, selected = mask_tokens(jax.random.PRNGKey(1), tokens, real, mask_id=50,
                                 vocab_size=50)
  inputs, selected, tokens = map(np.asarray, (inputs, selected, tokens))
  n_real = 400 * 450
  assert not selected[:, 450:].any()
  assert abs(selected.sum() / n_real - 0.15) < 0.003
  np.testing.assert_array_equal(inputs[~selected], tokens[~selected])   # the rest unchanged
  s_in, s_tok = inputs[selected], tokens[selected]
  masked = (s_in == 50).mean()
  replaced = ((s_in != 50) & (s_in != s_tok)).mean()
  kept = (s_in == s_tok).mean()
  assert abs(masked - 0.8) < 0.01
  # a random replacement equals the original with probability 1/49 (ids 1..49)
  assert abs(replaced - 0.1 * 48 / 49) < 0.01 and abs(kept - (0.1 + 0.1 / 49)) < 0.01
  assert s_in[s_in != 50].min() >= 1
  again, _ = mask_tokens(jax.random.PRNGKey(1), jnp.asarray(tokens), real, 50, 50)
  np.testing.assert_array_equal(np.asarray(again), inputs)           # a pure function of the key


def test_capped_masking_keeps_the_first_k_and_their_positions():
  """config.mlm.max_predictions: at most k selected per row (the first k of the uncapped
  draw, which is otherwise unchanged), and the positions the head computes are exactly the
  selected ones, padded with weight 0."""
  rng = np.random.default_rng(1)
  tokens = jnp.asarray(rng.integers(1, 50, size=(300, 40)), jnp.int32)
  real = jnp.ones_like(tokens, bool)
  key = jax.random.PRNGKey(3)
  full_in, full = map(np.asarray, mask_tokens(key, tokens, real, 50, 50, 0.3))
  k = 12
  inputs, selected = map(np.asarray, mask_tokens(key, tokens, real, 50, 50, 0.3, k))
  counts = full.sum(1)
  assert counts.max() > k and counts.min() < k              # both cases occur
  np.testing.assert_array_equal(selected.sum(1), np.minimum(counts, k))
  for row in range(300):
    first = np.flatnonzero(full[row])[:k]
    np.testing.assert_array_equal(np.flatnonzero(selected[row]), first)
  np.testing.assert_array_equal(inputs[selected], full_in[selected])
  np.testing.assert_array_equal(inputs[~selected], np.asarray(tokens)[~selected])
  positions, weights = map(np.asarray, selected_positions(jnp.asarray(selected), k))
  assert positions.shape == weights.shape == (300, k)
  for row in range(300):
    n = selected[row].sum()
    np.testing.assert_array_equal(positions[row, :n], np.flatnonzero(selected[row]))
    assert (weights[row, :n] == 1).all() and (weights[row, n:] == 0).all()
    assert not selected[row, positions[row, n:]].any()


TINY_BERT = dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, max_len=16)
TINY_RUN = dict(seq_len=16, batch_size=8, eval_batch_size=32, eval_max_batches=2,
                num_train_steps=3, warmup_steps=1, log_every_steps=1, eval_every_steps=3,
                checkpoint_every_steps=3)


def _sentences(n, seed):
  """n (sentence, label) pairs of PTB words: label 1 when profits rose (a stand-in for
  SST-2's files: the test checks the pipeline, not a result)."""
  rng = np.random.default_rng(seed)
  subjects = ['the company', 'the bank', 'its parent', 'the firm']
  out = []
  for _ in range(n):
    label = int(rng.integers(2))
    out.append((f"{rng.choice(subjects)} said profits {'rose' if label else 'fell'} sharply",
                label))
  return out


def _write_tsv(path, pairs):
  path.write_text('sentence\tlabel\n' + ''.join(f'{s}\t{l}\n' for s, l in pairs))


@pytest.mark.slow
def test_mlm_task_trains_on_ptb_and_a_classifier_fine_tunes_from_it(tmp_path, require_data):
  shared = require_data('ptb')
  c = helpers.tiny_config(mlm_ptb, TINY_BERT, **TINY_RUN)
  engine.train_and_evaluate(c, str(tmp_path / 'mlm'))
  train = helpers.records(str(tmp_path / 'mlm'), 'train')
  val = helpers.records(str(tmp_path / 'mlm'), 'validation')
  assert [r['step'] for r in train] == [1, 2, 3]
  for r in train:   # about 15% of 8 x 16 tokens per step
    assert 8 <= r['masked_tokens'] <= 32 and np.isfinite(r['loss'])
  (v,) = val
  assert 0.08 * 2 * 32 * 16 <= v['masked_tokens'] <= 0.22 * 2 * 32 * 16
  assert 0.0 <= v['accuracy'] <= 1.0 and v['perplexity'] > 1.0
  # Fine-tuning: a sentence classifier starts from the MLM run's encoder and embeddings.
  data = tmp_path / 'data'
  (data / 'sst2').mkdir(parents=True)
  os.symlink(os.path.join(shared, 'ptb'), data / 'ptb')
  _write_tsv(data / 'sst2' / 'train.tsv', _sentences(40, 0))
  _write_tsv(data / 'sst2' / 'dev.tsv', _sentences(12, 1))
  f = helpers.tiny_config(sst2_from_mlm_ptb, TINY_BERT, **TINY_RUN, data_dir=str(data),
                          init_from=str(tmp_path / 'mlm'))
  exp = engine.Experiment(f, None)
  start = exp.restore_or_init(None)
  mlm_params = workdir_lib.restore_params(str(tmp_path / 'mlm'))
  for name in ('embed', 'position', 'embed_norm', 'encoder'):
    for a, b in zip(jax.tree.leaves(start.params[name]), jax.tree.leaves(mlm_params[name])):
      np.testing.assert_array_equal(a, b)
  assert 'classifier' in start.params and 'classifier' not in mlm_params
  assert exp.task.data.num_classes == 2 and exp.task.data.num_examples('validation') == 12
  batch = exp.task.data.train_batch(0, 8, 0)
  assert batch['inputs'].shape == (8, 16) and (batch['inputs'][:, 6:] == 0).all()  # 6 words
  engine.train_and_evaluate(f, str(tmp_path / 'sst2'))
  (v,) = helpers.records(str(tmp_path / 'sst2'), 'validation')
  assert v['examples'] == 12 and 0.0 <= v['accuracy'] <= 1.0 and np.isfinite(v['loss'])

  # generate.py labels sentences from a copy of the run after the data is gone: the workdir
  # keeps its word vocabulary and class names.
  (tmp_path / 'lines.txt').write_text('The movie was great\na dull , boring film\n')
  args = [f'--input={tmp_path / "lines.txt"}']
  here = helpers.run_python(['generate.py', f'--workdir={tmp_path / "sst2"}', *args])
  assert here.returncode == 0, here.stderr[-2000:]
  assert [line.split('\t')[2] for line in here.stdout.splitlines()] == [
      'The movie was great', 'a dull , boring film']
  shutil.copytree(tmp_path / 'sst2', tmp_path / 'copied')
  shutil.rmtree(data)
  info = json.loads((tmp_path / 'copied' / 'data_info.json').read_text())
  assert info == {'class_names': ['0', '1']}
  alone = helpers.run_python(['generate.py', f'--workdir={tmp_path / "copied"}', *args])
  assert alone.returncode == 0, alone.stderr[-2000:]
  assert alone.stdout == here.stdout


def test_text_classification_files_are_checked(tmp_path):
  (tmp_path / 'x.tsv').write_text('text\tlabel\nfine\t1\n')
  with pytest.raises(DataError, match='with a "sentence" and a "label" one'):
    text_data._read_tsv(str(tmp_path / 'x.tsv'))
  (tmp_path / 'y.tsv').write_text('sentence\tlabel\nfine\tpositive\n')
  with pytest.raises(DataError, match='y.tsv line 2: expected a sentence and an integer label'):
    text_data._read_tsv(str(tmp_path / 'y.tsv'))


@pytest.mark.slow
def test_bert_by_path_with_its_own_tokenizer_through_export_and_import(tmp_path, require_data):
  """The SST-2 transfer recipe, tiny: a WordPiece tokenizer trained on SST-2's sentences,
  masked-LM pretraining on text files by path, export to Hugging Face's layout, import back,
  fine-tuning on the SST-2 tables with the imported tokenizer, and dev evaluated."""
  from configs import mlm_wordpiece, sst2_bert
  from tools import tokenizer as tokenizer_tool
  from transformer.data import files as files_lib
  from transformer.data import holdout
  from transformer.data.tokenizers import HFTokenizer
  shared = require_data('sst2')
  sentences = files_lib.documents(os.path.join(shared, 'sst2', 'train.tsv'), 'train')[:3000]
  tok, tok_config = tokenizer_tool.train('wordpiece', sentences, vocab_size=600)
  tokenizer_tool.save(tok, tok_config, str(tmp_path / 'tok'))
  tok = HFTokenizer.from_dir(str(tmp_path / 'tok'))
  mlm = str(tmp_path / 'mlm')
  c = helpers.tiny_config(mlm_wordpiece, TINY_BERT, **TINY_RUN, tokenizer=f'hf:{tmp_path}/tok',
                          **{'files.train': '{data_dir}/sst2/train.tsv',
                             'files.validation': '{data_dir}/ptb/ptb.valid.txt'})
  exp = engine.Experiment(c, None)
  assert exp.task.mask_id == tok.mask_id == 4 and exp.task.model_cfg.vocab_size == 600
  engine.train_and_evaluate(c, mlm)
  assert os.path.isfile(os.path.join(mlm, 'hf', 'tokenizer.json'))   # the workdir keeps it
  hf_dir, converted = str(tmp_path / 'hf'), str(tmp_path / 'converted')
  for args in (['export', f'--workdir={mlm}', f'--out={hf_dir}'],
               ['import', f'--hf={hf_dir}', f'--workdir={converted}']):
    r = helpers.run_python(['-m', 'tools.convert', *args])
    assert r.returncode == 0, r.stderr
  assert {'tokenizer.json', 'tokenizer_config.json'} <= set(os.listdir(hf_dir))
  # A run from before runs kept their tokenizer: its export takes config.tokenizer's files.
  shutil.rmtree(os.path.join(mlm, 'hf'))
  r = helpers.run_python(['-m', 'tools.convert', 'export', f'--workdir={mlm}',
                          f'--out={tmp_path}/hf_old'])
  assert r.returncode == 0, r.stderr
  with open(tmp_path / 'hf_old' / 'tokenizer.json') as a, open(tmp_path / 'tok' /
                                                               'tokenizer.json') as b:
    assert a.read() == b.read()
  assert workdir_lib.read_config(converted).tokenizer == f'hf:{converted}/hf'
  run = str(tmp_path / 'sst2')
  f = helpers.tiny_config(sst2_bert, TINY_BERT, **TINY_RUN, init_from=converted,
                          tokenizer=f'hf:{converted}/hf', validation_holdout=50)
  exp = engine.Experiment(f, None)
  start, mlm_params = exp.restore_or_init(None), workdir_lib.restore_params(mlm)
  for a, b in zip(jax.tree.leaves(start.params['encoder']), jax.tree.leaves(mlm_params['encoder'])):
    np.testing.assert_array_equal(a, b)   # through Hugging Face's layout and back, exactly
  assert exp.task.data.splits == ('train', 'validation', 'dev')
  # sst2_bert holds out whole sentences and drops the training rows inside them
  rows = files_lib.read_table(os.path.join(shared, 'sst2', 'train.tsv'), 'train', 'sentence',
                              'label')[0]
  outside = holdout.hold_out_whole(rows, 50, 'validation_holdout', 'in train')[0]
  assert exp.task.data.num_examples('train') == len(outside) < 67_349 - 50
  assert exp.task.data.num_examples('validation') == 50
  first = exp.task.data.eval_batches('dev', 4).__next__()['inputs'][0]
  assert first[0] == tok.encode('')[0]   # [CLS] first: the tokenizer's own policy
  engine.train_and_evaluate(f, run)
  r = helpers.run_python(['eval.py', f'--workdir={run}', '--config.eval_split=dev',
                          '--config.eval_max_batches=-1'])
  assert r.returncode == 0, r.stderr
  assert 'eval dev step 3' in r.stdout and 'examples 872' in r.stdout
  # generate.py classifies lines of text with the run's own tokenizer, as eval reads them.
  dev = files_lib.read_table(os.path.join(shared, 'sst2', 'dev.tsv'), 'dev', 'sentence',
                             'label')[0][:3]
  (tmp_path / 'lines.txt').write_text('\n'.join(dev) + '\n')
  r = helpers.run_python(['generate.py', f'--workdir={run}', f'--input={tmp_path}/lines.txt'])
  assert r.returncode == 0, r.stderr
  exp, state = inference.load_trained(workdir_lib.read_config(run), run)
  logits = exp.task.model(False).apply({'params': state.params}, exp.task.data.encode(dev),
                                       head='classify')
  probs = np.asarray(jax.nn.softmax(logits))
  for line, sentence, p in zip(r.stdout.splitlines(), dev, probs):
    label, prob, text = line.split('\t')
    assert text == sentence and label == str(p.argmax()) and abs(float(prob) - p.max()) < 1e-4
  assert len(r.stdout.splitlines()) == 3
