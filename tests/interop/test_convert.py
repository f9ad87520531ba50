"""Hugging Face checkpoints as workdirs and back (tools.convert, transformer.convert), and
config.init_from, which starts any task from a trained or converted workdir."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import lm_shakespeare_char
from tests import helpers
from tools import convert as convert_tool
from transformer import checkpoint as ckpt_lib
from transformer import convert, engine, hf, inference
from transformer import workdir as workdir_lib
from transformer.experiment_config import ConfigError
from transformer.models import DecoderLM, EncoderOnly

FIXTURES = os.path.join(helpers.REPO, 'tests', 'fixtures', 'hf')
TINY_LM = dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=2, dropout_rate=0.0)


def imported(name, workdir):
  """`tools.convert import` of the fixture `name` into `workdir`, in this process."""
  source = os.path.join(FIXTURES, name)
  cfg, kind, hf_config = convert.import_hf(source, str(workdir))
  config = convert_tool.converted_config(cfg, kind, hf_config, source, str(workdir))
  (workdir / workdir_lib.CONFIG_JSON).write_text(config.to_json_best_effort(indent=2))
  return workdir_lib.read_config(str(workdir))   # its relative paths resolved


@pytest.mark.slow
def test_import_command_writes_a_workdir_that_gives_hugging_faces_outputs(tmp_path):
  workdir = tmp_path / 'bert'
  res = helpers.run_python(['-m', 'tools.convert', 'import', f'--hf={FIXTURES}/bert',
                            f'--workdir={workdir}'])
  assert res.returncode == 0, res.stderr
  config = workdir_lib.read_config(str(workdir))
  assert (config.task, config.pretrained.model_type, config.pretrained.model) == (
      'mlm', 'bert', 'EncoderOnly')
  assert config.init_from == str(workdir) and config.model.d_model == 16
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['0']
  assert (workdir / 'hf' / 'config.json').is_file()
  cfg, params, kind = inference.load_model(str(workdir))
  out = dict(np.load(os.path.join(FIXTURES, 'bert', 'outputs.npz')))
  real = out['attention_mask'].astype(bool)
  mlm, classes = EncoderOnly(cfg).apply(
      {'params': params}, jnp.asarray(out['input_ids']), jnp.asarray(out['token_type_ids']),
      jnp.asarray(out['attention_mask']), head='both')
  np.testing.assert_allclose(np.asarray(mlm)[real], out['mlm_logits'][real], rtol=1e-5,
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(classes), out['class_logits'], rtol=1e-5, atol=1e-5)
  with pytest.raises(ckpt_lib.CheckpointError, match='already holds checkpoints'):
    convert.import_hf(os.path.join(FIXTURES, 'bert'), str(workdir))
  res = helpers.run_python(['eval.py', f'--workdir={workdir}'])   # weights, not a run
  assert res.returncode == 2 and 'holds a converted bert checkpoint' in res.stderr, res.stderr


def test_export_of_an_imported_gpt2_gives_back_its_tensors_and_it_draws_attention(tmp_path):
  workdir, out = tmp_path / 'gpt2', str(tmp_path / 'exported')
  imported('gpt2', workdir)
  cfg, params, kind = inference.load_model(str(workdir))
  assert convert.export_hf(cfg, params, kind, out) == 'gpt2'
  original_config, original = hf.read_checkpoint(os.path.join(FIXTURES, 'gpt2'))
  exported_config, exported = hf.read_checkpoint(out)
  assert set(original) <= set(exported) <= set(original) | {'lm_head.weight'}
  for name, value in original.items():
    np.testing.assert_array_equal(exported[name], value, err_msg=name)
  assert hf.gpt2_model_config(exported_config) == hf.gpt2_model_config(original_config)
  from tools import visualize
  paths = visualize.hf_attention_figures(str(workdir), str(tmp_path / 'maps'), ids=['3', '4', '5'])
  assert [os.path.basename(p) for p in paths] == ['decoder_layer0_heads.png',
                                                  'decoder_layer1_heads.png']


def _saved_lm_workdir(workdir, model, seed=0):
  """A workdir of the tiny Shakespeare LM with `model` fields holding random params at step
  5 (a stand-in for a trained run: no training needed to test conversion)."""
  config = helpers.tiny_config(lm_shakespeare_char, {**TINY_LM, **model}, seq_len=16)
  exp = engine.Experiment(config, None)
  rng = np.random.default_rng(seed)
  state = jax.tree.map(lambda s: rng.normal(0, 0.5, size=s.shape).astype(s.dtype),
                       exp.abstract_state)
  checkpointer = ckpt_lib.Checkpointer(str(workdir / 'checkpoints'))
  checkpointer.save(5, state)
  checkpointer.close()
  (workdir / workdir_lib.CONFIG_JSON).write_text(config.to_json_best_effort(indent=2))
  return config, state


@pytest.mark.slow
def test_export_of_a_trained_lm_loads_back_with_the_same_logits(tmp_path, data_dir):
  gpt2_shaped = dict(norm_position='pre', positional='learned', activation='gelu', use_bias=True,
                     scale_embeddings=False, norm_epsilon=1e-5)
  _, state = _saved_lm_workdir(tmp_path / 'run', gpt2_shaped)
  cfg, params, kind = inference.load_model(str(tmp_path / 'run'))
  assert kind == 'DecoderLM'
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)
  convert.export_hf(cfg, params, kind, str(tmp_path / 'hf'))
  back_cfg, back = hf.from_hf(*hf.read_checkpoint(str(tmp_path / 'hf')))
  tokens = jnp.asarray(np.random.default_rng(1).integers(1, cfg.vocab_size, (2, 16)))
  ours = DecoderLM(cfg.replace(deterministic=True)).apply({'params': params}, tokens)
  theirs = DecoderLM(back_cfg).apply({'params': back}, tokens)
  np.testing.assert_allclose(np.asarray(theirs), np.asarray(ours), rtol=1e-5, atol=1e-5)
  # The paper's model (post-LN, sinusoidal positions) has no GPT-2 layout.
  _saved_lm_workdir(tmp_path / 'paper', dict(gpt2_shaped, norm_position='post',
                                              positional='sinusoidal'))
  cfg, params, kind = inference.load_model(str(tmp_path / 'paper'))
  with pytest.raises(hf.ConversionError, match="norm_position='post'.*positional='sinusoidal'"):
    convert.export_hf(cfg, params, kind, str(tmp_path / 'nope'))


@pytest.mark.slow
def test_init_from_starts_a_fresh_lm_run_and_names_a_mismatched_vocabulary(tmp_path, data_dir):
  config, state = _saved_lm_workdir(tmp_path / 'pre', {}, seed=3)
  config.init_from, config.seed = os.path.relpath(tmp_path / 'pre'), 7   # relative paths too
  fresh = engine.Experiment(config, None).restore_or_init(None)
  assert int(fresh.step) == 0
  for a, b in zip(jax.tree.leaves(fresh.params), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(a, b)
  # A converted GPT-2 (a vocabulary of 50) on Shakespeare's characters (the dataset's own
  # tokenizer instead of the model's tokenizer.json): one clear message.
  config = imported('gpt2', tmp_path / 'gpt2')
  config.dataset, config.tokenizer = 'tiny_shakespeare', ''
  with pytest.raises(ConfigError, match=r'embed/embedding has shape \(50, 16\)'):
    engine.Experiment(config, None).restore_or_init(None)


def test_a_sharded_qwen2_imports_as_a_workdir_with_its_logits(tmp_path):
  """The Llama family through the user's path: the sharded Qwen2 fixture (4 shards and the
  index), imported as a workdir, restored (verified) and run: Hugging Face's logits."""
  config = imported('qwen2', tmp_path / 'qwen2')
  assert (config.task, config.pretrained.model_type, config.pretrained.model) == (
      'lm', 'qwen2', 'DecoderLM')
  assert (config.model.positional, config.model.qkv_bias, config.model.use_bias) == (
      'rope', True, False)
  cfg, params, kind = inference.load_model(str(tmp_path / 'qwen2'))
  out = dict(np.load(os.path.join(FIXTURES, 'qwen2', 'outputs.npz')))
  real = out['attention_mask'].astype(bool)
  logits = DecoderLM(cfg).apply({'params': params}, jnp.asarray(out['input_ids']),
                                jnp.asarray((~real).sum(1), jnp.int32))
  np.testing.assert_allclose(np.asarray(logits)[real], out['logits'][real], rtol=1e-5,
                             atol=1e-5)


@pytest.mark.parametrize('name', ['gpt2', 'llama'])
def test_a_converted_lm_continues_text_as_hugging_face_does(name, tmp_path):
  """Text in, text out with the model's own tokenizer.json: the prompts encode to the ids
  Hugging Face's tokenizer gives (GPT-2: nothing added; Llama: <s> first), and the greedy
  continuations of the batch (left-padded) decode to Hugging Face's texts (text.json,
  written by make_fixtures.py with transformers' generate and PreTrainedTokenizerFast)."""
  import json
  from transformer.data.tokenizers import HFTokenizer
  with open(os.path.join(FIXTURES, name, 'text.json')) as f:
    expected = json.load(f)
  tok = HFTokenizer.from_dir(os.path.join(FIXTURES, name))
  assert [tok.encode(p) for p in expected['prompts']] == expected['prompt_ids']
  assert (tok.bos_id, tok.eos_id) == ((0, 0) if name == 'gpt2' else (1, 2))
  long_line = 'the a of ' * 40_000                             # 360,000 characters, one line
  assert len(tok.encode(long_line)) == 120_000 + (name == 'llama')
  config = imported(name, tmp_path / name)
  config.sample.temperature = 0.0
  texts = inference.continue_pretrained(config, str(tmp_path / name), expected['prompts'],
                                        expected['num_tokens'])
  assert texts == expected['texts']


def test_generate_on_a_converted_llama_and_its_tokenizer_errors(tmp_path):
  import json
  from tools import fault_campaign
  with open(os.path.join(FIXTURES, 'llama', 'text.json')) as f:
    expected = json.load(f)
  imported('llama', tmp_path / 'llama')
  prompts = tmp_path / 'prompts.txt'
  prompts.write_text('\n'.join(expected['prompts']) + '\n')
  res = helpers.run_python(['generate.py', f'--workdir={tmp_path / "llama"}', f'--input={prompts}',
                            '--num_tokens=8', '--config.sample.temperature=0'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert res.stdout == ''.join(f'=== prompt {i + 1} ===\n{t}\n'
                               for i, t in enumerate(expected['texts']))
  # Asking for more than the positions allow says so (the model has 64 positions).
  res = helpers.run_python(['generate.py', f'--workdir={tmp_path / "llama"}', f'--input={prompts}',
                            '--num_tokens=100', '--config.sample.temperature=0'])
  assert res.returncode == 0 and 'leave room for 58 new tokens of the 100 asked' in res.stderr
  # Another model's tokenizer (a larger vocabulary), a corrupt one, none: one line, exit 2.
  hf_dir = tmp_path / 'llama' / 'hf'
  with open(hf_dir / 'tokenizer.json') as f:
    spec = json.load(f)
  spec['model']['vocab'].update({f'extra{i}': 60 + i for i in range(5)})
  (hf_dir / 'tokenizer.json').write_text(json.dumps(spec))
  cases = [('has 65 tokens but the model\'s embedding has 60', None)]
  cases.append(('is not a readable tokenizer.json', '{"model": 3'))
  cases.append(('tokenizer.json does not exist', ''))
  for message, content in cases:
    if content == '':
      os.remove(hf_dir / 'tokenizer.json')
    elif content is not None:
      (hf_dir / 'tokenizer.json').write_text(content)
    res = helpers.run_python(['generate.py', f'--workdir={tmp_path / "llama"}',
                              f'--input={prompts}'])
    problem = fault_campaign.one_line_error(res.returncode, res.stdout, res.stderr, message)
    assert problem is None, (message, problem, res.stderr[-1500:])


def test_export_of_a_converted_llama_carries_its_tokenizer_and_special_ids(tmp_path):
  import json
  imported('llama', tmp_path / 'llama')
  cfg, params, kind = inference.load_model(str(tmp_path / 'llama'))
  out = tmp_path / 'export'
  assert convert.export_hf(cfg, params, kind, str(out), str(tmp_path / 'llama')) == 'llama'
  assert sorted(os.listdir(out)) == ['config.json', 'model.safetensors', 'tokenizer.json']
  assert (out / 'tokenizer.json').read_bytes() == open(
      os.path.join(FIXTURES, 'llama', 'tokenizer.json'), 'rb').read()
  exported = json.loads((out / 'config.json').read_text())
  source = json.loads(open(os.path.join(FIXTURES, 'llama', 'config.json')).read())
  for key in ('bos_token_id', 'eos_token_id', 'pad_token_id'):
    assert exported[key] == source[key], key
  again_cfg, again = hf.from_hf(*hf.read_checkpoint(str(out)))
  assert again_cfg == cfg.replace(deterministic=True)   # load_model: the training config


def test_a_converted_config_is_ready_to_fine_tune(tmp_path):
  """Its task's fields are all there (an override of any of them works), fine-tuning
  defaults instead of the paper's pretraining schedule, and no dataset until one is named:
  train.py says so in one line before any work."""
  from transformer import tasks
  for name, task in (('vit', 'classification'), ('bert', 'mlm'), ('t5', 'translation'),
                     ('llama', 'lm')):
    config = imported(name, tmp_path / name)
    assert config.task == task and config.dataset == ''
    assert (config.optimizer, config.schedule, config.warmup_steps) == ('adamw', 'cosine', 100)
    assert config.learning_rate == convert_tool.FINE_TUNING[task] <= 1e-4
    settings, problems = tasks.task_class(config).settings_class.read(config)
    assert problems == []
    for field in type(settings).__dataclass_fields__:
      assert field in config, (name, field)
  config = workdir_lib.read_config(str(tmp_path / 'vit'))
  config.validation_holdout = 5000          # was an AttributeError: the field was missing
  res = helpers.run_python(['train.py', f'--config={tmp_path / "vit" / "config.json"}',
                            f'--workdir={tmp_path / "run"}', '--config.validation_holdout=500'])
  assert res.returncode == 2 and 'Traceback' not in res.stderr, res.stderr[-1500:]
  assert "dataset='' is not a 'classification' dataset; allowed:" in res.stderr


@pytest.mark.slow
def test_a_converted_llama_fine_tunes_on_ptb_with_its_own_tokenizer(tmp_path, data_dir):
  """train.py --config=CONVERTED/config.json --config.dataset=ptb: the text is read with the
  model's tokenizer.json (config.tokenizer, written by the import), the run starts from the
  converted weights, and generate.py on the run continues text with that tokenizer."""
  from transformer.data.tokenizers import HFTokenizer
  imported('llama', tmp_path / 'llama')
  config = workdir_lib.read_config(str(tmp_path / 'llama'))
  assert config.tokenizer == f'hf:{tmp_path / "llama" / "hf"}'
  run = tmp_path / 'run'
  res = helpers.run_python([
      'train.py', f'--config={tmp_path / "llama" / "config.json"}', f'--workdir={run}',
      '--config.dataset=ptb', f'--config.data_dir={data_dir}', '--config.num_train_steps=30',
      '--config.eval_every_steps=30', '--config.batch_size=8', '--config.seq_len=32',
      '--config.learning_rate=1e-3', '--config.warmup_steps=5', '--config.log_every_steps=10'])
  assert res.returncode == 0, res.stderr[-2000:]
  losses = [r['loss'] for r in helpers.records(str(run), 'train')]
  assert losses[-1] < losses[0]
  task_cfg = workdir_lib.read_config(str(run))
  tok = HFTokenizer.from_dir(str(tmp_path / 'llama' / 'hf'))
  from transformer import tasks
  task = tasks.make_task(task_cfg, str(run))
  assert task.data.tokenizer.fingerprint == tok.fingerprint and task.model_cfg.vocab_size == 60
  ptb = open(os.path.join(data_dir, 'ptb', 'ptb.valid.txt')).read()
  np.testing.assert_array_equal(task.data._streams['validation'], tok.encode(ptb))
  res = helpers.run_python(['generate.py', f'--workdir={run}', '--num_tokens=5'],
                           input='it was the\n')
  assert res.returncode == 0, res.stderr[-2000:]
  assert res.stdout.startswith('=== prompt 1 ===\nit was the ')


@pytest.mark.slow
def test_another_tokenizer_than_the_checkpoints_is_refused_naming_both(tmp_path, data_dir):
  """The import records the tokenizer's fingerprint, a run records its own; resuming,
  evaluating or fine-tuning with another tokenizer stops with one message naming both."""
  import json
  import shutil
  from transformer.data.tokenizers import HFTokenizer
  model = tmp_path / 'llama'
  res = helpers.run_python(['-m', 'tools.convert', 'import', f'--hf={FIXTURES}/llama',
                            f'--workdir={model}'])
  assert res.returncode == 0, res.stderr[-2000:]
  theirs = HFTokenizer.from_dir(str(model / 'hf')).fingerprint
  assert workdir_lib.tokenizer_fingerprint(str(model)) == theirs
  run = tmp_path / 'run'
  common = [f'--config={model / "config.json"}', '--config.dataset=ptb',
            f'--config.data_dir={data_dir}', '--config.batch_size=4', '--config.seq_len=16',
            '--config.eval_every_steps=10', '--config.checkpoint_every_steps=10']
  res = helpers.run_python(['train.py', *common, f'--workdir={run}',
                            '--config.num_train_steps=10'])
  assert res.returncode == 0, res.stderr[-2000:]
  assert workdir_lib.tokenizer_fingerprint(str(run)) == theirs
  ours = 'words:'   # PTB's own word tokenizer
  for args in (['train.py', *common, f'--workdir={run}', '--config.num_train_steps=20',
                "--config.tokenizer="],
               ['eval.py', f'--workdir={run}', "--config.tokenizer="]):
    res = helpers.run_python(args)
    assert res.returncode == 2 and 'Traceback' not in res.stderr, res.stderr[-2000:]
    assert f'was trained with the tokenizer {theirs}, but' in res.stderr
    assert f'with {ours}' in res.stderr, res.stderr[-600:]
  # A fresh fine-tuning run whose tokenizer.json is not the converted model's.
  other = tmp_path / 'other_hf'
  shutil.copytree(model / 'hf', other)
  spec = json.loads((other / 'tokenizer.json').read_text())
  spec['model']['vocab']['said'], spec['model']['vocab']['that'] = (
      spec['model']['vocab']['that'], spec['model']['vocab']['said'])
  (other / 'tokenizer.json').write_text(json.dumps(spec))
  res = helpers.run_python(['train.py', *common, f'--workdir={tmp_path / "run2"}',
                            '--config.num_train_steps=10', f'--config.tokenizer=hf:{other}'])
  assert res.returncode == 2 and 'this fine-tuning run reads the text with' in res.stderr, (
      res.stderr[-2000:])


def test_a_moved_converted_workdir_still_names_itself(tmp_path):
  """init_from and the tokenizer are written relative to the workdir ('.', 'hf:hf'), so a
  copy works where it lands: read from its folder, from --config=COPY/config.json as well."""
  import json
  import shutil
  imported('llama', tmp_path / 'llama')
  saved = json.loads((tmp_path / 'llama' / 'config.json').read_text())
  assert (saved['init_from'], saved['tokenizer']) == ('.', 'hf:hf')
  shutil.copytree(tmp_path / 'llama', tmp_path / 'moved')
  shutil.rmtree(tmp_path / 'llama')
  config = workdir_lib.read_config(str(tmp_path / 'moved'))
  assert config.init_from == str(tmp_path / 'moved')
  assert config.tokenizer == f'hf:{tmp_path / "moved" / "hf"}'
  assert convert.is_converted(config, str(tmp_path / 'moved'))
  with open(os.path.join(FIXTURES, 'llama', 'text.json')) as f:
    expected = json.load(f)
  config.sample.temperature = 0.0
  assert inference.continue_pretrained(config, str(tmp_path / 'moved'), expected['prompts'],
                                       8) == expected['texts']
  from_file = workdir_lib.config_from_json((tmp_path / 'moved' / 'config.json').read_text(),
                                           str(tmp_path / 'moved'))
  assert from_file.init_from == config.init_from


def test_a_converted_t5_translates_as_hugging_face_does(tmp_path):
  """generate.py on a converted T5: the sources encoded by its tokenizer.json (</s> last), the
  decoder started from <pad>, greedy: the first 8 output words are Hugging Face's (text.json:
  its generate() with right-padded sources, end id off); the task prefix of config.json's
  task_specific_params goes before every source."""
  import json
  with open(os.path.join(FIXTURES, 't5', 'text.json')) as f:
    expected = json.load(f)
  imported('t5', tmp_path / 't5')
  lines = tmp_path / 'sources.txt'
  lines.write_text('\n'.join(expected['prompts']) + '\n')
  res = helpers.run_python(['generate.py', f'--workdir={tmp_path / "t5"}', f'--input={lines}',
                            '--config.decoding.method=greedy'])
  assert res.returncode == 0, res.stderr[-2000:]
  out = res.stdout.splitlines()
  assert [' '.join(t.split()[:8]) for t in out] == expected['texts']
  # The prefix of the checkpoint's task_specific_params is written into the converted config
  # and goes before each source: 'the man said ' + 'that he would' is the first source.
  with open(tmp_path / 't5' / 'hf' / 'config.json') as f:
    hf_config = json.load(f)
  hf_config['task_specific_params'] = {'translation_en_to_de': {'prefix': 'the man said '}}
  source = tmp_path / 'src'
  shutil.copytree(os.path.join(FIXTURES, 't5'), source)
  (source / 'config.json').write_text(json.dumps(hf_config))
  r = helpers.run_python(['-m', 'tools.convert', 'import', f'--hf={source}',
                          f'--workdir={tmp_path / "t5p"}'])
  assert r.returncode == 0, r.stderr[-2000:]
  assert workdir_lib.read_config(str(tmp_path / 't5p')).source_prefix == 'the man said '
  lines.write_text('that he would\n')
  res = helpers.run_python(['generate.py', f'--workdir={tmp_path / "t5p"}', f'--input={lines}',
                            '--config.decoding.method=greedy'])
  assert res.returncode == 0 and res.stdout.splitlines()[0] == out[0]   # same source


@pytest.mark.slow
def test_a_converted_t5_fine_tunes_on_parallel_files_with_its_own_tokenizer(tmp_path):
  """train.py --config=CONVERTED/config.json --config.dataset=files: the pairs are read with
  T5's tokenizer.json (its pieces, </s> after each side, the decoder input started from
  <pad> as T5's decoder_start_token_id says), the task prefix goes before each source, the
  run starts from the converted weights, and generate.py translates with the fine-tuned run."""
  from transformer import tasks
  from transformer.data.tokenizers import HFTokenizer
  imported('t5', tmp_path / 't5')
  words = 'the a of to and in that is was he for it with as his on be at by this had'.split()
  rng = np.random.default_rng(0)
  src = [' '.join(rng.choice(words, 5)) for _ in range(40)]
  for split, n in (('train', 32), ('val', 8)):
    (tmp_path / f'{split}.en').write_text('\n'.join(src[:n] if split == 'train' else src[32:]))
    (tmp_path / f'{split}.de').write_text('\n'.join(' '.join(reversed(s.split()))
                                                   for s in (src[:n] if split == 'train'
                                                             else src[32:])))
  run = tmp_path / 'run'
  flags = [f'--config={tmp_path / "t5" / "config.json"}', f'--workdir={run}',
           '--config.dataset=files', f'--config.files.train={tmp_path}/train',
           f'--config.files.validation={tmp_path}/val', '--config.num_train_steps=4',
           '--config.eval_every_steps=4', '--config.seq_len=16', '--config.batch_size=4',
           '--config.tokens_per_batch=64', '--config.source_prefix=it was ',
           '--config.decoding.method=greedy', '--config.decoding.extra_len=4']
  res = helpers.run_python(['train.py', *flags])
  assert res.returncode == 0, res.stderr[-2000:]
  config = workdir_lib.read_config(str(run))
  task = tasks.make_task(config, str(run))
  tok = HFTokenizer.from_dir(str(tmp_path / 't5' / 'hf'))
  assert (task.data.bos_id, task.data.eos_id) == (0, 1) and task.model_cfg.vocab_size == 40
  (batch,) = list(task.data.eval_batches('validation', 8))
  first_src = tok.encode('it was ' + src[32])        # T5's policy: pieces then </s>
  first_tgt = tok.encode(' '.join(reversed(src[32].split())))
  assert batch['inputs'][0, :len(first_src)].tolist() == first_src
  assert batch['targets'][0, :len(first_tgt)].tolist() == first_tgt
  assert batch['targets_in'][0, :len(first_tgt)].tolist() == [0] + first_tgt[:-1]
  res = helpers.run_python(['generate.py', f'--workdir={run}'], input=src[32] + '\n')
  assert res.returncode == 0, res.stderr[-2000:]
  assert len(res.stdout.splitlines()) == 1
  vocabulary = {tok.id_to_token(i) for i in range(tok.vocab_size)}
  assert res.stdout.split() and set(res.stdout.split()) <= vocabulary   # decoded T5 words


IMPORT_ON_FOUR_DEVICES = '''
import json, sys
import jax
from transformer import convert, hf
source, workdir = sys.argv[1], sys.argv[2]
_, tensors = hf.read_checkpoint(source)
params = convert._to_device(hf.from_hf(hf.read_checkpoint(source)[0], tensors)[1])
rows = [[list(x.shape), len(x.sharding.device_set), max(s.data.size for s in x.addressable_shards)]
        for x in jax.tree.leaves(params)]
convert.import_hf(source, workdir)
print(json.dumps({'devices': jax.device_count(), 'rows': rows}))
'''


@pytest.mark.slow
def test_an_import_on_several_devices_splits_each_tensor_over_them(tmp_path):
  """On a host with 4 devices every tensor with a dimension 4 divides is split 4 ways (no
  device holds the whole model), the rest copied; the checkpoint it writes restores in a
  1-device process to the same params as an import on one device."""
  source = os.path.join(FIXTURES, 'llama')
  res = helpers.run_python(['-c', IMPORT_ON_FOUR_DEVICES, source, str(tmp_path / 'four')],
                           env_extra={'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
                                      'JAX_PLATFORMS': 'cpu'})
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert out['devices'] == 4
  split = 0
  for shape, devices, largest_shard in out['rows']:
    size = int(np.prod(shape))
    divisible = any(n % 4 == 0 for n in shape)
    assert devices == 4 and largest_shard == (size // 4 if divisible else size), shape
    split += divisible
  assert split >= len(out['rows']) // 2   # the matrices and embeddings
  assert convert.shard_placement((10, 8), 4) == jax.sharding.PartitionSpec(None, 'shards')
  assert convert.shard_placement((16, 8), 4) == jax.sharding.PartitionSpec('shards', None)
  assert convert.shard_placement((6,), 4) == jax.sharding.PartitionSpec()
  assert convert.shard_placement((16, 8), 1) == jax.sharding.PartitionSpec()
  imported('llama', tmp_path / 'one')
  four = workdir_lib.restore_params(str(tmp_path / 'four'))
  one = workdir_lib.restore_params(str(tmp_path / 'one'))
  assert jax.tree.structure(four) == jax.tree.structure(one)
  for a, b in zip(jax.tree.leaves(four), jax.tree.leaves(one)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
