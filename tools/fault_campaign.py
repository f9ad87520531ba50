"""A fault campaign against train.py, eval.py and generate.py, counted.

  python -m tools.fault_campaign [--kills=40] [--terms=10] [--flips=40] [--jobs=2]
                                 [--out=DIR] [--quick]

On a tiny Shakespeare model (60 steps, a checkpoint every 10, the last 5 kept)
it trains a reference run, then:

  kill -9    trains again and kills the process at a random moment: anywhere in
             the run, while a checkpoint is being written, or while old ones are
             being removed; resumes; the final checkpoint must equal the
             reference's bit for bit (its saved fingerprints), with steps 20-60
             kept, no leftovers, and one metrics record per (step, split);
  SIGTERM    the same with a polite stop: exit 0 and a line saying where it
             stopped, then an exact resume;
  damage     each kind of damage in DAMAGE to the newest checkpoint, then
             eval.py: it must evaluate step 60 exactly (harmless damage) or fall
             back to step 50 exactly, naming step 60; the same damage to every
             step must be one error message, exit 2, and no traceback; the
             compound case (fingerprint record removed and bits flipped);
  bit flips  one random bit of step 60's files (by byte), then eval.py, judged
             as damage;
  user errors  every case in USER_ERRORS: one line, exit 2, no traceback;
  disk full  a run on a 3 MB tmpfs where this machine may mount one.

It prints the counts and writes them to OUT/campaign.json; the exit status is 1
when anything failed (a silent wrong restore, a lost save, a traceback, an
inexact resume). `--quick` runs a few of each, one user error and no disk-full
run (those have their own integration tests): the integration test runs it.
The damage kinds and user-error cases are also the unit tests' (tests/engine/
test_checkpoint.py, tests/integration/test_cli_errors.py).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------
# Kinds of damage to one step directory (Orbax 0.12's layout).
# ---------------------------------------------------------------------------


def _files(step_dir, pattern):
  found = sorted(p for p in glob.glob(os.path.join(step_dir, pattern), recursive=True)
                 if os.path.isfile(p))
  if not found:
    raise AssertionError(f'nothing matches {pattern} in {step_dir}: the checkpoint layout '
                         'changed')
  return found


def _rewrite(pattern, fn):
  def damage(step_dir):
    for p in _files(step_dir, pattern):
      with open(p, 'rb') as f:
        data = f.read()
      with open(p, 'wb') as f:
        f.write(fn(data))
  return damage


def _delete(pattern):
  return lambda step_dir: [os.remove(p) for p in _files(step_dir, pattern)]


def _rmtree(sub):
  def damage(step_dir):
    if not os.path.isdir(os.path.join(step_dir, sub)):
      raise AssertionError(f'{sub} is not in {step_dir}: the checkpoint layout changed')
    shutil.rmtree(os.path.join(step_dir, sub))
  return damage


def _make_empty(step_dir):
  shutil.rmtree(step_dir)
  os.mkdir(step_dir)


def _flip(data):   # a few flipped bits, as a bad disk or memory does: Orbax reads it without error
  b = bytearray(data)
  for k in (len(b) // 2, len(b) // 2 + 7, len(b) // 3):
    b[k] ^= 0x10
  return bytes(b)


def _drop_fingerprints_and_flip(step_dir):
  """The campaign's compound case: the fingerprint record gone, and flipped bits in the
  largest array file (restored as NaN without a word before 2026-12-04)."""
  meta = os.path.join(step_dir, 'meta', 'metadata')
  with open(meta) as f:
    record = json.load(f)
  record.pop('fingerprints', None)
  with open(meta, 'w') as f:
    json.dump(record, f)
  largest = max(_files(step_dir, DATA), key=os.path.getsize)
  with open(largest, 'r+b') as f:
    f.seek(os.path.getsize(largest) // 2)
    f.write(b'\xff' * 8)


_half = lambda data: data[:len(data) // 2]  # noqa: E731
_garbage = lambda data: np.random.default_rng(len(data)).bytes(max(len(data), 16))  # noqa: E731
_nothing = lambda data: b''  # noqa: E731
DATA = 'state/ocdbt.process_0/d/*'   # the arrays' data files

DAMAGE = {
    'empty step directory': _make_empty,
    'every file empty (power loss)': _rewrite('**/*', _nothing),
    'state/ deleted': _rmtree('state'),
    'meta/ deleted': _rmtree('meta'),
    '_CHECKPOINT_METADATA deleted': _delete('_CHECKPOINT_METADATA'),
    '_CHECKPOINT_METADATA garbage': _rewrite('_CHECKPOINT_METADATA', _garbage),
    '_CHECKPOINT_METADATA empty': _rewrite('_CHECKPOINT_METADATA', _nothing),
    'state/_METADATA deleted': _delete('state/_METADATA'),
    'state/_METADATA truncated': _rewrite('state/_METADATA', _half),
    'state/_METADATA garbage': _rewrite('state/_METADATA', _garbage),
    'state/_sharding garbage': _rewrite('state/_sharding', _garbage),
    'state/array_metadatas deleted': _rmtree('state/array_metadatas'),
    'state/manifest.ocdbt deleted': _delete('state/manifest.ocdbt'),
    'state/manifest.ocdbt garbage': _rewrite('state/manifest.ocdbt', _garbage),
    'process manifest deleted': _delete('state/ocdbt.process_0/manifest.ocdbt'),
    'process manifest truncated': _rewrite('state/ocdbt.process_0/manifest.ocdbt', _half),
    'state/ocdbt.process_0 deleted': _rmtree('state/ocdbt.process_0'),
    'data files deleted': _delete(DATA),
    'data files truncated': _rewrite(DATA, _half),
    'data files garbage': _rewrite(DATA, _garbage),
    'data files: a few flipped bits': _rewrite(DATA, _flip),
    'root b-tree file garbage': _rewrite('state/d/*', _garbage),
    'meta JSON garbage': _rewrite('meta/metadata', _garbage),
    'meta JSON truncated': _rewrite('meta/metadata', _half),
    'meta JSON deleted': _delete('meta/metadata'),
    'meta JSON not an object': _rewrite('meta/metadata', lambda d: b'[1, 2]'),
    'commit_success.txt deleted': _delete('**/commit_success.txt'),
}
COMPOUND = {'fingerprints removed + data bits flipped': _drop_fingerprints_and_flip}

# ---------------------------------------------------------------------------
# User errors: (command line, what the one error line says). {tmp} is a folder
# holding syntax.py, empty.py, raises.py and locked/train.lock/ (make_error_files).
# ---------------------------------------------------------------------------

USER_ERRORS = {
    'misspelled field': (['train.py', '--config.batchsize=3'],
                         'unknown config field: \'batchsize\' Did you mean "batch_size"'),
    'value of the wrong type': (['train.py', '--config.batch_size=abc'],
                                "--config.batch_size=abc: invalid literal for int()"),
    'missing config file': (['train.py', '--config=configs/no_such_config.py'],
                            '--config=configs/no_such_config.py: no such file'),
    'config file with a syntax error': (['train.py', '--config={tmp}/syntax.py'],
                                        'SyntaxError: invalid syntax'),
    'config file without get_config': (['train.py', '--config={tmp}/empty.py'],
                                       'the config file has no get_config() function'),
    'get_config raises': (['train.py', '--config={tmp}/raises.py'], 'RuntimeError: boom'),
    'unknown flag': (['train.py', '--bogus=1'], "Unknown command line flag 'bogus'"),
    'usage error (no --workdir)': (['eval.py'], '--workdir is required'),
    'generate.py --num_tokens=0': (['generate.py', '--workdir={tmp}', '--num_tokens=0'],
                                   '--num_tokens=0 must be a positive integer'),
    '--workdir is a file': (['train.py', '--workdir={tmp}/empty.py'],
                            'is a file, not a directory'),
    'train.lock is a directory': (['train.py', '--workdir={tmp}/locked'],
                                  'cannot take the lock'),
}


def make_error_files(tmp: str) -> None:
  """The files USER_ERRORS' command lines name under {tmp}."""
  with open(os.path.join(tmp, 'syntax.py'), 'w') as f:
    f.write('def get_config(:\n')
  with open(os.path.join(tmp, 'empty.py'), 'w') as f:
    f.write('x = 1\n')
  with open(os.path.join(tmp, 'raises.py'), 'w') as f:
    f.write("def get_config():\n  raise RuntimeError('boom')\n")
  os.makedirs(os.path.join(tmp, 'locked', 'train.lock'), exist_ok=True)


def user_error_command(case: str, tmp: str) -> tuple[list[str], str]:
  """The command line (without the interpreter) of USER_ERRORS[case] and its message."""
  args, message = USER_ERRORS[case]
  args = [a.format(tmp=tmp) for a in args]
  if args[0] == 'train.py' and not any(a.startswith('--workdir') for a in args):
    args.append(f'--workdir={os.path.join(tmp, "w")}')
  return args, message


def one_line_error(returncode: int, stdout: str, stderr: str, message: str = '') -> str | None:
  """None when a user error was reported as it should be; else what is wrong."""
  lines = stderr.strip().splitlines()
  if 'Traceback' in stdout + stderr:
    return 'a traceback: ' + _traceback_tail(stdout + stderr)
  if returncode != 2:
    return f'exit status {returncode}'
  if len(lines) != 1 or not lines[0].startswith('error: '):
    return f'{len(lines)} lines on stderr'
  if message not in lines[0]:
    return f'the message does not say {message!r}: {lines[0][:200]}'
  return None


# ---------------------------------------------------------------------------
# The campaign.
# ---------------------------------------------------------------------------

TRAIN = ['train.py', '--config=configs/lm_shakespeare_char.py',
         '--config.model.d_model=32', '--config.model.num_heads=2', '--config.model.d_ff=64',
         '--config.model.num_decoder_layers=1', '--config.seq_len=32', '--config.batch_size=8',
         '--config.eval_batch_size=8', '--config.eval_max_batches=2',
         '--config.num_train_steps=60', '--config.checkpoint_every_steps=10',
         '--config.eval_every_steps=30', '--config.log_every_steps=10',
         '--config.warmup_steps=5', '--config.keep_checkpoints=5']
KEPT = [20, 30, 40, 50, 60]
EVAL_LINE = re.compile(r'eval validation step (\d+): loss (\S+)')


def _env():
  env = dict(os.environ)
  env.setdefault('TRANSFORMER_DATA_DIR', os.path.join(os.path.dirname(REPO), 'shared', 'data'))
  env['TRANSFORMER_DATA_DIR'] = os.path.abspath(env['TRANSFORMER_DATA_DIR'])
  return env


def _run(args, timeout=600):
  return subprocess.run([sys.executable, *args], cwd=REPO, env=_env(), capture_output=True,
                        text=True, timeout=timeout)


def _train(workdir, timeout=600):
  return _run([*TRAIN, f'--workdir={workdir}'], timeout)


def _fingerprints(workdir, step=60):
  from transformer import checkpoint
  return checkpoint.read_meta(os.path.join(workdir, 'checkpoints'), step).get('fingerprints')


def _eval(workdir, *flags):
  """(returncode, step, loss, stdout, stderr) of eval.py on `workdir`."""
  res = _run(['eval.py', f'--workdir={workdir}', '--config.eval_max_batches=2', *flags])
  found = EVAL_LINE.search(res.stdout)
  step, loss = (int(found.group(1)), found.group(2)) if found else (None, None)
  return res.returncode, step, loss, res.stdout, res.stderr


def _traceback_tail(text: str) -> str:
  """The first traceback in `text`, shortened: what a failed trial's record shows."""
  start = text.index('Traceback')
  return text[start:start + 1500]


def check_run(workdir, reference, extra_steps=()) -> list[str]:
  """What is wrong with a finished (resumed) run against the reference: [] when nothing."""
  problems = []
  ckpt = os.path.join(workdir, 'checkpoints')
  steps = sorted(int(n) for n in os.listdir(ckpt) if n.isdigit())
  # The newest keep_checkpoints of every step saved: the periodic ones and where a
  # SIGTERM stopped a run (`extra_steps`).
  expected = sorted(set(range(10, 61, 10)) | set(extra_steps))[-len(KEPT):]
  if steps != expected:
    problems.append(f'lost or extra saves: steps {steps}, expected {expected}')
  leftovers = [n for n in os.listdir(ckpt) if not n.isdigit() and n != 'deleted']
  if os.path.isdir(os.path.join(ckpt, 'deleted')):
    leftovers += [f'deleted/{n}' for n in os.listdir(os.path.join(ckpt, 'deleted'))]
  if leftovers:
    problems.append(f'leftovers: {leftovers}')
  if _fingerprints(workdir) != reference:
    problems.append('step 60 differs from the reference run (inexact resume)')
  seen = collections.Counter()
  try:
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      for line in f:
        r = json.loads(line)
        seen[(r['step'], r['split'])] += 1
  except (OSError, ValueError) as e:
    problems.append(f'metrics.jsonl unreadable: {e}')
  repeated = sorted(k for k, n in seen.items() if n > 1)
  if repeated:
    problems.append(f'metrics.jsonl repeats {len(repeated)} (step, split), e.g. {repeated[0]}')
  return problems


def _kill_when(proc, workdir, mode, rng, duration) -> str:
  """Sends SIGKILL at the moment `mode` asks for; returns what happened."""
  ckpt = os.path.join(workdir, 'checkpoints')
  deadline = time.monotonic() + (rng.uniform(0.5, duration) if mode == 'random' else duration * 3)
  while proc.poll() is None:
    now = time.monotonic()
    try:
      names = os.listdir(ckpt)
    except OSError:
      names = []
    hit = ((mode == 'random' and now >= deadline) or
           (mode == 'save' and any('tmp' in n for n in names)) or
           (mode == 'removal' and 'deleted' in names and os.listdir(os.path.join(ckpt,
                                                                                 'deleted'))))
    if hit:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
      return 'killed'
    if mode != 'random' and now >= deadline:
      break
    time.sleep(0.0005 if mode != 'random' else 0.01)
  proc.wait()
  return 'finished first'


def kill_trial(i, mode, base, reference, duration, sig=signal.SIGKILL):
  rng = random.Random(i)
  workdir = os.path.join(base, f'{"kill" if sig == signal.SIGKILL else "term"}_{i}')
  proc = subprocess.Popen([sys.executable, *TRAIN, f'--workdir={workdir}'], cwd=REPO, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  problems, extra = [], []
  if sig == signal.SIGKILL:
    what = _kill_when(proc, workdir, mode, rng, duration)
    proc.communicate()
  else:
    time.sleep(rng.uniform(0.5, duration))
    what = 'finished first'
    if proc.poll() is None:
      proc.send_signal(sig)
      what = 'signalled'
    out, err = proc.communicate()
    if what == 'signalled':
      if proc.returncode != 0:
        problems.append(f'SIGTERM: exit status {proc.returncode}')
      if 'Traceback' in out + err:
        problems.append('SIGTERM: a traceback: ' + _traceback_tail(out + err))
      stopped = re.search(r'Stopped at step (\d+)', out + err)
      if stopped:
        extra.append(int(stopped.group(1)))
      elif re.search(r'step 60/60', out + err):
        what = 'signalled after the last step'   # nothing left to stop; exit 0
      elif 'nothing was trained' not in out + err:
        problems.append('SIGTERM: no line saying where it stopped')
  res = _train(workdir)
  if res.returncode != 0:
    problems.append(f'resume: exit status {res.returncode}: {res.stderr.strip()[-300:]}')
  else:
    problems += check_run(workdir, reference, extra)
  shutil.rmtree(workdir, ignore_errors=True)
  return {'trial': i, 'mode': mode, 'what': f'{what} ({mode})', 'problems': problems}


def damage_trial(name, damage, base, ref_dir, expected, steps=(60,)):
  """eval.py after `damage` to `steps` of a copy of the reference run."""
  workdir = os.path.join(base, 'damage_' + re.sub(r'\W+', '_', name) + f'_{len(steps)}')
  shutil.copytree(ref_dir, workdir)
  for s in steps:
    damage(os.path.join(workdir, 'checkpoints', str(s)))
  rc, step, loss, out, err = _eval(workdir)
  problems, outcome = [], None
  stderr_lines = len(err.strip().splitlines())
  if 'Traceback' in out + err:
    problems.append('a traceback: ' + _traceback_tail(out + err))
  if len(steps) == len(KEPT):   # nothing readable: one error message
    outcome = ('error' if rc == 2 else 'intact' if (step, loss) in expected.values() else
               f'exit {rc}')
    if rc == 0 and (step, loss) not in expected.values():
      problems.append(f'silent wrong restore: step {step} loss {loss}')
    elif rc not in (0, 2) or (rc == 2 and not err.startswith('error: ')):
      problems.append(f'exit status {rc}, stderr {err.strip()[:200]!r}')
    if stderr_lines > 2 + len(KEPT):
      problems.append(f'{stderr_lines} lines on stderr')
  elif rc != 0:
    outcome = 'refused'
    problems.append(f'refused (exit {rc}) although older steps are intact: {err.strip()[:200]}')
  elif (step, loss) == expected[60]:
    outcome = 'intact'
  elif (step, loss) == expected[50]:
    outcome = 'fell back'
    if not re.search(r'[Cc]heckpoint step 60\b', out + err):
      problems.append('fell back without naming step 60')
  else:
    outcome = 'silent wrong'
    problems.append(f'silent wrong restore: step {step} loss {loss} (reference: {expected})')
  if rc == 0 and stderr_lines:
    problems.append(f'{stderr_lines} lines on stderr around a correct restore')
  shutil.rmtree(workdir, ignore_errors=True)
  return {'damage': name, 'steps': len(steps), 'outcome': outcome, 'problems': problems}


def flip_damage(seed):
  """One random bit of a step's files (chosen by byte, so by size), as a bad disk does."""
  def damage(step_dir):
    files = _files(step_dir, '**/*')
    sizes = np.array([os.path.getsize(p) for p in files], np.float64)
    rng = np.random.default_rng(seed)
    path = files[rng.choice(len(files), p=sizes / sizes.sum())]
    pos, bit = int(rng.integers(os.path.getsize(path))), int(rng.integers(8))
    with open(path, 'r+b') as f:
      f.seek(pos)
      byte = f.read(1)[0]
      f.seek(pos)
      f.write(bytes([byte ^ (1 << bit)]))
  return damage


def user_error_trial(case, base):
  tmp = os.path.join(base, 'errors_' + re.sub(r'\W+', '_', case))
  os.makedirs(tmp)
  make_error_files(tmp)
  args, message = user_error_command(case, tmp)
  res = _run(args)
  wrong = one_line_error(res.returncode, res.stdout, res.stderr, message)
  return {'case': case, 'problems': [wrong] if wrong else []}


def disk_full_trial(base):
  mount = os.path.join(base, 'disk')
  os.makedirs(mount)
  res = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount],
                       capture_output=True, text=True)
  if res.returncode != 0:
    return {'skipped': f'cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})',
            'problems': []}
  try:
    res = _run([*TRAIN, f'--workdir={mount}/w', '--config.model.d_model=128',
                '--config.model.d_ff=512', '--config.model.num_decoder_layers=2'])
    wrong = one_line_error(res.returncode, res.stdout, res.stderr, 'Not enough disk space')
    leftovers = [n for n in os.listdir(f'{mount}/w/checkpoints') if 'tmp' in n]
    problems = ([wrong] if wrong else []) + ([f'leftovers {leftovers}'] if leftovers else [])
    return {'problems': problems}
  finally:
    subprocess.run(['umount', mount], capture_output=True)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--kills', type=int, default=40)
  p.add_argument('--terms', type=int, default=10)
  p.add_argument('--flips', type=int, default=40)
  p.add_argument('--jobs', type=int, default=2, help='trials run at once')
  p.add_argument('--out', default=None, help='folder to write campaign.json into')
  p.add_argument('--quick', action='store_true', help='a few of each (the integration test)')
  args = p.parse_args(argv)
  kinds = dict(DAMAGE, **COMPOUND)
  all_kinds = DAMAGE
  cases = list(USER_ERRORS)
  if args.quick:
    args.kills, args.terms, args.flips = 3, 1, 2
    kinds = {k: kinds[k] for k in ('data files deleted', 'state/_METADATA garbage',
                                   'meta JSON deleted', *COMPOUND)}
    all_kinds = {k: DAMAGE[k] for k in ('data files deleted', 'root b-tree file garbage')}
    cases = ['misspelled field']   # every case: tests/integration/test_cli_errors.py
  base = tempfile.mkdtemp(prefix='fault_campaign_')
  t0 = time.time()
  try:
    ref_dir = os.path.join(base, 'reference')
    res = _train(ref_dir)
    if res.returncode != 0:
      print(f'error: the reference run failed (exit {res.returncode}): '
            f'{res.stderr.strip()[-500:]}', file=sys.stderr)
      return 2
    reference = _fingerprints(ref_dir)
    # A second uninterrupted run: the signals' random moments span its duration (compiled
    # programs now come from the cache, as in the trials), and it must equal the first.
    t = time.monotonic()
    again = os.path.join(base, 'reference_again')
    res = _train(again)
    duration = time.monotonic() - t
    if res.returncode != 0 or _fingerprints(again) != reference:
      print('error: two uninterrupted runs differ (or the second failed): resumes cannot be '
            'judged bit for bit', file=sys.stderr)
      return 2
    expected = {}
    for s in (60, 50):
      copy = os.path.join(base, f'ref_eval_{s}')
      shutil.copytree(ref_dir, copy)
      rc, step, loss, _, err = _eval(copy, f'--step={s}')
      if rc != 0 or step != s:
        print(f'error: eval.py of the reference step {s} failed: {err.strip()[-500:]}',
              file=sys.stderr)
        return 2
      expected[s] = (step, loss)
    print(f'reference: two runs, the same bits; {duration:.1f} s to train; eval loss at 60 '
          f'{expected[60][1]}, at 50 {expected[50][1]}', flush=True)

    modes = ['random', 'save', 'removal']
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
      for i in range(args.kills):
        jobs.append(('kill -9', pool.submit(kill_trial, i, modes[i % 3], base, reference,
                                            duration)))
      for i in range(args.terms):
        jobs.append(('SIGTERM', pool.submit(kill_trial, i, 'random', base, reference, duration,
                                            signal.SIGTERM)))
      for name, damage in kinds.items():
        jobs.append(('damage (newest step)', pool.submit(damage_trial, name, damage, base,
                                                         ref_dir, expected)))
      for name, damage in all_kinds.items():
        jobs.append(('damage (every step)', pool.submit(damage_trial, name, damage, base,
                                                        ref_dir, expected, KEPT)))
      for i in range(args.flips):
        jobs.append(('bit flip', pool.submit(damage_trial, f'bit flip {i}', flip_damage(i), base,
                                             ref_dir, expected)))
      for case in cases:
        jobs.append(('user error', pool.submit(user_error_trial, case, base)))
      if not args.quick:   # quick: tests/integration/test_disk_full.py has it
        jobs.append(('disk full', pool.submit(disk_full_trial, base)))
      results = collections.defaultdict(list)
      t_start = time.monotonic()
      for k, (family, job) in enumerate(jobs, 1):
        r = job.result()
        results[family].append(r)
        spent = time.monotonic() - t_start
        eta = spent / k * (len(jobs) - k)
        what = r.get('outcome') or r.get('what') or r.get('skipped') or 'ok'
        print(f'[{k}/{len(jobs)}] {family}: {"FAIL " + str(r) if r["problems"] else what}  '
              f'({spent:.0f} s, ETA {eta:.0f} s)', flush=True)
  finally:
    shutil.rmtree(base, ignore_errors=True)

  summary = {'seconds': round(time.time() - t0), 'families': {}}
  print(f'\n{"family":24s} {"trials":>6s} {"failed":>6s}  outcomes')
  for family, rs in results.items():
    outcomes = collections.Counter(r.get('outcome') or r.get('what') or
                                   ('skipped' if r.get('skipped') else 'ok') for r in rs)
    failed = sum(bool(r['problems']) for r in rs)
    summary['families'][family] = {'trials': len(rs), 'failed': failed,
                                   'outcomes': dict(outcomes), 'results': rs}
    print(f'{family:24s} {len(rs):6d} {failed:6d}  ' +
          ', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())))
  every = [r for rs in results.values() for r in rs]
  problems = [p for r in every for p in r['problems']]
  summary['silent_wrong_restores'] = sum('silent wrong' in p for p in problems)
  summary['lost_saves'] = sum('lost or extra saves' in p for p in problems)
  summary['tracebacks'] = sum('traceback' in p for p in problems)
  summary['inexact_resumes'] = sum('inexact resume' in p for p in problems)
  summary['failed_trials'] = sum(bool(r['problems']) for r in every)
  print(f'\n{len(every)} trials in {summary["seconds"]} s: '
        f'{summary["silent_wrong_restores"]} silent wrong restores, '
        f'{summary["lost_saves"]} lost saves, {summary["tracebacks"]} tracebacks, '
        f'{summary["inexact_resumes"]} inexact resumes, {summary["failed_trials"]} failed trials')
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'campaign.json'), 'w') as f:
      json.dump(summary, f, indent=1)
    print(f'details: {os.path.join(args.out, "campaign.json")}')
  return 1 if summary['failed_trials'] else 0


if __name__ == '__main__':
  sys.exit(main())
