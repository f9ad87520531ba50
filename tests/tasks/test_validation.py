"""Config validation: the common checks plus each task's own, before any data is read.

Each task registers itself (`@register`) and checks its own fields in
`Task.validate(config) -> list of problems`; `validation.validate` runs the
common checks and the task's, and raises one ConfigError listing all of them.
"""

import importlib
import pkgutil

import ml_collections
import pytest

from configs import lm_shakespeare_char, translate_multi30k, vit_mnist
from transformer import engine, tasks, validation
from transformer.experiment_config import ConfigError
from transformer.tasks import base


def test_every_task_module_registers_its_task():
  names = [m.name for m in pkgutil.iter_modules(tasks.__path__) if m.name != 'base']
  assert set(names) == {'lm', 'translation', 'classification', 'mlm', 'text_classification'}
  assert {m.__name__.rpartition('.')[2] for m in tasks.FAMILIES} == set(names)
  for name in names:
    module = importlib.import_module(f'transformer.tasks.{name}')
    registered = [cls for cls in tasks.TASKS.values() if cls.__module__ == module.__name__]
    assert len(registered) == 1, f'transformer/tasks/{name}.py registers {registered}'
    assert registered[0].datasets, f'{registered[0].name} accepts no dataset'


def test_a_new_family_is_one_registered_class(monkeypatch):
  monkeypatch.setattr(base, 'TASKS', dict(base.TASKS))
  monkeypatch.setattr(tasks, 'TASKS', base.TASKS)
  monkeypatch.setattr(validation.tasks, 'TASKS', base.TASKS)

  @base.register
  class Echo(base.Task):
    name = 'echo'
    datasets = ('echo_data',)

    @classmethod
    def validate(cls, config):
      problems = super().validate(config)
      if config.get('echo_times', 1) < 1:
        problems.append(f'echo_times={config.echo_times} must be >= 1')
      return problems

  c = lm_shakespeare_char.get_config()
  c.task, c.dataset = 'echo', 'echo_data'
  validation.validate(c)                        # known task, its dataset: valid
  c.echo_times = 0
  with pytest.raises(ConfigError, match='echo_times=0 must be >= 1'):
    validation.validate(c)
  c.dataset = 'tiny_shakespeare'
  with pytest.raises(ConfigError, match="dataset='tiny_shakespeare' is not a 'echo' dataset"):
    validation.validate(c)

  class Other(base.Task):
    name = 'echo'
  with pytest.raises(ValueError, match="Two tasks named 'echo'"):
    base.register(Other)


def test_unknown_task_is_named_with_the_known_ones():
  c = lm_shakespeare_char.get_config()
  c.task = 'speech'
  with pytest.raises(ConfigError, match="task='speech' is not one of") as e:
    validation.validate(c)
  assert all(repr(name) in str(e.value) for name in ('lm', 'translation', 'classification'))


def test_common_and_task_problems_come_in_one_error():
  c = translate_multi30k.get_config()
  c.learning_rate = -1.0                         # common
  c.decoding.method = 'sample'                   # translation's own
  c.tokens_per_batch = 0                         # translation's own
  with pytest.raises(ConfigError) as e:
    validation.validate(c)
  message = str(e.value)
  assert 'learning_rate=-1.0 must be > 0' in message
  assert "decoding.method='sample' is not one of ('greedy', 'beam')" in message
  assert 'tokens_per_batch=0 must be a positive integer' in message


def test_the_old_decode_block_is_named_with_its_new_name():
  c = translate_multi30k.get_config()
  c.decode = ml_collections.ConfigDict({'method': 'greedy'})
  with pytest.raises(ConfigError, match='config.decode was renamed config.decoding'):
    validation.validate(c)
  c = translate_multi30k.get_config()
  c.decoding.beam_width = 4
  with pytest.raises(ConfigError, match=r"decoding: unknown field\(s\) \['beam_width'\]"):
    validation.validate(c)


@pytest.mark.parametrize('field,value,message', [
    ('num_tokens', 0, 'sample.num_tokens=0 must be a positive integer'),
    ('top_p', 0.0, r'sample.top_p=0.0 must be in \(0, 1\]'),
    ('top_k', -1, 'sample.top_k=-1 must be an integer >= 0'),
    ('temperature', -0.5, 'sample.temperature=-0.5 must be >= 0'),
])
def test_lm_checks_its_sampling_fields(field, value, message):
  c = lm_shakespeare_char.get_config()
  c.sample[field] = value
  with pytest.raises(ConfigError, match=message):
    validation.validate(c)


def test_classification_checks_augmentation_before_reading_any_data(tmp_path):
  c = vit_mnist.get_config()
  c.augment.crop = 'zoom'
  c.data_dir = str(tmp_path / 'nowhere')         # never opened: validation comes first
  with pytest.raises(ConfigError, match=r"augment: .*crop='zoom' is not one of"):
    engine.Experiment(c, None)


def test_text_classification_checks_its_holdout_fields():
  from configs import sst2_bert
  c = sst2_bert.get_config()
  validation.validate(c)
  c.validation_holdout = 0
  with pytest.raises(ConfigError, match='validation_holdout_whole=True holds out whole '
                     'sentences: set validation_holdout=N'):
    validation.validate(c)


def test_shipped_configs_are_valid():
  for module in (lm_shakespeare_char, translate_multi30k, vit_mnist):
    validation.validate(module.get_config())


def test_a_stray_file_in_the_tasks_folder_registers_nothing(tmp_path):
  """Tasks were discovered by importing every file of the package, so an editor's backup
  (lm_old.py) registered a task; the families are now listed in transformer/tasks/__init__.py."""
  import shutil
  import subprocess
  import sys

  from tests import helpers
  copy = tmp_path / 'transformer'
  shutil.copytree(helpers.REPO + '/transformer', copy,
                  ignore=shutil.ignore_patterns('__pycache__'))
  (copy / 'tasks' / 'lm_old.py').write_text(
      'from transformer.tasks.base import Task, register\n\n'
      '@register\nclass Stray(Task):\n  name = "stray"\n')
  probe = 'import transformer.tasks as t; print(sorted(t.TASKS))'
  out = subprocess.run([sys.executable, '-c', probe], cwd=tmp_path, capture_output=True,
                       text=True, check=True, env={'PYTHONPATH': str(tmp_path),
                                                   'JAX_PLATFORMS': 'cpu'}).stdout
  assert "'stray'" not in out and "'lm'" in out and "'mlm'" in out


def test_a_sample_prompt_longer_than_the_model_is_a_config_error(data_dir):
  """Sampling with a prompt of max_len tokens or more failed opaquely inside decoding."""
  c = lm_shakespeare_char.get_config()
  c.update(dict(seq_len=8, extra_eval_every_steps=10))
  c.model.update(dict(d_model=16, num_heads=2, d_ff=32, num_decoder_layers=1))
  c.sample.prompt = 'ROMEO: a prompt longer than eight characters'
  with pytest.raises(ConfigError, match='prompt is 44 tokens long; the model has 8 positions'):
    tasks.make_task(c, None)
  c.extra_eval_every_steps = 0        # eval.py only: checked when it samples
  task = tasks.make_task(c, None)
  with pytest.raises(ConfigError, match='shorten the prompt'):
    task.evaluate_extra(None, None, 0)


@pytest.mark.parametrize('module,field,value,message', [
    (lm_shakespeare_char, 'eval_max_batches', 0,
     'eval_max_batches=0 must be a positive integer, or -1'),
    (lm_shakespeare_char, 'model.num_decoder_layers', 0,
     "model.num_decoder_layers=0: a 'lm' model needs at least one layer there"),
    (translate_multi30k, 'model.num_encoder_layers', 0,
     "model.num_encoder_layers=0: a 'translation' model needs at least one layer"),
    (vit_mnist, 'model.num_encoder_layers', 0,
     "model.num_encoder_layers=0: a 'classification' model needs at least one layer"),
])
def test_configs_that_would_fail_or_train_nothing_are_refused_before_the_first_step(
    module, field, value, message):
  """The fault campaign: eval_max_batches=0 trained to the first evaluation and died there;
  num_decoder_layers=0 trained an embeddings-only model without a word."""
  from tests import helpers
  c = module.get_config()
  helpers.set_field(c, field, value)
  with pytest.raises(ConfigError, match=message):
    validation.validate(c)


def test_a_sequence_longer_than_the_data_is_a_data_error(tmp_path):
  from transformer.data import DataError
  from transformer.data import lm as lm_data
  (tmp_path / 'tiny_shakespeare').mkdir()
  (tmp_path / 'tiny_shakespeare' / 'input.txt').write_text('First Citizen:\nSpeak.\n')
  with pytest.raises(DataError, match='seq_len=64 is too long .* lower --config.seq_len'):
    lm_data.make_lm_data('tiny_shakespeare', str(tmp_path), seq_len=64)
