"""Defaults shared by every experiment config: the library's schema (transformer/config_schema.py).

An experiment file does `config = base.get_config()` and overrides what it
needs. Every field can be overridden on the command line:
`python train.py --config=configs/NAME.py --config.batch_size=64`.
"""

from transformer.config_schema import get_config, model_fields  # noqa: F401  (re-exported)
