"""The shape of the package: imports go one way, and importing the library changes nothing.

- No import cycle among the modules of `transformer/` (every import statement
  counts, at module level or inside a function).
- No module of the library imports the tools package (`tools/`) or an entry
  point: the direction is entry points -> tools -> library.
- No import of a library module is hidden inside a function (a lazy import is
  how cycles get dodged rather than removed).
- Importing every library module leaves the process as it was: no malloc
  tuning, no plotting backend chosen.
"""

import ast
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = REPO / 'transformer'
OUTSIDE = ('tools', 'train', 'eval', 'benchmarks', 'configs', 'tests')


def module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def library_modules() -> dict[str, pathlib.Path]:
  return {module_name(p): p for p in sorted(LIBRARY.rglob('*.py'))}


def _resolve(name: str, modules) -> str:
  """`name` if it is a module of the library, else the package it is an attribute of."""
  while name and name not in modules:
    name = name.rpartition('.')[0]
  return name


def imports_of(path: pathlib.Path, modules, this: str = '') -> list[tuple[str, int, bool]]:
  """(imported module, line, inside a function or class) for every import in `path`."""
  tree = ast.parse(path.read_text(), str(path))
  this = this or module_name(path)
  package = this if path.name == '__init__.py' else this.rpartition('.')[0]
  out = []

  def visit(node, nested):
    for child in ast.iter_child_nodes(node):
      inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
      if isinstance(child, ast.Import):
        out.extend((a.name, child.lineno, nested) for a in child.names)
      elif isinstance(child, ast.ImportFrom):
        base = child.module or ''
        if child.level:
          anchor = package.split('.')[:len(package.split('.')) - child.level + 1]
          base = '.'.join(anchor + ([base] if base else []))
        for a in child.names:
          full = f'{base}.{a.name}'
          out.append((full if _resolve(full, modules) == full else base, child.lineno, nested))
      visit(child, inner)

  visit(tree, False)
  return out


def import_graph():
  modules = library_modules()
  graph, nested, outside = {}, [], []
  for name, path in modules.items():
    graph[name] = set()
    for target, line, inner in imports_of(path, modules):
      top = target.split('.')[0]
      where = f'{path.relative_to(REPO)}:{line}'
      if top in OUTSIDE:
        outside.append(f'{where} imports {target}')
      if top != 'transformer':
        continue
      resolved = _resolve(target, modules)
      if resolved and resolved != name:
        graph[name].add(resolved)
        if inner:
          nested.append(f'{where} imports {resolved} inside a function')
  return graph, nested, outside


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as [a, b, ..., a], or None."""
  state: dict[str, int] = {}   # 1: on the current path, 2: done
  path: list[str] = []

  def dfs(node):
    state[node] = 1
    path.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return path[path.index(nxt):] + [nxt]
      if nxt not in state:
        found = dfs(nxt)
        if found:
          return found
    path.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = dfs(node)
      if found:
        return found
  return None


def test_find_cycle_finds_one_and_only_one():
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': set()}) is None
  assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']


def test_imports_are_read_inside_functions_and_resolved_to_modules(tmp_path):
  modules = library_modules()
  src = LIBRARY / 'engine' / 'loop.py'
  found = {t for t, _, _ in imports_of(src, modules)}
  assert {'transformer.tasks', 'transformer.workdir', 'transformer.checkpoint'} <= found
  # A lazy import inside a function is seen and marked nested.
  fake = tmp_path / 'fake.py'
  fake.write_text('import os\n\ndef f():\n  from transformer import models\n')
  assert imports_of(fake, modules, 'transformer.fake') == [('os', 1, False),
                                                           ('transformer.models', 4, True)]


def test_no_import_cycle_in_the_library():
  graph, _, _ = import_graph()
  assert len(graph) > 20   # the walk found the library
  cycle = find_cycle(graph)
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_the_library_never_imports_tools_or_entry_points():
  _, _, outside = import_graph()
  assert not outside, '\n'.join(outside)


def test_no_library_import_hides_inside_a_function():
  _, nested, _ = import_graph()
  assert not nested, '\n'.join(nested)


def test_importing_the_library_changes_nothing_in_the_process():
  probe = r'''
import importlib, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import transformer
names = [m.name for m in pkgutil.walk_packages(transformer.__path__, 'transformer.')]
for name in names:
  importlib.import_module(name)
from transformer import host
print(len(names), host._done, 'matplotlib' in sys.modules)
'''
  out = subprocess.run([sys.executable, '-c', probe, str(REPO)], check=True, capture_output=True,
                       text=True, env=dict(os.environ, JAX_PLATFORMS='cpu')).stdout.split()
  assert int(out[0]) > 20
  assert out[1] == 'None', 'importing the library tuned malloc'
  assert out[2] == 'False', 'importing the library imported matplotlib'


def test_ci_runs_the_readme_test_command_exactly():
  """CI once passed only because .ci/run made the data path absolute, while the README's
  relative form failed a test from a fresh clone: the two must be the same line."""
  readme = (REPO / 'README.md').read_text()
  commands = [line.split('  #')[0].strip() for line in readme.splitlines()
              if line.rstrip().endswith('# run the tests')]
  assert len(commands) == 1, 'README.md must give one test command marked "# run the tests"'
  ci = [line.strip() for line in (REPO / '.ci' / 'run').read_text().splitlines()]
  assert commands[0] in ci
  assert 'TRANSFORMER_DATA_DIR=../shared/data' in commands[0]   # the relative form a user types


def documented_imports() -> dict[str, set[str]]:
  """docs/ARCHITECTURE.md's table of library modules: {module or package: what it may import}.

  Columns: names (0-23), what they hold (24-75), the library modules they may import (76-;
  'leaf'/'leaves': none). A row whose name column is empty, or follows a name ending in a
  comma, continues the row above.
  """
  text = (REPO / 'docs' / 'ARCHITECTURE.md').read_text()
  block = text.split('Inside the library, from the leaves up')[1].split('```')[1]
  rows: list[list[str]] = []
  for line in block.strip('\n').splitlines():
    name, deps = line[:24].strip(), line[76:].strip()
    if name and not (rows and rows[-1][0].endswith(',')):
      rows.append([name, deps])
    else:
      rows[-1][0] += ' ' + name if name else ''
      rows[-1][1] += ' ' + deps if deps else ''
  table = {}
  for names, deps in rows:
    allowed = set() if deps in ('leaf', 'leaves') else {
        d.strip() for d in deps.split(',') if d.strip()}
    for name in names.split(','):
      table[name.strip().rstrip('/')] = allowed
  return table


def _table_key(module: str) -> str:
  """'transformer.data.lm' -> 'data' (a package's row), 'transformer.workdir' -> 'workdir'."""
  parts = module.split('.')[1:]
  return parts[0] if parts else ''


def test_every_library_module_imports_only_what_architecture_md_documents():
  table = documented_imports()
  assert {'errors', 'workdir', 'engine', 'tasks', 'data'} <= set(table)
  graph, _, _ = import_graph()
  undocumented, wrong = set(), []
  for module, targets in graph.items():
    key = _table_key(module)
    if not key:          # transformer/__init__.py
      continue
    if key not in table:
      undocumented.add(key)
      continue
    for target in targets:
      tkey = _table_key(target)
      if tkey != key and tkey not in table[key]:
        wrong.append(f'{module} imports {target}: not in its row ({sorted(table[key])})')
  assert not undocumented, f'modules missing from docs/ARCHITECTURE.md: {sorted(undocumented)}'
  assert not wrong, '\n'.join(wrong)
  assert not set(table) - {_table_key(m) for m in graph}, 'documented modules that do not exist'
