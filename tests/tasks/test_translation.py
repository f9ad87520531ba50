"""The translation task on the shared engine: Multi30k and the WMT configs, tiny and short."""

import dataclasses
import gzip
import os

import jax
import numpy as np
import pytest

from configs import translate_multi30k, wmt14_ende_base, wmt14_ende_big
from tests import helpers
from transformer import engine, tasks
from transformer.experiment_config import ConfigError
from transformer.data.tokenizers import EOS_ID

# Tiny overrides, as config fields (in-process) and as flags (eval.py).
# Multi30k's configs evaluate on val during training; these tests decode its test split.
M30K_TEST = {'eval_split': 'test_2016_flickr'}
TINY = {
    'model.d_model': 32, 'model.num_heads': 2, 'model.d_ff': 64, 'model.num_encoder_layers': 1,
    'model.num_decoder_layers': 1, 'model.dtype': 'float32', 'model.attention_impl': 'einsum',
    'vocab_size': 300, 'spm_max_sentences': 4000, 'seq_len': 24, 'tokens_per_batch': 384,
    'bucket_boundaries': (12, 24),   # two shapes: fewer compilations
    'batch_size': 8, 'eval_batch_size': 32, 'eval_max_batches': 2, 'log_every_steps': 1,
    'eval_every_steps': 1000, 'checkpoint_every_steps': 1000, 'warmup_steps': 2,
    'decoding.method': 'greedy', 'decoding.max_eval_sentences': 4, 'decoding.batch_size': 4,
    'decoding.extra_len': 8,
}


def tiny(module=translate_multi30k, **overrides):
  return helpers.tiny_config(module, **{**TINY, **overrides})


def flags(**overrides):
  return [f'--config.{k}={v}'.replace(' ', '') for k, v in {**TINY, **overrides}.items()]


@pytest.mark.slow
def test_multi30k_trains_then_eval_py_writes_bleu_and_translations(tmp_path, data_dir):
  workdir = str(tmp_path)
  out = engine.train_and_evaluate(tiny(num_train_steps=3), workdir)
  assert out['step'] == 3 and np.isfinite(out['loss'])
  train = helpers.records(workdir, 'train')
  assert [r['step'] for r in train] == [1, 2, 3]
  assert all(0.2 < r['real_token_fraction'] <= 1.0 and np.isfinite(r['loss']) for r in train)
  assert helpers.records(workdir, 'val')[0]['step'] == 3          # validation during training
  assert not helpers.records(workdir, 'test_2016_flickr')            # test: only by eval.py
  spm = tmp_path / 'spm_multi30k.model'
  mtime = spm.stat().st_mtime_ns

  res = helpers.run_python(
      ['eval.py', '--config=configs/translate_multi30k.py', f'--workdir={workdir}',
       *flags(**M30K_TEST, **{'decoding.method': 'beam', 'decoding.beam_size': 2})])
  assert res.returncode == 0, res.stdout + res.stderr
  (ev,) = [r for r in helpers.records(workdir, 'test_2016_flickr')
           if r.get('checkpoint') == 'latest']
  assert ev['step'] == 3 and np.isfinite(ev['loss'])
  assert 0.0 <= ev['bleu'] <= 100.0 and 0.0 <= ev['tokenized_bleu'] <= 100.0
  assert 'tok:13a' in ev['bleu_signature'] and 'pretok:intl' in ev['tokenized_bleu_signature']
  assert ev['bleu_sentences'] == 4 and ev['decoding'].startswith('beam search (beam 2')
  path = tmp_path / 'translations_test_2016_flickr_step3.txt'
  assert ev['translations_file'] == str(path)
  assert len(path.read_text(encoding='utf-8').split('\n')) == 4 + 1   # 4 lines, final newline
  assert spm.stat().st_mtime_ns == mtime                              # the vocabulary is reused


@pytest.fixture
def wmt_standin(tmp_path, data_dir):
  """A tiny local stand-in for WMT14 En-De in its local layout, from real Multi30k lines."""
  def lines(name, n):
    with gzip.open(os.path.join(data_dir, 'multi30k', name), 'rt', encoding='utf-8') as f:
      return [next(f).strip() for _ in range(n)]
  d = tmp_path / 'data' / 'wmt14'
  d.mkdir(parents=True)
  for lang in ('en', 'de'):
    (d / f'train.{lang}').write_text('\n'.join(lines(f'train.{lang}.gz', 400)) + '\n')
    for split in ('newstest2013', 'newstest2014'):
      (d / f'{split}.{lang}').write_text('\n'.join(lines(f'val.{lang}.gz', 40)) + '\n')
  return str(tmp_path / 'data')


@pytest.mark.slow
@pytest.mark.parametrize('module', [wmt14_ende_base, wmt14_ende_big])
def test_wmt_configs_run_on_a_local_standin(module, tmp_path, wmt_standin):
  c = tiny(module, num_train_steps=2, data_dir=wmt_standin, bucket_boundaries=(24,))
  workdir = str(tmp_path / 'run')
  out = engine.train_and_evaluate(c, workdir)
  assert out['step'] == 2 and np.isfinite(out['loss'])
  assert [r['step'] for r in helpers.records(workdir, 'newstest2013')] == [2]   # validation
  assert (tmp_path / 'run' / 'spm_wmt14_translate_de_en.model').exists()
  task = tasks.make_task(c, workdir)
  assert (task.data.source_lang, task.data.target_lang) == ('en', 'de')
  src, _ = task.data.texts('newstest2014')
  assert len(src) == 40 and src[0].startswith('A ')     # English source


@pytest.fixture(scope='module')
def task(tmp_path_factory, require_data):
  require_data('multi30k')
  return tasks.make_task(tiny(**M30K_TEST), str(tmp_path_factory.mktemp('task')))


def test_padding_does_not_change_the_loss(task):
  model = task.model(train=False)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), *task.init_inputs())['params']
  batch = task.data.train_batch(0, 8, 0)
  padded = {k: np.pad(v, ((0, 8), (0, 8))) for k, v in batch.items()}   # empty rows, columns
  loss_sums = jax.jit(lambda p, b: task.loss_sums(p, b, None, train=False))
  a, b = jax.device_get((loss_sums(params, batch), loss_sums(params, padded)))
  for k in ('objective', 'nll', 'correct', 'weight', 'source_tokens'):
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
  assert b['padded_tokens'] > a['padded_tokens']


class _Writer:
  def write_text(self, *args):
    pass


def test_evaluate_extra_writes_translations_in_the_split_order(task, monkeypatch):
  monkeypatch.setattr(task, 'settings', dataclasses.replace(task.settings, decoding=dataclasses.replace(
      task.settings.decoding, max_eval_sentences=10, batch_size=3)))

  def echo(params, src):   # a "model" that copies its source: output = source pieces + EOS
    return np.asarray(src)
  monkeypatch.setattr(task, 'translate_tokens', echo)
  out = task.evaluate_extra(None, _Writer(), step=7)
  sources, _ = task.data.texts('test_2016_flickr')
  pairs = task.data.tokenized('test_2016_flickr')
  want = [task.data.tokenizer.decode(pairs.source(i)[:task.config.seq_len - 1])
          for i in range(10)]
  with open(os.path.join(task.workdir, 'translations_test_2016_flickr_step7.txt'),
            encoding='utf-8') as f:
    got = f.read()
  assert got == ''.join(w + '\n' for w in want)
  assert want[0].split()[:2] == sources[0].split()[:2]
  assert out['bleu_sentences'] == 10 and len(out['examples']) == 3
  assert task.detokenize([5, 6, EOS_ID, 7, 0]) == task.data.tokenizer.decode([5, 6])
  # The decoder has room for the longest source + decoding.extra_len.
  assert task.model_cfg.max_len == TINY['seq_len'] + TINY['decoding.extra_len']


def test_invalid_translation_settings_name_the_field(tmp_path):
  with pytest.raises(ConfigError, match=r"decoding.method='sample' is not one of"):
    tasks.make_task(tiny(**{'decoding.method': 'sample'}), str(tmp_path))
  with pytest.raises(ConfigError, match='tokens_per_batch=0 must be a positive'):
    tasks.make_task(tiny(tokens_per_batch=0), str(tmp_path))
