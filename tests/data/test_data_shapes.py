"""transformer/data/shapes.py: the batch shapes a task plans from without its data equal
the real pipelines' (keys, dtypes and shapes), on the local datasets."""

from __future__ import annotations

import numpy as np
import pytest

from configs import lm1b, lm_shakespeare_char, mlm_ptb, translate_multi30k, vit_mnist
from tests import helpers
from transformer import tasks
from transformer.data import shapes
from transformer.errors import ConfigError, DataError

LM_MODEL = dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1, dtype='float32')


def layout(batch):
  return {k: (np.asarray(v).dtype, np.shape(v)) for k, v in batch.items()}


def both(config, tmp_path):
  """(real task, its first training batch, the task on shapes, its batch)."""
  real = tasks.make_task(config, str(tmp_path))
  shaped = tasks.make_task(config, None, data=tasks.task_class(config).shape_data(config))
  return (real, real.data.train_batch(0, config.batch_size, config.seed), shaped,
          shaped.data.train_batch(0, config.batch_size, config.seed))


def test_lm_stream_shapes_equal_the_pipeline(data_dir, tmp_path):
  config = helpers.tiny_config(lm_shakespeare_char, model=LM_MODEL, seq_len=16, batch_size=4)
  config.vocab_size = 66     # the data defines it; planning without the data needs it given
  real, batch, shaped, planned = both(config, tmp_path)
  assert layout(planned) == layout(batch)
  assert shaped.model_cfg == real.model_cfg
  assert np.all(planned['weights'] == 1)     # every position counts as a token
  config.vocab_size = 0
  with pytest.raises(ConfigError, match='vocab_size'):
    tasks.task_class(config).shape_data(config)


def test_packed_lm_shapes_equal_lm1b(data_dir, tmp_path):
  """lm1b's packed sentences, on a local stand-in of PTB sentences (lm1b is not here)."""
  root = tmp_path / 'data'
  (root / 'lm1b').mkdir(parents=True)
  lines = open(f'{data_dir}/ptb/ptb.train.txt').read().splitlines()
  (root / 'lm1b' / 'train.txt').write_text('\n'.join(lines[:1500]) + '\n')
  (root / 'lm1b' / 'test.txt').write_text('\n'.join(lines[1500:1600]) + '\n')
  config = helpers.tiny_config(lm1b, model=LM_MODEL, seq_len=32, batch_size=4,
                               vocab_size=300, spm_max_sentences=1500, data_dir=str(root))
  real, batch, shaped, planned = both(config, tmp_path)
  assert {'segments', 'positions'} <= set(batch)
  assert layout(planned) == layout(batch)
  assert shaped.model_cfg == real.model_cfg


@pytest.mark.parametrize('packing', [False, True], ids=['buckets', 'packed'])
def test_translation_shapes_follow_the_pipeline(data_dir, tmp_path, packing):
  config = helpers.tiny_config(
      translate_multi30k, model=dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1,
                                     num_decoder_layers=1, dtype='float32'),
      vocab_size=300, spm_max_sentences=2000, seq_len=24, tokens_per_batch=384,
      bucket_boundaries=(12, 24), batch_size=4, packing=packing)
  real, _, shaped, planned = both(config, tmp_path)
  assert shaped.model_cfg == real.model_cfg
  if not packing:   # the longest bucket: a batch the pipeline makes, exactly
    longest = next(i for i, (length, _) in enumerate(
        real.data.epoch_batches(config.seed, 0, config.batch_size)) if length == 24)
    assert layout(planned) == layout(real.data.train_batch(longest, 4, config.seed))
    return
  batch = real.data.train_batch(0, config.batch_size, config.seed)
  assert {k: v[0] for k, v in layout(planned).items()} == {k: v[0]
                                                            for k, v in layout(batch).items()}
  rows, width = batch['inputs'].shape
  # Full rows assumed: as many rows as tokens_per_batch fills, at most the real count (whose
  # rows are partly padding), both multiples of batch_size.
  assert planned['inputs'].shape == (round(384 / 24 / 4) * 4, 24) and width == 24
  assert planned['inputs'].shape[0] <= rows and rows % 4 == 0


@pytest.mark.parametrize('mixup', [0.0, 0.5])
def test_image_shapes_equal_the_pipeline(data_dir, tmp_path, mixup):
  config = helpers.tiny_config(vit_mnist, batch_size=8, **{'augment.mixup': mixup})
  real, batch, shaped, planned = both(config, tmp_path)
  assert layout(planned) == layout(batch)
  assert shaped.model_cfg == real.model_cfg
  assert shaped.data.class_names == tuple(str(i) for i in range(10))


def test_tasks_without_shapes_say_so():
  with pytest.raises(ConfigError, match="task='mlm' is planned from its data only"):
    tasks.task_class(mlm_ptb.get_config()).shape_data(mlm_ptb.get_config())
  config = helpers.tiny_config(vit_mnist, dataset='files')
  with pytest.raises(ConfigError, match='classes come from the data'):
    tasks.task_class(config).shape_data(config)


def test_shape_data_shards_rows_and_has_no_evaluation():
  data = shapes.lm_shapes('lm1b', seq_len=8, vocab_size=100, packing=False)
  assert data.train_batch(3, 8, 0, shard=(1, 4))['inputs'].shape == (2, 8)
  with pytest.raises(DataError, match='batch shapes only'):
    next(iter(data.eval_batches('test', 8)))
  # A token budget under one row per device is refused as the pipeline refuses it.
  for packing in (False, True):
    with pytest.raises(DataError, match='tokens_per_batch=100 is too small'):
      shapes.translation_shapes('x', max_len=64, vocab_size=10, tokens_per_batch=100,
                                packing=packing).train_batch(0, 4, 0)
