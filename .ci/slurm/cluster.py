#!/usr/bin/env python3
"""A single-node SLURM cluster on this machine, for CI and local testing.

    python .ci/slurm/cluster.py install      # apt-get slurm-wlm munge (root)
    python .ci/slurm/cluster.py start [DIR]  # munged + slurmctld + slurmd, PIDs in DIR/pids.json
    python .ci/slurm/cluster.py status [DIR]
    python .ci/slurm/cluster.py stop [DIR]   # stop exactly the daemons that `start` started, by PID

The config must live at /etc/slurm/slurm.conf: snakemake-executor-plugin-slurm strips every
SLURM_* variable (SLURM_CONF too) before its inner srun. A file there that this script did not
write is never overwritten (start fails with a clear message instead). Daemons that were
already running (a real site) are reused and never stopped. State, logs and spool files go to
DIR (default /tmp/twistox-slurm).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by twistox .ci/slurm/cluster.py"
DEFAULT_DIR = Path(os.environ.get("TWISTOX_SLURM_DIR", "/tmp/twistox-slurm"))
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "debug"


class Unavailable(RuntimeError):
    """SLURM cannot be installed or started here (the reason is the message)."""


def _run(cmd: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def installed() -> bool:
    return all(shutil.which(x) for x in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo"))


def install() -> None:
    """apt-get install slurm-wlm munge (Debian/Ubuntu, root). Raises Unavailable with the reason."""
    if installed():
        return
    if os.geteuid() != 0:
        raise Unavailable("SLURM is not installed and installing it needs root (apt-get install slurm-wlm munge)")
    if not shutil.which("apt-get"):
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends", "slurm-wlm", "munge"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0:  # package lists may be stale or absent: update once and retry
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=600)
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if r.returncode != 0 or not installed():
        raise Unavailable(f"apt-get install slurm-wlm munge failed: {r.stderr.strip()[-500:]}")


def _mem_mb() -> int:
    with open("/proc/meminfo") as fh:
        kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal"))
    return int(kb / 1024 * 0.8)  # leave room for the OS and the Snakemake controller


def slurm_conf(state: Path, host: str, cpus: int, mem_mb: int) -> str:
    """Minimal one-node slurm.conf: no accounting, no cgroups, consumable cores + memory."""
    return f"""{MARKER}
ClusterName=twistox
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/d
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=3600
KillWait=5
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _alive(pid: int, name: str) -> bool:
    """PID runs the daemon `name` (not a zombie, not a recycled PID)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return Path(cmd).name == name and state not in ("Z", "X")


def _running(name: str) -> bool:
    r = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return any(_alive(int(pid), name) for pid in r.stdout.split())


def _reap(pid: int) -> None:
    try:  # our own child (started from this process): collect it so no zombie is left
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _munge_ok() -> bool:
    if not shutil.which("munge"):
        return False
    p1 = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    if p1.returncode != 0:
        return False
    p2 = subprocess.run(["unmunge"], input=p1.stdout, capture_output=True, timeout=10)
    return p2.returncode == 0


def _spawn(cmd: list[str], log: Path) -> int:
    # New session: the daemons outlive this script and are not hit by a Ctrl-C on the caller.
    with open(log, "ab") as fh:
        p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    return p.pid


def _wait(pred, timeout: float, what: str) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return
        time.sleep(0.5)
    raise Unavailable(f"timed out after {timeout:.0f} s waiting for {what}")


def _node_state() -> str:
    r = _run(["sinfo", "-h", "-N", "-o", "%T"], check=False, timeout=10)
    return r.stdout.strip().split("\n")[0] if r.returncode == 0 else ""


def start(state: Path = DEFAULT_DIR) -> dict:
    """Start munged, slurmctld and slurmd (those not already running); record their PIDs."""
    if os.geteuid() != 0:
        raise Unavailable("starting slurmctld/slurmd needs root")
    if not installed():
        raise Unavailable("SLURM is not installed (run: python .ci/slurm/cluster.py install)")
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    if (state / "pids.json").exists():
        pids = {k: v for k, v in json.loads((state / "pids.json").read_text()).items() if _alive(v, k)}
    host = socket.gethostname().split(".")[0]
    text = slurm_conf(state, host, os.cpu_count() or 1, _mem_mb())
    if not _running("slurmctld"):  # a running controller (a real site, an earlier start) keeps its config
        if CONF.exists() and MARKER not in CONF.read_text():
            raise Unavailable(f"{CONF} exists and was not written by twistox; not overwriting it")
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(text)
    for sub in ("ctld", "d"):
        (state / sub).mkdir(exist_ok=True)

    if not _munge_ok():
        munge = pwd.getpwnam("munge")
        for d in ("/etc/munge", "/run/munge", "/var/log/munge", "/var/lib/munge"):
            Path(d).mkdir(parents=True, exist_ok=True)
            os.chown(d, munge.pw_uid, munge.pw_gid)
        key = Path("/etc/munge/munge.key")
        if not key.exists():  # Debian's postinst normally creates it
            _run(["mungekey", "--create", f"--keyfile={key}"])
        os.chown(key, munge.pw_uid, munge.pw_gid)
        os.chmod(key, 0o600)
        # setpriv execs (no fork), so the PID we record is munged's own
        pids["munged"] = _spawn(["setpriv", f"--reuid={munge.pw_uid}", f"--regid={munge.pw_gid}", "--init-groups",
                                 "munged", "--foreground", "--force"], state / "munged.out")
        _wait(_munge_ok, 20, "munged")
    if not _running("slurmctld"):
        pids["slurmctld"] = _spawn(["slurmctld", "-D", "-i"], state / "slurmctld.out")
    _wait(lambda: _run(["scontrol", "ping"], check=False, timeout=10).stdout.count("UP") > 0, 30, "slurmctld")
    if not _running("slurmd"):
        pids["slurmd"] = _spawn(["slurmd", "-D"], state / "slurmd.out")
    (state / "pids.json").write_text(json.dumps(pids))

    def idle() -> bool:
        s = _node_state()
        if s.startswith(("down", "drain", "unknown")) or s.endswith("*") and "down" in s:
            _run(["scontrol", "update", f"nodename={host}", "state=resume"], check=False, timeout=10)
        return s.startswith(("idle", "mixed", "allocated"))

    try:
        _wait(idle, 60, f"node {host} to become idle (state {_node_state()!r})")
    except Unavailable:
        stop(state)
        raise
    return pids


def stop(state: Path = DEFAULT_DIR) -> list[str]:
    """Stop the daemons recorded by `start` (by PID; never by name); remove our slurm.conf."""
    state = Path(state)
    f = state / "pids.json"
    pids = json.loads(f.read_text()) if f.exists() else {}
    stopped = []
    for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
        pid = pids.get(name)
        if pid and _alive(pid, name):
            os.kill(pid, signal.SIGTERM)
            t0 = time.time()
            while _alive(pid, name) and time.time() - t0 < 15:
                _reap(pid)
                time.sleep(0.2)
            if _alive(pid, name):
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
            _reap(pid)
            stopped.append(f"{name}[{pid}]")
    if f.exists():
        f.unlink()
    if pids and CONF.exists() and MARKER in CONF.read_text():
        CONF.unlink()
    return stopped


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("install", "start", "stop", "status"):
        print(__doc__)
        return 2
    state = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    try:
        if argv[0] == "install":
            install()
            print("SLURM installed:", shutil.which("slurmctld"))
        elif argv[0] == "start":
            print("started:", json.dumps(start(state)), "state:", state)
            print(_run(["sinfo"], check=False).stdout)
        elif argv[0] == "stop":
            print("stopped:", ", ".join(stop(state)) or "nothing (no daemons recorded by start)")
        else:
            print(_run(["sinfo"], check=False).stdout or "slurmctld not reachable")
    except Unavailable as exc:
        print(f"SLURM unavailable: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
