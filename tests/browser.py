"""Headless Chromium for the browser tests: Debian's `chromium`, installed when absent.

`chromium_path()` returns /usr/bin/chromium, installing Debian's package first when it
is missing and this is root on a machine with apt-get (CI); elsewhere the browser tests
are skipped with a message that says how to run them. `launch(playwright)` starts it
headless through Playwright (pinned in requirements.txt; Playwright never downloads a
browser of its own here), with no background networking: nothing may leave the page.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM = '/usr/bin/chromium'
# Root needs --no-sandbox; the rest keeps Chromium off the (closed) network.
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run',
        '--disable-default-apps', '--disable-extensions']


def chromium_path() -> str:
  found = shutil.which('chromium') or (CHROMIUM if os.path.exists(CHROMIUM) else None)
  if found:
    return found
  if os.geteuid() != 0 or not shutil.which('apt-get'):
    pytest.skip('no Chromium: install Debian\'s chromium package (apt-get install chromium) '
                'to run the browser tests')
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  log = ''
  for cmd in (['apt-get', 'install', '-y', '-q', 'chromium'], ['apt-get', 'update', '-q'],
              ['apt-get', 'install', '-y', '-q', 'chromium']):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    log += p.stdout[-1000:] + p.stderr[-1000:]
    if os.path.exists(CHROMIUM):
      return CHROMIUM
  pytest.fail(f'apt-get could not install chromium:\n{log}')


def launch(playwright):
  return playwright.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
