"""Tools beside the library: results records and reports, sweeps, figures, checkpoint averaging.

They use `transformer` (the library); the library never imports them. Each
module is also a command: `python -m tools.report`, `python -m tools.sweep`,
`python -m tools.visualize`, `python -m tools.average`.
"""
