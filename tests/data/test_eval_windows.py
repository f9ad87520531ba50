"""Sliding-window evaluation of stream LMs (config.eval_stride): every target scored once, each
with at least seq_len - stride tokens of context after the first window."""

import math

import numpy as np
import pytest

from configs import lm_ptb
from tests import helpers
from transformer import tasks, validation
from transformer.data.lm import StreamLMData
from transformer.data.tokenizers import CharTokenizer
from transformer.experiment_config import ConfigError


def stream_data(n_tokens, seq_len, stride):
  ids = np.arange(1, n_tokens + 1)                     # unique ids: an id is its position
  tok = CharTokenizer(''.join(chr(256 + i) for i in range(max(n_tokens, seq_len) + 4)))
  train = np.arange(1, seq_len + 3)                      # long enough for a training window
  data = StreamLMData('toy', {'train': train, 'validation': ids}, tokenizer=tok, seq_len=seq_len)
  data.eval_stride = stride
  return data, np.asarray(data._streams['validation'])


@pytest.mark.parametrize('n_tokens,seq_len,stride,batch,shards', [
    (101, 8, 3, 4, 1), (101, 8, 3, 4, 2), (9, 8, 2, 2, 1), (5, 8, 4, 2, 1), (64, 16, 15, 3, 1)])
def test_every_target_once_with_the_most_context(n_tokens, seq_len, stride, batch, shards):
  data, stream = stream_data(n_tokens, seq_len, stride)
  seen = np.zeros(len(stream) - 1, int)
  for index in range(shards):
    for b in data.eval_batches('validation', batch * shards, (index, shards)):
      for inputs, targets, weights in zip(b['inputs'], b['targets'], b['weights']):
        np.testing.assert_array_equal(inputs[1:], targets[:-1])   # one stream, shifted by one
        for j in np.flatnonzero(weights):
          # Target position j of this window: find where it is in the stream by matching.
          start = _start_of(stream, inputs, targets)
          t = start + j
          seen[t] += 1
          assert targets[j] == stream[t + 1]
          assert j >= seq_len - stride or start == 0      # context: j tokens before it
  assert (seen == 1).all(), seen


def _start_of(stream, inputs, targets):
  """Where the window starts in the stream (ids are unique, so the first input says it)."""
  (start,) = np.flatnonzero(stream == inputs[0])
  return int(start)


def test_ptb_task_honours_eval_stride_and_checks_it(data_dir):
  c = helpers.tiny_config(lm_ptb, dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1),
                          seq_len=32, eval_stride=16)
  validation.validate(c)
  task = tasks.make_task(c, None)
  weights = sum(float(b['weights'].sum()) for b in task.data.eval_batches('validation', 64))
  assert weights == task.data.num_targets('validation')
  real_rows = sum(int((b['weights'].sum(axis=1) > 0).sum())
                  for b in task.data.eval_batches('validation', 64))
  n = task.data.num_targets('validation')
  assert real_rows == 1 + math.ceil((n - 32) / 16)   # a window every 16 tokens
  c.eval_stride = 32
  with pytest.raises(ConfigError, match=r'eval_stride=32 must be 0 .* or in \[1, seq_len=32\)'):
    validation.validate(c)
