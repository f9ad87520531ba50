"""generate.py on tiny trained workdirs: a file or stdin translated, prompts continued, a
folder of images classified, a hypothesis file scored; outputs equal the library's."""

import os
import shutil

import numpy as np
import pytest
import sacrebleu

from configs import lm_shakespeare_char, vit_mnist
from tests import helpers
from tests.tasks.test_translation import tiny as tiny_translation
from transformer import engine, inference
from transformer import workdir as workdir_lib
from transformer.data import DataError
from transformer.data import images as image_data

SOURCES = ['Ein Mann fährt Fahrrad.', 'Zwei Hunde spielen im Schnee.',
           'Eine Frau mit einem roten Hut liest ein Buch auf einer Bank im Park.']


@pytest.fixture(scope='module')
def translation_run(tmp_path_factory, require_data):
  require_data('multi30k')
  workdir = str(tmp_path_factory.mktemp('m30k'))
  engine.train_and_evaluate(tiny_translation(num_train_steps=2), workdir)
  config = workdir_lib.read_config(workdir)
  exp, state = inference.load_trained(config, workdir)
  return workdir, exp, state.params


@pytest.mark.slow
def test_translate_stdin_to_a_file_as_the_library_does(translation_run, tmp_path):
  """One command: sources on stdin, translations into --output (file input: the score test)."""
  workdir, exp, params = translation_run
  out = tmp_path / 'hyp.en'
  res = helpers.run_python(['generate.py', f'--workdir={workdir}', f'--output={out}'],
                           input=''.join(s + '\n' for s in SOURCES))
  assert res.returncode == 0, res.stderr[-3000:]
  lines = out.read_text(encoding='utf-8').split('\n')
  assert lines[-1] == '' and len(lines) == len(SOURCES) + 1
  assert lines[:-1] == inference.translate(exp, params, SOURCES)

  # A copy of the workdir translates the same on a machine without Multi30k: it keeps its
  # SentencePiece model.
  copy = tmp_path / 'copied'
  shutil.copytree(workdir, copy)
  (tmp_path / 'no_data').mkdir()
  alone = helpers.run_python(['generate.py', f'--workdir={copy}'],
                             input=''.join(s + '\n' for s in SOURCES),
                             env_extra={'TRANSFORMER_DATA_DIR': str(tmp_path / 'no_data')})
  assert alone.returncode == 0, alone.stderr[-3000:]
  assert alone.stdout.split('\n')[:-1] == lines[:-1]


def test_raw_text_translates_like_the_tokenized_split(translation_run):
  """The file path (raw text -> SentencePiece) gives what eval.py's split path gives."""
  _, exp, params = translation_run
  sources, _ = exp.task.data.texts('test_2016_flickr')
  assert (inference.translate(exp, params, sources[:6])
          == exp.task.translate_split(params, 'test_2016_flickr', 6))


def test_score_matches_sacrebleu_and_refuses_mismatched_files(tmp_path):
  hyps = ['A man rides a bike .', 'Two dogs play in snow.', 'A woman reads a book.']
  refs = ['A man is riding a bicycle.', 'Two dogs are playing in the snow.',
          'A woman in a red hat reads a book on a park bench.']
  (tmp_path / 'h').write_text('\n'.join(hyps) + '\n')
  (tmp_path / 'r').write_text('\n'.join(refs[:2]) + '\n')
  # Mismatched files: one message, exit status 2 (the command's user-error path).
  res = helpers.run_python(['generate.py', '--score', f'--input={tmp_path / "h"}',
                            f'--references={tmp_path / "r"}'])
  assert res.returncode == 2
  assert res.stderr.strip() == ('error: 3 hypotheses but 2 references: the files must have one '
                                'sentence per line, in the same order')
  # The scores themselves, from the library the command prints.
  result = inference.score(hyps, refs)
  assert result['bleu'] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
  assert result['sentences'] == 3 and 0 < result['tokenized_bleu'] < 100


@pytest.mark.slow
def test_prompts_of_different_lengths_are_continued(tmp_path, require_data):
  require_data('tiny_shakespeare')
  workdir = str(tmp_path / 'lm')
  c = helpers.tiny_config(lm_shakespeare_char, dict(d_model=16, num_heads=2, d_ff=32,
                                                    num_decoder_layers=1),
                          seq_len=16, batch_size=4, eval_batch_size=8, eval_max_batches=1,
                          num_train_steps=2, warmup_steps=1, log_every_steps=1)
  engine.train_and_evaluate(c, workdir)
  prompts = ['ROMEO:', 'KING HENRY:', 'O']
  (tmp_path / 'p.txt').write_text('\n'.join(prompts) + '\n')
  res = helpers.run_python(['generate.py', f'--workdir={workdir}',
                            f'--input={tmp_path / "p.txt"}', '--num_tokens=4',
                            '--config.sample.temperature=0.0'])
  assert res.returncode == 0, res.stderr[-3000:]
  blocks = res.stdout.split('=== prompt ')[1:]
  assert len(blocks) == 3
  config = workdir_lib.read_config(workdir)
  config.sample.temperature = 0.0
  exp, state = inference.load_trained(config, workdir)
  expected = inference.continue_prompts(exp, state.params, prompts, 4)
  for i, (block, prompt, want) in enumerate(zip(blocks, prompts, expected)):
    text = block.split('===\n', 1)[1][:-1]
    assert text.startswith(prompt) and len(text) == len(prompt) + 4 and text == want, i

  # A prompt longer than the model's positions is refused before decoding.
  with pytest.raises(DataError, match='prompt 2 has 40 tokens; the model has 16 positions'):
    inference.continue_prompts(exp, state.params, ['O', 'x' * 40], 4)

  # The workdir keeps its tokenizer: a copy continues the prompts the same on a machine
  # without the dataset; without the kept vocabulary it would have to read the dataset.
  copy = tmp_path / 'copied'
  shutil.copytree(workdir, copy)
  assert (copy / 'tokenizer_vocab.json').is_file()
  empty = tmp_path / 'no_data'
  empty.mkdir()
  args = ['generate.py', f'--workdir={copy}', f'--input={tmp_path / "p.txt"}',
          '--num_tokens=4', '--config.sample.temperature=0.0']
  alone = helpers.run_python(args, env_extra={'TRANSFORMER_DATA_DIR': str(empty)})
  assert alone.returncode == 0, alone.stderr[-3000:]
  assert alone.stdout == res.stdout
  (copy / 'tokenizer_vocab.json').unlink()
  missing = helpers.run_python(args, env_extra={'TRANSFORMER_DATA_DIR': str(empty)})
  assert missing.returncode == 2 and 'tiny_shakespeare' in missing.stderr, missing.stderr[-2000:]


@pytest.mark.slow
def test_a_folder_of_images_is_classified_as_the_eval_split(tmp_path, require_data):
  from PIL import Image
  require_data('mnist')
  workdir = str(tmp_path / 'vit')
  c = helpers.tiny_config(vit_mnist, dict(d_model=16, num_heads=2, d_ff=32,
                                          num_encoder_layers=1),
                          batch_size=16, eval_batch_size=64, eval_max_batches=1,
                          num_train_steps=2, warmup_steps=1, log_every_steps=1)
  engine.train_and_evaluate(c, workdir)
  exp, state = inference.load_trained(workdir_lib.read_config(workdir), workdir)
  batch = next(exp.task.data.eval_batches('test', 64))
  logits = np.asarray(exp.task.model(False).apply({'params': state.params}, batch['images']))
  folder = tmp_path / 'digits'
  folder.mkdir()
  n = 5
  for i in range(n):
    image, _ = exp.task.data._split('test').example(i)
    Image.fromarray(image[..., 0]).save(folder / f'{i}.png')
  (folder / 'notes.txt').write_text('not an image')
  res = helpers.run_python(['generate.py', f'--workdir={workdir}', f'--images={folder}'])
  assert res.returncode == 0, res.stderr[-3000:]
  rows = [line.split('\t') for line in res.stdout.strip().split('\n')]
  assert [os.path.basename(r[0]) for r in rows] == [f'{i}.png' for i in range(n)]
  names = exp.task.data.class_names
  assert [r[1] for r in rows] == [names[int(k)] for k in np.argmax(logits[:n], axis=-1)]
  probs = np.exp(logits[:n] - logits[:n].max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  np.testing.assert_allclose([float(r[2]) for r in rows], probs.max(-1), atol=1e-4)

  # A copy of the workdir classifies the folder the same without MNIST: it keeps the class
  # names and the preprocessing (size, mean and std).
  copy = tmp_path / 'copied'
  shutil.copytree(workdir, copy)
  (tmp_path / 'no_data').mkdir()
  alone = helpers.run_python(['generate.py', f'--workdir={copy}', f'--images={folder}'],
                             env_extra={'TRANSFORMER_DATA_DIR': str(tmp_path / 'no_data')})
  assert alone.returncode == 0, alone.stderr[-3000:]
  assert alone.stdout == res.stdout
  kept = image_data.KeptImages(workdir_lib.kept_data_info(str(copy))['images'], names)
  pixels = [np.asarray(Image.open(folder / f'{i}.png'))[..., None] for i in range(n)]
  np.testing.assert_array_equal(kept.prepare(pixels), exp.task.data.prepare(pixels))
  assert kept.prepare(pixels).shape == (n, 28, 28, 1)
