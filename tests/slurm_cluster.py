"""A real, throw-away single-node Slurm cluster on localhost for the test suite.

``SlurmCluster(workdir)`` starts, as root and without systemd:

    munged  ->  mariadbd  ->  slurmdbd  (+ ``sacctmgr -i add cluster``)  ->  slurmctld  ->  slurmd -N localhost

each directly as a child process in the foreground, and polls each one for
readiness (``munge -n | unmunge``, ``mysqladmin ping``, ``sacctmgr -n show
cluster``, ``scontrol ping``, ``sinfo -h -N -o %T`` = idle) instead of sleeping.
A daemon that does not come up in time raises ``RuntimeError`` with the tail of
its log. On exit (also after a start-up that failed half-way) the daemons are
stopped in reverse order by the PIDs in their pid files (SIGTERM, wait,
SIGKILL), so nothing is left running.

Accounting (slurmdbd + MariaDB) is not optional: without it ``sacct`` fails, and
submitit cannot notice a job that died without writing its result (kill -9,
OOM, scancel) -- it would wait forever.

Where things live
-----------------
Everything root-owned -- ``slurm.conf``, ``slurmdbd.conf`` (mode 600, slurmdbd
refuses anything else), StateSaveLocation, SlurmdSpoolDir, logs, pid files -- is
under ``workdir``.

munged and mariadbd drop privileges (users ``munge`` and ``mysql``), so their
directories (munge socket/pid/log/seed; the MariaDB data dir, socket, pid and
error log) must be reachable by those users. pytest's ``tmp_path`` lives under
``/tmp/pytest-of-root`` which pytest keeps at mode 700, so it usually is not.
Therefore these go to ``workdir/run`` when every ancestor of ``workdir`` is
traversable by others, and otherwise to a fresh ``/tmp/slurm-cluster-XXXX``
directory (``workdir/run`` is then a symlink to it); that directory is removed
on exit, after its logs were copied to ``workdir/logs``.

MariaDB uses its *own* data dir, initialised for every start with
``mariadb-install-db`` (about half a second), not the system one: the
accounting database then starts empty every time, so job ids (which restart at
1 with a fresh StateSaveLocation) never collide with records of an earlier run,
and nothing outside ``workdir`` (or the temporary run dir) is written. It listens
on 127.0.0.1 at a free port and on its own socket; slurmdbd connects over TCP as
a dedicated ``slurm`` user with a password (root is socket-authenticated only).

munged also gets its own socket (slurm.conf/slurmdbd.conf ``AuthInfo=socket=``),
so a system munged, or one left behind by a crashed run, does not interfere. It
uses the system key ``/etc/munge/munge.key``, created if missing.

All four TCP ports (slurmctld, slurmd, slurmdbd, mariadb) are picked free at
start-up. Job ids start at a random ``FirstJobId`` (see ``first_job_id``) so that
they do not repeat those of an earlier run. Starting a second cluster in the same workdir first kills daemons
listed in stale pid files there (only if the process really is that daemon) and
wipes the previous state.

Clients (``sbatch``, ``sacct``, ``srun`` inside jobs, submitit, Hydra's
submitit launcher) only need ``SLURM_CONF`` -- see ``SlurmCluster.env`` and
``SlurmCluster.environ()``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from sim.runs.sweep import pid_alive as _pid_alive

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
REQUIRED_BINARIES = (
    "munged", "munge", "unmunge", "mungekey",
    "mariadbd", "mariadb-install-db", "mysqladmin", "mariadb",
    "slurmdbd", "slurmctld", "slurmd",
    "sacctmgr", "sbatch", "sacct", "squeue", "scontrol", "sinfo", "scancel",
)
REQUIRED_USERS = ("munge", "mysql")
MUNGE_KEY = Path("/etc/munge/munge.key")
TERMINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
})
INSTALL_HINT = "run `bash tests/slurm/install.sh` (as root) to install Slurm"


def _search_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(parts + [d for d in SBIN_DIRS if d not in parts])


def _which(name: str) -> str | None:
    return shutil.which(name, path=_search_path())


def slurm_available() -> tuple[bool, str]:
    """Whether a SlurmCluster can be started here; if not, why not."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return False, "a local Slurm cluster needs Linux"
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return False, f"Slurm/munge/MariaDB binaries missing ({', '.join(missing)}); {INSTALL_HINT}"
    if os.geteuid() != 0:
        return False, "a local Slurm cluster must be started as root (slurmd, munged, mariadbd)"
    for user in REQUIRED_USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return False, f"system user {user!r} missing; {INSTALL_HINT}"
    return True, "slurm, munge and mariadb are installed and we are root"


# --------------------------------------------------------------------------- helpers


def _free_ports(n: int) -> list[int]:
    """n distinct TCP ports that are free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return f"--- last {min(lines, len(text))} lines of {path} ---\n" + "\n".join(text[-lines:])


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _traversable_by_others(path: Path) -> bool:
    for p in [path, *path.parents]:
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _chown(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _mkdir(path: Path, user: str = "root", mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    _chown(path, user)
    return path


class _Daemon:
    """One started daemon: its process, pid file and log."""

    def __init__(self, name: str, proc: subprocess.Popen, pid_file: Path, log: Path):
        self.name, self.proc, self.pid_file, self.log = name, proc, pid_file, log


# --------------------------------------------------------------------------- cluster


class SlurmCluster:
    """Single-node Slurm cluster (with accounting) rooted at ``workdir``.

    Use as ``with SlurmCluster(workdir) as cluster: ...``. Attributes once started:

    - ``partition``: the only partition, ``"debug"`` (default, MaxTime=INFINITE)
    - ``cluster_name``: the Slurm ClusterName
    - ``slurm_conf``: path of the generated slurm.conf
    - ``env``: environment variables a client subprocess needs (``SLURM_CONF``)
    - ``environ()``: ``os.environ`` + ``env``, minus inherited ``SLURM_*`` job variables
    - ``cpus``, ``memory_mb``: what the node offers
    - ``squeue()``, ``sacct_jobs()``, ``jobs_since()``, ``job_state()``, ``wait_for_jobs()``: job queries
    - ``logs``: daemon name -> log file
    """

    partition = "debug"

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        cluster_name: str = "testcluster",
        start_timeout: float = 30.0,
        min_job_age: int = 10,
        memory_margin_mb: int = 1024,
    ):
        self.workdir = Path(workdir).resolve()
        self.cluster_name = cluster_name
        self.start_timeout = start_timeout
        self.min_job_age = min_job_age
        self.memory_margin_mb = memory_margin_mb

        w = self.workdir
        self.conf_dir = w / "etc"
        self.slurm_conf = self.conf_dir / "slurm.conf"
        self.slurmdbd_conf = self.conf_dir / "slurmdbd.conf"
        self.state_dir = w / "state"
        self.spool_dir = w / "spool"
        self.log_dir = w / "logs"
        self.pid_dir = w / "pids"
        self.run_link = w / "run"  # dir or symlink holding munge/ and mysql/
        self.run_dir: Path | None = None
        self._own_tmp_run_dir = False

        self.cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.memory_mb = 0
        self.first_job_id = 1
        self.ports: dict[str, int] = {}
        self.logs: dict[str, Path] = {}
        self._daemons: list[_Daemon] = []
        self._db_password = secrets.token_hex(12)
        self._last_probe = ""
        self.started = False

    # ---- public API --------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Variables to add to a subprocess's environment to use this cluster."""
        return {"SLURM_CONF": str(self.slurm_conf)}

    def environ(self, **extra: str) -> dict[str, str]:
        """A full environment for ``subprocess`` calls: os.environ + ``env`` (+ extra).

        Inherited ``SLURM_*`` variables (e.g. when the tests themselves run in a
        Slurm job) are dropped so that they cannot confuse sbatch/submitit.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
        env.update(self.env)
        env.update(extra)
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """Run a Slurm client command (e.g. ``cluster.run("sbatch", ...)``) against this cluster."""
        return self._cmd(list(args), check=check, timeout=timeout)

    def squeue(self) -> list[dict[str, str]]:
        """Jobs slurmctld still knows: [{'job_id', 'name', 'state'}] (state e.g. PENDING, RUNNING)."""
        out = self._cmd(["squeue", "-h", "-a", "-t", "all", "-o", "%i|%j|%T"]).stdout
        jobs = []
        for line in out.splitlines():
            if line.strip():
                job_id, name, state = line.split("|", 2)
                jobs.append({"job_id": job_id.strip(), "name": name, "state": state.strip()})
        return jobs

    def sacct_jobs(self, job_ids: Iterable[str | int] | None = None) -> list[dict[str, str]]:
        """Accounting records (allocations only, -X):
        [{'job_id', 'name', 'state', 'exit_code', 'partition'}].

        ``state`` is the first word of sacct's State (``CANCELLED by 0`` -> ``CANCELLED``).
        Array tasks appear as ``<id>_<task>``. Without ``job_ids`` this lists all
        jobs whose record is complete; a job that ran very briefly may be known
        to ``sacct -j`` (state already right, name ``allocation``, partition
        empty) a moment before its full record arrives: ``wait_for_jobs`` waits
        for that.
        """
        cmd = ["sacct", "-n", "-P", "-X", "-a", "-S", "2000-01-01", "-o", "JobID,JobName,State,ExitCode,Partition"]
        if job_ids is not None:
            ids = [str(j) for j in job_ids]
            if not ids:
                return []
            cmd += ["-j", ",".join(ids)]
        out = self._cmd(cmd).stdout
        jobs = []
        for line in out.splitlines():
            if not line.strip():
                continue
            job_id, name, state, exit_code, partition = line.split("|", 4)
            jobs.append({
                "job_id": job_id,
                "name": name,
                "state": state.split()[0] if state.strip() else "",
                "exit_code": exit_code,
                "partition": partition,
            })
        return jobs

    def jobs_since(self, before: set[str], at_least: int, timeout: float = 60.0, poll: float = 0.5) -> list[str]:
        """Ids of the jobs accounting lists now and did not list in ``before``, once there are ``at_least`` of
        them or ``timeout`` seconds have passed (then fewer: the caller's assertion says how many).

        A time-window query lists a job only once slurmdbd has its whole record, which for a short job can
        arrive a few seconds after its job array ended: one query straight after the run may miss the last array.
        """
        deadline = time.monotonic() + timeout
        while True:
            new = [j["job_id"] for j in self.sacct_jobs() if j["job_id"] not in before]
            if len(new) >= at_least or time.monotonic() > deadline:
                return new
            time.sleep(poll)

    def job_state(self, job_id: str | int) -> str | None:
        """sacct's state of one job (first word), or None if accounting does not know it yet."""
        for job in self.sacct_jobs([job_id]):
            if job["job_id"] == str(job_id):
                return job["state"]
        return None

    def wait_for_jobs(
        self, job_ids: Iterable[str | int], timeout: float = 60.0, poll: float = 0.5
    ) -> dict[str, str]:
        """Poll sacct until every job (array jobs: every task) is in a terminal state
        and its accounting record is complete.

        Returns {job_id: state}; raises TimeoutError with the queue and states otherwise.
        """
        ids = [str(j) for j in job_ids]
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while True:
            records = self.sacct_jobs(ids)
            states = {r["job_id"]: r["state"] for r in records}
            # each requested id must be present (directly or as array tasks), terminal, and
            # its record complete (slurmdbd may get a short job's end before its start record)
            present = all(
                any(k == i or k.startswith(f"{i}_") for k in states) for i in ids
            )
            complete = all(r["state"] in TERMINAL_STATES and r["partition"] for r in records)
            if present and records and complete:
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"jobs {ids} not finished after {timeout:.0f} s; sacct: {states}; "
                    f"squeue: {self.squeue()}\n{_tail(self.logs.get('slurmctld'))}"
                )
            time.sleep(poll)

    # ---- context manager ---------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> SlurmCluster:
        try:
            self._prepare()
            self._start_munge()
            self._start_mariadb()
            self._start_slurmdbd()
            self._start_slurmctld()
            self._start_slurmd()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop every daemon (reverse start order) by its pid file; idempotent."""
        errors = []
        for daemon in reversed(self._daemons):
            try:
                self._stop_daemon(daemon)
            except Exception as exc:  # keep stopping the others
                errors.append(f"{daemon.name}: {exc}")
        self._daemons.clear()
        self.started = False
        self._cleanup_run_dir()
        if errors:
            raise RuntimeError("could not stop all Slurm test daemons: " + "; ".join(errors))

    # ---- start-up ----------------------------------------------------------

    def _prepare(self) -> None:
        ok, why = slurm_available()
        if not ok:
            raise RuntimeError(f"cannot start a Slurm cluster: {why}")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._kill_stale_daemons()
        for d in (self.state_dir, self.spool_dir, self.pid_dir, self.conf_dir):
            shutil.rmtree(d, ignore_errors=True)
        if self.run_link.is_symlink():
            target = Path(os.readlink(self.run_link))
            self.run_link.unlink()
            if target.name.startswith("slurm-cluster-"):
                shutil.rmtree(target, ignore_errors=True)
        elif self.run_link.exists():
            shutil.rmtree(self.run_link, ignore_errors=True)
        for d in (self.conf_dir, self.state_dir, self.spool_dir, self.log_dir, self.pid_dir):
            _mkdir(d, mode=0o755)
        for old_log in self.log_dir.glob("*.log"):
            old_log.unlink()

        if _traversable_by_others(self.workdir):
            self.run_dir = _mkdir(self.run_link, mode=0o755)
        else:
            self.run_dir = Path(tempfile.mkdtemp(prefix="slurm-cluster-", dir="/tmp"))
            os.chmod(self.run_dir, 0o755)
            self._own_tmp_run_dir = True
            self.run_link.symlink_to(self.run_dir)
        self.munge_dir = _mkdir(self.run_dir / "munge", "munge", 0o755)
        self.mysql_dir = _mkdir(self.run_dir / "mysql", "mysql", 0o755)
        self.munge_socket = self.munge_dir / "munge.socket"
        self.mysql_socket = self.mysql_dir / "mysqld.sock"

        names = ("slurmctld", "slurmd", "slurmdbd", "mysql")
        self.ports = dict(zip(names, _free_ports(len(names))))
        self.memory_mb = self._node_memory_mb()
        # job ids would restart at 1 with every fresh StateSaveLocation; a random start keeps
        # them from matching files (e.g. submitit's <id>_0_result.pkl) left by an earlier run
        self.first_job_id = secrets.randbelow(50_000_000) + 1_000
        self._write_configs()

    def _node_memory_mb(self) -> int:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, value = line.split(":", 1)
                info[key] = int(value.split()[0]) // 1024
        free = info.get("MemAvailable", info["MemTotal"])
        return max(256, min(free, info["MemTotal"]) - self.memory_margin_mb)

    def _write_configs(self) -> None:
        auth_info = f"socket={self.munge_socket}"
        slurm_conf = f"""\
# generated by tests/slurm_cluster.py -- single-node test cluster
ClusterName={self.cluster_name}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={self.ports['slurmctld']}
SlurmdPort={self.ports['slurmd']}
AuthType=auth/munge
CredType=cred/munge
AuthInfo={auth_info}
StateSaveLocation={self.state_dir}
SlurmdSpoolDir={self.spool_dir}
SlurmctldPidFile={self.pid_dir}/slurmctld.pid
SlurmdPidFile={self.pid_dir}/slurmd.pid
SlurmctldLogFile={self.log_dir}/slurmctld.log
SlurmdLogFile={self.log_dir}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge={self.min_job_age}
FirstJobId={self.first_job_id}
KillWait=5
InactiveLimit=0
Waittime=0
MailProg=/bin/true
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={self.ports['slurmdbd']}
# the munge socket for talking to slurmdbd (AuthInfo covers everything else)
AccountingStoragePass={self.munge_socket}
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""
        self.slurm_conf.write_text(slurm_conf)
        os.chmod(self.slurm_conf, 0o644)

        slurmdbd_conf = f"""\
# generated by tests/slurm_cluster.py
AuthType=auth/munge
AuthInfo={auth_info}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.ports['slurmdbd']}
SlurmUser=root
DebugLevel=info
LogFile={self.log_dir}/slurmdbd.log
PidFile={self.pid_dir}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mysql']}
StorageUser=slurm
StoragePass={self._db_password}
StorageLoc=slurm_acct_db
"""
        # slurmdbd refuses a slurmdbd.conf readable by others: create it 600
        fd = os.open(self.slurmdbd_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(slurmdbd_conf)
        os.chmod(self.slurmdbd_conf, 0o600)

    def _ensure_munge_key(self, key: Path) -> None:
        """Create the munge key ``key`` (the system's) if it is missing."""
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            _chown(key.parent, "munge")
            os.chmod(key.parent, 0o700)
            # made beside it, then linked into place: two clusters starting at once (two test sessions, or
            # pytest-xdist workers) end with one key, the first, and neither fails on the other's file
            tmp = key.with_name(f".munge.key.{os.getpid()}.{secrets.token_hex(4)}")
            try:
                self._cmd(["mungekey", "--create", f"--keyfile={tmp}"], slurm=False)
                _chown(tmp, "munge")
                os.chmod(tmp, 0o400)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, key)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def _start_munge(self) -> None:
        self._ensure_munge_key(MUNGE_KEY)
        # munged checks that its dirs are not writable by others: /run/munge is its
        # usual home; create it in case anything else (munge CLI defaults) looks there
        _mkdir(Path("/run/munge"), "munge", 0o755)
        log = self.munge_dir / "munged.log"
        pid_file = self.munge_dir / "munged.pid"
        self._spawn(
            "munged",
            [_which("munged"), "-F", f"--socket={self.munge_socket}", f"--pid-file={pid_file}",
             f"--log-file={log}", f"--seed-file={self.munge_dir / 'munged.seed'}"],
            pid_file=pid_file, log=log, user="munge",
        )

        def ready() -> bool:
            cred = self._probe(["munge", "-n", "-S", self.munge_socket], slurm=False)
            if cred.returncode != 0:
                return False
            return self._probe(["unmunge", "-S", self.munge_socket], slurm=False, input=cred.stdout).returncode == 0

        self._wait("munged", ready, 15)

    def _start_mariadb(self) -> None:
        datadir = self.mysql_dir / "data"
        log = self.mysql_dir / "mariadbd.err"
        pid_file = self.mysql_dir / "mariadbd.pid"
        common = ["--innodb-log-file-size=16M", "--innodb-buffer-pool-size=64M"]
        install_log = self.log_dir / "mariadb-install-db.log"
        with open(install_log, "w") as out:
            rc = subprocess.run(
                [_which("mariadb-install-db"), "--no-defaults", "--user=mysql", f"--datadir={datadir}",
                 "--auth-root-authentication-method=socket", "--skip-test-db", *common],
                stdout=out, stderr=subprocess.STDOUT, timeout=120,
            ).returncode
        if rc != 0:
            raise RuntimeError(f"mariadb-install-db failed (exit {rc})\n{_tail(install_log)}")
        self._spawn(
            "mariadbd",
            [_which("mariadbd"), "--no-defaults", "--user=mysql", f"--datadir={datadir}",
             f"--socket={self.mysql_socket}", f"--pid-file={pid_file}", f"--log-error={log}",
             "--bind-address=127.0.0.1", f"--port={self.ports['mysql']}", "--skip-name-resolve",
             "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0", *common],
            pid_file=pid_file, log=log,
        )
        self._wait("mariadbd", lambda: self._probe(
            ["mysqladmin", "--no-defaults", f"--socket={self.mysql_socket}", "-u", "root",
             "--connect-timeout=2", "ping"], slurm=False).returncode == 0, 60)
        pw = self._db_password
        sql = (
            "CREATE DATABASE IF NOT EXISTS slurm_acct_db;"
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{pw}';"
            f"CREATE USER 'slurm'@'localhost' IDENTIFIED BY '{pw}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
            "FLUSH PRIVILEGES;"
        )
        res = self._cmd(["mariadb", "--no-defaults", f"--socket={self.mysql_socket}", "-u", "root",
                         "-e", sql], check=False, slurm=False)
        if res.returncode != 0:
            raise RuntimeError(f"could not create the slurm database user: {res.stderr.strip()}\n{_tail(log)}")

    def _start_slurmdbd(self) -> None:
        log = self.log_dir / "slurmdbd.log"
        self._spawn("slurmdbd", [_which("slurmdbd"), "-D"], pid_file=self.pid_dir / "slurmdbd.pid", log=log)
        self._wait("slurmdbd", lambda: self._probe(["sacctmgr", "-n", "show", "cluster"]).returncode == 0,
                   self.start_timeout)
        res = self._cmd(["sacctmgr", "-i", "add", "cluster", self.cluster_name], check=False)
        listed = self._cmd(["sacctmgr", "-n", "-P", "show", "cluster", "format=Cluster"], check=False)
        if self.cluster_name not in listed.stdout.split():
            raise RuntimeError(
                f"could not register cluster {self.cluster_name!r} with slurmdbd: "
                f"{res.stdout.strip()} {res.stderr.strip()}\n{_tail(log)}"
            )

    def _start_slurmctld(self) -> None:
        log = self.log_dir / "slurmctld.log"
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-i", "-f", str(self.slurm_conf)],
                    pid_file=self.pid_dir / "slurmctld.pid", log=log)
        self._wait("slurmctld", lambda: b"UP" in self._probe(["scontrol", "ping"]).stdout, self.start_timeout)

    def _start_slurmd(self) -> None:
        log = self.log_dir / "slurmd.log"
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", "localhost", "-f", str(self.slurm_conf)],
                    pid_file=self.pid_dir / "slurmd.pid", log=log)

        def idle() -> bool:
            states = self._probe(["sinfo", "-h", "-N", "-o", "%T"]).stdout.decode().split()
            return bool(states) and all(s.rstrip("*~#") == "idle" for s in states)

        self._wait("slurmd", idle, self.start_timeout,
                   extra=lambda: "sinfo: " + self._cmd(["sinfo", "-N", "-l"], check=False).stdout
                   + "\n" + _tail(self.logs.get("slurmctld"), 15))

    # ---- process management -----------------------------------------------

    def _cmd(self, args: list, *, check: bool = True, timeout: float = 30.0,
             slurm: bool = True) -> subprocess.CompletedProcess:
        exe = _which(args[0]) or args[0]
        env = self.environ() if slurm else None
        res = subprocess.run([exe, *map(str, args[1:])], capture_output=True, text=True,
                             timeout=timeout, env=env)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed (exit {res.returncode}): "
                               f"{res.stderr.strip() or res.stdout.strip()}")
        return res

    def _probe(self, args: list, *, slurm: bool = True, input: bytes | None = None,
               timeout: float = 10.0) -> subprocess.CompletedProcess:
        """Run a readiness check, remembering its output for the error message."""
        exe = _which(args[0]) or args[0]
        res = subprocess.run([exe, *map(str, args[1:])], capture_output=True, input=input,
                             timeout=timeout, env=self.environ() if slurm else None)
        out = (res.stdout + res.stderr).decode(errors="replace").strip()
        self._last_probe = f"$ {' '.join(map(str, args))}  -> exit {res.returncode}\n{out[-2000:]}"
        return res

    def _spawn(self, name: str, argv: list, *, pid_file: Path, log: Path, user: str | None = None) -> None:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        self.logs[name] = log
        # stdout/stderr (early start-up errors) go to a side file; the daemon writes its own log
        console = self.log_dir / f"{name}.console"
        kwargs = {}
        if user is not None:
            pw = pwd.getpwnam(user)
            kwargs = dict(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        env = self.environ()
        with open(console, "w") as out:
            proc = subprocess.Popen(
                [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=self.workdir if user is None else "/", start_new_session=True, **kwargs,
            )
        daemon = _Daemon(name, proc, pid_file, log)
        self._daemons.append(daemon)
        # record the pid ourselves too, so a later run can clean up even if the daemon never wrote one
        (self.pid_dir / f"{name}.spawned.pid").write_text(f"{proc.pid}\n")

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float,
              extra: Callable[[], str] | None = None) -> None:
        daemon = next(d for d in self._daemons if d.name == name)
        deadline = time.monotonic() + timeout
        delay = 0.05
        self._last_probe = ""
        while True:
            try:
                if ready():
                    return
            except (subprocess.TimeoutExpired, OSError):
                pass
            died = daemon.proc.poll() is not None
            if died or time.monotonic() > deadline:
                why = f"exited with code {daemon.proc.returncode}" if died else f"not ready after {timeout:.0f} s"
                console = self.log_dir / f"{name}.console"
                detail = "\n".join(filter(None, [
                    _tail(daemon.log),
                    _tail(console, 10) if console.exists() and console.stat().st_size else "",
                    f"--- last readiness check ---\n{self._last_probe}" if self._last_probe else "",
                    extra() if extra else "",
                ]))
                raise RuntimeError(f"Slurm test cluster: {name} {why}\n{detail}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _stop_daemon(self, daemon: _Daemon, term_timeout: float = 15.0) -> None:
        pid = _read_pid(daemon.pid_file)
        pids = {daemon.proc.pid}
        if pid is not None and pid != daemon.proc.pid and daemon.name in _cmdline(pid):
            pids.add(pid)
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=term_timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 2
        while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in pids:
            if _pid_alive(p):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.proc.wait(timeout=5)
        if any(_pid_alive(p) for p in pids):
            raise RuntimeError(f"{daemon.name} (pid {sorted(pids)}) survived SIGKILL")
        for f in (daemon.pid_file, self.pid_dir / f"{daemon.name}.spawned.pid"):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()

    def _kill_stale_daemons(self) -> None:
        """Kill daemons a crashed earlier run in this workdir left behind (by their pid files)."""
        order = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")
        pid_files = {
            "slurmd": [self.pid_dir / "slurmd.pid"],
            "slurmctld": [self.pid_dir / "slurmctld.pid"],
            "slurmdbd": [self.pid_dir / "slurmdbd.pid"],
            "mariadbd": [self.run_link / "mysql" / "mariadbd.pid"],
            "munged": [self.run_link / "munge" / "munged.pid"],
        }
        for name in order:
            for f in [*pid_files[name], self.pid_dir / f"{name}.spawned.pid"]:
                pid = _read_pid(f)
                if pid is None or not _pid_alive(pid) or name not in _cmdline(pid):
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _pid_alive(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

    def _cleanup_run_dir(self) -> None:
        if self.run_dir is None or not self._own_tmp_run_dir:
            return
        # keep munge/mariadb logs for post-mortems, then drop the temporary dir (the DB is ~50 MB)
        for src, dst in ((self.run_dir / "munge" / "munged.log", "munged.log"),
                         (self.run_dir / "mysql" / "mariadbd.err", "mariadbd.log")):
            with contextlib.suppress(OSError):
                shutil.copyfile(src, self.log_dir / dst)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.run_link.unlink()
        self.run_dir = None
        self._own_tmp_run_dir = False


# --------------------------------------------------------------------------- pytest fixture


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A started SlurmCluster for the whole session.

    Skipped when Slurm is not usable here (see ``slurm_available``), unless
    ``REQUIRE_SLURM=1`` is set: then the test fails with the reason instead.
    """
    ok, reason = slurm_available()
    if not ok:
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"REQUIRE_SLURM=1 but Slurm is not usable: {reason}", pytrace=False)
        pytest.skip(reason)
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
