"""A real single-node SLURM cluster on this machine, for the SLURM test tier.

`Cluster(root).start()` installs Debian's `slurm-wlm` and `munge` when they are missing
(root with apt-get, as in CI; elsewhere the tier is skipped with a message that says how
to run it), writes a `slurm.conf` for this host under ROOT (so /etc/slurm is never
touched: every command finds it through $SLURM_CONF; the daemons' ports are free ones, so
that a cluster left running elsewhere on this machine is never the one tested), starts `munged` (on its own socket
under ROOT), `slurmctld` and `slurmd`, and waits until `sinfo` shows the node idle.
`stop()` stops every daemon it started. The settings are the ones that work in a
container: process tracking without cgroups, no task plugin, consumable CPUs, no
accounting.

By hand:  python tests/slurm_cluster.py /tmp/slurm   (starts it and prints the export to use;
          Ctrl-C stops it)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

PACKAGES = ['slurm-wlm', 'munge']
DAEMONS = ['munged', 'slurmctld', 'slurmd']


class Unavailable(RuntimeError):
  """SLURM cannot be installed or started here; the message says why."""


def install() -> None:
  if all(shutil.which(d) for d in DAEMONS):
    return
  if os.geteuid() != 0 or not shutil.which('apt-get'):
    raise Unavailable('no SLURM daemons: install Debian\'s slurm-wlm and munge '
                      '(apt-get install slurm-wlm munge) to run the SLURM tier')
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  log = ''
  for cmd in (['apt-get', 'install', '-y', '-q'] + PACKAGES, ['apt-get', 'update', '-q'],
              ['apt-get', 'install', '-y', '-q'] + PACKAGES):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    log += p.stdout[-1000:] + p.stderr[-1000:]
    if all(shutil.which(d) for d in DAEMONS):
      return
  raise Unavailable(f'apt-get could not install {" ".join(PACKAGES)}:\n{log}')


def _memory_mb() -> int:
  with open('/proc/meminfo') as f:
    for line in f:
      if line.startswith('MemTotal:'):
        return int(line.split()[1]) // 1024 - 1024     # leave 1 GiB to the system
  return 1024


def _free_ports(n: int) -> list[int]:
  socks = [socket.socket() for _ in range(n)]
  try:
    for s in socks:
      s.bind(('', 0))
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


def slurm_conf(root: str, node: str, cpus: int, memory_mb: int, munge_socket: str,
               ports: list[int]) -> str:
  return f"""\
ClusterName=transformer-tests
SlurmctldHost={node}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
KillWait=10
MinJobAge=600
NodeName={node} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


class Cluster:
  """A single-node SLURM cluster whose files all live under `root`."""

  def __init__(self, root: str):
    self.root = os.path.abspath(root)
    self.node = socket.gethostname().split('.')[0]
    self.conf = os.path.join(self.root, 'slurm.conf')
    self.munge_socket = os.path.join(self.root, 'munge', 'munge.socket.2')
    self.env = dict(os.environ, SLURM_CONF=self.conf)
    self._procs: list[str] = []         # pid files of the daemons started here

  def run(self, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True,
                          timeout=timeout)

  def start(self, timeout: float = 90) -> 'Cluster':
    install()
    for d in ('state', 'spool', 'munge'):
      os.makedirs(os.path.join(self.root, d), exist_ok=True)
    os.chmod(os.path.join(self.root, 'munge'), 0o755)
    with open(self.conf, 'w') as f:
      f.write(slurm_conf(self.root, self.node, os.cpu_count() or 1, _memory_mb(),
                         self.munge_socket, _free_ports(2)))
    key = '/etc/munge/munge.key'
    if not os.path.exists(key):
      subprocess.run(['mungekey', '--create', '--keyfile', key], check=True, timeout=60)
    munge_pid = os.path.join(self.root, 'munge', 'munged.pid')
    self._daemon(['munged', '--force', f'--socket={self.munge_socket}',
                  f'--pid-file={munge_pid}', f'--log-file={self.root}/munged.log',
                  f'--seed-file={self.root}/munge/munged.seed'], munge_pid)
    self._daemon(['slurmctld', '-f', self.conf], os.path.join(self.root, 'slurmctld.pid'))
    self._daemon(['slurmd', '-f', self.conf], os.path.join(self.root, 'slurmd.pid'))
    deadline = time.time() + timeout
    state = ''
    while time.time() < deadline:
      p = self.run('sinfo', '-h', '-N', '-o', '%t', timeout=30)
      state = (p.stdout + p.stderr).strip()
      if p.returncode == 0 and state in ('idle', 'mix', 'alloc'):
        return self
      time.sleep(0.5)
    logs = '\n'.join(self._tail(n) for n in ('slurmctld.log', 'slurmd.log', 'munged.log'))
    self.stop()
    raise Unavailable(f'the SLURM node did not come up within {timeout:.0f} s '
                      f'(sinfo: {state!r}):\n{logs}')

  def _daemon(self, cmd: list[str], pid_file: str) -> None:
    p = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
      self.stop()
      raise Unavailable(f'{" ".join(cmd)} failed (exit {p.returncode}): '
                        f'{(p.stderr or p.stdout).strip()[-2000:]}')
    self._procs.append(pid_file)
    deadline = time.time() + 30
    while not os.path.exists(pid_file) and time.time() < deadline:
      time.sleep(0.1)

  def _tail(self, name: str) -> str:
    path = os.path.join(self.root, name)
    if not os.path.exists(path):
      return f'({name}: none)'
    with open(path, errors='replace') as f:
      return f'--- {name}\n' + ''.join(f.readlines()[-15:])

  def stop(self) -> None:
    """Cancels every job and stops the daemons started here (newest first)."""
    if self._procs:
      self.run('scancel', '--full', '-u', 'root', timeout=30) if shutil.which('scancel') else None
    for pid_file in reversed(self._procs):
      try:
        with open(pid_file) as f:
          pid = int(f.read().split()[0])
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
          os.kill(pid, 0)
          time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
      except (OSError, ValueError, IndexError):
        pass
    self._procs = []


if __name__ == '__main__':
  cluster = Cluster(sys.argv[1] if len(sys.argv) > 1 else '/tmp/slurm').start()
  print(f'SLURM is up: export SLURM_CONF={cluster.conf}   (Ctrl-C stops it)', flush=True)
  try:
    signal.pause()
  except KeyboardInterrupt:
    pass
  finally:
    cluster.stop()
