"""Shared by the benchmark scripts: printing a result dict and writing it as JSON."""

import json


def print_results(res: dict, json_out: str = '') -> None:
  """Prints `res` as aligned `key  value` lines (floats to 3 decimals); writes JSON if asked."""
  width = max(len(k) for k in res)
  for k, v in res.items():
    print(f'{k:<{width}}  {v:,.3f}' if isinstance(v, float) else f'{k:<{width}}  {v}')
  if json_out:
    with open(json_out, 'w') as f:
      json.dump(res, f, indent=2)
