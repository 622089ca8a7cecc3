"""postern.py -- drive a real Postern instance from Python tests.

An `Instance` is one `postern init` directory in a private temp dir with its own
loopback SMTP port, run by the real `target/release/postern` binary, optionally as
an unprivileged account. Every wait is bounded (at most MAX_WAIT seconds) and a
failed wait prints the instance's maillog. Every process the instance started is
tracked by PID (plus its start time, so a recycled PID is never killed) and killed
on `close()`; nothing is ever killed by name, because other instances and other
people's processes may run on the same machine.

How processes are tracked:
  * the master's PID from DIR/queue/pid/master.pid;
  * the master's descendants, snapshotted at every poll of `wait_for`, after
    `start()` and before `stop()`;
  * the test process is made a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
    a daemon whose parent died is re-parented to us instead of to init and can
    still be found (and reaped) as our descendant.

Contract of the binary this codes against (README.md, docs/ARCHITECTURE.md):
  postern init DIR [--smtp-listen 127.0.0.1:PORT]
  postern -c DIR start|stop|status|reload|start-fg|check|flush
  postern -c DIR sendmail [flags] rcpt...     (message on stdin; MAIL_CONFIG=DIR also works)
  postern -c DIR postqueue -p|-j|-f ; postsuper -d ID|ALL ; postcat -q ID ; postconf ...
  argv[0] dispatch: a link named sendmail/mailq/postqueue/... acts as that command.
"""

from __future__ import annotations

import ctypes
import json
import mailbox
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

REPO = Path(__file__).resolve().parents[2]
MAX_WAIT = 30.0          # no wait in this harness is longer than this
COMMAND_TIMEOUT = 30.0   # no single command may run longer than this
LOG_TAIL_LINES = 200
TEST_USER = "postern-test"


class PosternError(AssertionError):
    """A command or wait failed; the message carries the output and the maillog."""


# --------------------------------------------------------------------------- processes

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Makes orphaned descendants of this process re-parent to it (Linux >= 3.4)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Proc:
    """A process identity that survives PID reuse: (pid, start time in clock ticks)."""
    pid: int
    start: int

    @staticmethod
    def of(pid: int) -> "Proc | None":
        st = _stat(pid)
        return None if st is None else Proc(pid, st[2])

    def alive(self) -> bool:
        """True while this very process exists and is not a zombie."""
        st = _stat(self.pid)
        return st is not None and st[2] == self.start and st[1] != "Z"

    def describe(self) -> str:
        try:
            cmd = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = "?"
        return f"pid {self.pid}: {cmd.strip()}"


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, starttime) of a process, or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[19])


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> set[int]:
    """PIDs of every live descendant of `root` (not including it)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[0], []).append(pid)
    out: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, []))
    return out


def reap_zombie_children() -> None:
    """Reaps zombies re-parented to us (as subreaper), by PID: never waitpid(-1),
    which could steal the exit status of a subprocess.Popen still in use."""
    me = os.getpid()
    for pid in all_pids():
        st = _stat(pid)
        if st is not None and st[0] == me and st[1] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def kill_procs(procs: Iterable[Proc], grace: float = 5.0) -> list[Proc]:
    """SIGTERM, then SIGKILL after `grace` seconds, each process by PID. Returns the
    processes that were still alive when this started."""
    alive = [p for p in procs if p.alive()]
    for p in alive:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive() for p in alive):
        reap_zombie_children()
        time.sleep(0.05)
    for p in alive:
        if p.alive():
            _signal(p, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(p.alive() for p in alive):
        reap_zombie_children()
        time.sleep(0.05)
    reap_zombie_children()
    return alive


def _signal(p: Proc, sig: int) -> None:
    if p.alive():  # re-check identity right before signalling
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- helpers

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host` (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_user(name: str = TEST_USER) -> pwd.struct_passwd:
    """Creates the system account `name` once (root only) and returns it."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise PermissionError(f"account {name} does not exist and only root can create it")
    r = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--user-group", name],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )
    if r.returncode not in (0, 9):  # 9: already exists (a concurrent creator won)
        raise PosternError(f"useradd {name} failed ({r.returncode}): {r.stderr.strip()}")
    return pwd.getpwnam(name)


def readable_by_others(path: Path) -> bool:
    """True when every directory above `path` is searchable and `path` is readable
    and executable by any user."""
    p = path.resolve()
    if (p.stat().st_mode & 0o005) != 0o005:
        return False
    return all(d.stat().st_mode & 0o001 for d in p.parents)


def as_user_prefix(user: pwd.struct_passwd | None) -> list[str]:
    """argv prefix that runs a command as `user` (empty when running as ourselves)."""
    if user is None or user.pw_uid == os.geteuid():
        return []
    if os.geteuid() != 0:
        raise PermissionError("only root can run commands as another user")
    if shutil.which("setpriv"):
        # setpriv execs directly (no PAM session, no extra fork): the PIDs we see are
        # the command's own.
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]
    return ["runuser", "-u", user.pw_name, "--"]


def _fmt_proc(cmd: Sequence[str], r: subprocess.CompletedProcess) -> str:
    def text(b: bytes | str | None) -> str:
        if b is None:
            return ""
        return b.decode(errors="replace") if isinstance(b, bytes) else b
    return (f"$ {' '.join(cmd)}\nexit {r.returncode}\n--- stdout ---\n{text(r.stdout)[-4000:]}"
            f"\n--- stderr ---\n{text(r.stderr)[-4000:]}")


# --------------------------------------------------------------------------- instance

@dataclass
class Instance:
    """One Postern instance in `root` (its config directory is `root`).

    `binary` is target/release/postern; `user` is the account that runs it (None:
    the current user). Create with `Instance.create(...)`, always `close()`.
    """
    binary: Path
    root: Path
    port: int
    user: pwd.struct_passwd | None = None
    base: Path | None = None  # the temp dir holding `root`, removed by close()
    keep: bool = False
    _seen: set[Proc] = field(default_factory=set)
    _popens: list[subprocess.Popen] = field(default_factory=list)

    # ---- construction -------------------------------------------------------

    @classmethod
    def create(cls, binary: Path, user: pwd.struct_passwd | None = None,
               tmp_base: Path | None = None, init: bool = True) -> "Instance":
        base_dir = tmp_base or Path(os.environ.get("POSTERN_TEST_TMP", tempfile.gettempdir()))
        base = Path(tempfile.mkdtemp(prefix="postern-it-", dir=base_dir))
        if user is not None and user.pw_uid != os.geteuid():
            os.chown(base, user.pw_uid, user.pw_gid)
        # The test (root) reads mail and logs in it; a root instance's daemons
        # (mail_owner) must be able to reach the queue below it.
        base.chmod(0o755)
        inst = cls(binary=binary, root=base / "instance", port=free_port(), user=user, base=base,
                   keep=os.environ.get("POSTERN_TEST_KEEP") == "1")
        if init:
            inst.init()
        return inst

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    def init(self) -> subprocess.CompletedProcess:
        return self.run_raw(["init", str(self.root), "--smtp-listen", self.listen])

    # ---- running commands ---------------------------------------------------

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_")}
        env.update({"LC_ALL": "C", "TZ": "UTC"})
        if self.user is not None:
            env.update({"USER": self.user.pw_name, "LOGNAME": self.user.pw_name, "HOME": str(self.base)})
        if extra:
            env.update(extra)
        return env

    def argv(self, args: Sequence[str], program: Path | str | None = None) -> list[str]:
        return as_user_prefix(self.user) + [str(program or self.binary), *map(str, args)]

    def run_raw(self, args: Sequence[str], input: bytes | None = None, check: bool = True,
                timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None,
                program: Path | str | None = None) -> subprocess.CompletedProcess:
        """Runs `postern ARGS` (no -c); fails with output + maillog when check and exit != 0."""
        cmd = self.argv(args, program)
        # Output goes to files, not pipes: a daemon that inherits them (`start`) must
        # not keep us waiting for EOF.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                p = subprocess.run(cmd, input=input if input is not None else b"", stdout=out, stderr=err,
                                   timeout=min(timeout, COMMAND_TIMEOUT), env=self.env(env),
                                   cwd=self.base or None)
            except subprocess.TimeoutExpired as e:
                self._snapshot()
                raise PosternError(f"$ {' '.join(cmd)}\ntimed out after {e.timeout}s\n{self.log_excerpt()}") from None
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())
        if check and r.returncode != 0:
            raise PosternError(_fmt_proc(cmd, r) + "\n" + self.log_excerpt())
        return r

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Runs `postern -c DIR ARGS`."""
        return self.run_raw(["-c", str(self.root), *args], input=input, check=check, timeout=timeout, env=env)

    def link(self, name: str) -> Path:
        """A symlink named `name` (sendmail, mailq, postqueue, …) to the binary, for
        argv[0] dispatch; lives in the instance's temp dir."""
        d = (self.base or self.root) / "bin"
        d.mkdir(exist_ok=True)
        link = d / name
        if not link.exists():
            link.symlink_to(self.binary)
        return link

    # ---- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self.run("start")
        self.wait_for(lambda: self.master_pid() is not None and self.status(), what="master running (postern status)")
        self._snapshot()

    def start_fg(self) -> subprocess.Popen:
        """`postern -c DIR start-fg` as a child of the test; stopped by close()."""
        p = subprocess.Popen(self.argv(["-c", str(self.root), "start-fg"]), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(),
                             cwd=self.base or None)
        self._popens.append(p)
        proc = Proc.of(p.pid)
        if proc:
            self._seen.add(proc)
        self.wait_for(lambda: p.poll() is None and self.status(), what="start-fg master running")
        self._snapshot()
        return p

    def status(self) -> bool:
        return self.run("status", check=False).returncode == 0

    def stop(self) -> None:
        self._snapshot()
        self.run("stop")
        self.wait_for(lambda: not self.master_alive(), what="master exited after stop")

    def reload(self) -> None:
        self._snapshot()
        self.run("reload")

    def master_pid(self) -> int | None:
        try:
            text = (self.root / "queue" / "pid" / "master.pid").read_text().strip()
            return int(text.split()[0]) if text else None
        except (OSError, ValueError, IndexError):
            return None

    def master_alive(self) -> bool:
        pid = self.master_pid()
        p = Proc.of(pid) if pid else None
        return p is not None and p.alive()

    def _snapshot(self) -> None:
        """Remembers the master and all its descendants, so close() can kill them by
        PID even after the master is gone."""
        pid = self.master_pid()
        roots = [pid] if pid else []
        roots += [p.pid for p in self._popens if p.poll() is None]
        for r in roots:
            for q in {r} | descendants(r):
                proc = Proc.of(q)
                if proc is not None:
                    self._seen.add(proc)

    def _orphans(self) -> set[Proc]:
        """Our re-parented descendants (we are a subreaper) that belong to this
        instance: running our binary and naming our directory or working in it."""
        out: set[Proc] = set()
        exe = str(self.binary.resolve())
        for pid in descendants(os.getpid()):
            try:
                if os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)") != exe:
                    continue
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if str(self.root).encode() in cmdline or cwd.startswith(str(self.root)):
                proc = Proc.of(pid)
                if proc is not None:
                    out.add(proc)
        return out

    def processes(self) -> set[Proc]:
        """Every process of this instance seen so far plus orphans found now."""
        self._snapshot()
        return self._seen | self._orphans()

    def leftover_processes(self) -> list[Proc]:
        """Processes of this instance that are still alive (for 'nothing left' checks)."""
        reap_zombie_children()
        return sorted((p for p in self.processes() if p.alive()), key=lambda p: p.pid)

    def close(self) -> list[Proc]:
        """Stops the instance (bounded), kills whatever it left by PID, removes its
        temp dir (unless POSTERN_TEST_KEEP=1). Returns the processes that had to be
        killed."""
        self._snapshot()
        if self.master_alive():
            try:
                self.run("stop", check=False, timeout=15)
                deadline = time.monotonic() + 10
                while self.master_alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
            except PosternError:
                pass
        for p in self._popens:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=5)
        killed = kill_procs(self.processes())
        if self.base is not None and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        return killed

    # ---- mail ---------------------------------------------------------------

    def sendmail(self, args: Sequence[str], message: bytes, check: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """`postern -c DIR sendmail ARGS` with `message` on stdin."""
        return self.run("sendmail", *args, input=message, check=check, env=env)

    def maildir_path(self, user: str) -> Path:
        return self.root / "mail" / user

    def maildir(self, user: str) -> mailbox.Maildir:
        """The user's Maildir (DIR/mail/USER), read with Python's mailbox module."""
        return mailbox.Maildir(str(self.maildir_path(user)), factory=None, create=False)

    def new_messages(self, user: str) -> list[Path]:
        d = self.maildir_path(user) / "new"
        try:
            return sorted(p for p in d.iterdir() if p.is_file())
        except FileNotFoundError:
            return []

    def wait_for_mail(self, user: str, count: int = 1, timeout: float = MAX_WAIT) -> list[Path]:
        """Waits until DIR/mail/USER/new holds at least `count` messages."""
        return self.wait_for(lambda: (m := self.new_messages(user)) and len(m) >= count and m,
                             timeout=timeout, what=f"{count} message(s) in {self.maildir_path(user)}/new")

    def postqueue_json(self) -> list[dict[str, Any]]:
        """`postqueue -j`: one JSON object per queued message (Postfix's format)."""
        out = self.run("postqueue", "-j").stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def postqueue_p(self) -> str:
        return self.run("postqueue", "-p").stdout.decode(errors="replace")

    def queue_files(self) -> list[Path]:
        q = self.root / "queue"
        out = []
        for sub in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt"):
            d = q / sub
            if d.is_dir():
                out += [p for p in d.rglob("*") if p.is_file()]
        return sorted(out)

    # ---- logs and waiting -----------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "maillog"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_excerpt(self, lines: int = LOG_TAIL_LINES) -> str:
        text = self.log()
        tail = text.splitlines()[-lines:]
        return f"--- {self.log_path} (last {len(tail)} lines) ---\n" + "\n".join(tail)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = MAX_WAIT, what: str | None = None,
                 interval: float = 0.05) -> Any:
        """Polls `predicate` until it returns something truthy, and returns that.
        Exceptions count as 'not yet'. Fails after `timeout` (capped at MAX_WAIT)
        seconds with the last exception and the maillog."""
        timeout = min(timeout, MAX_WAIT)
        deadline = time.monotonic() + timeout
        last_exc: BaseException | None = None
        while True:
            try:
                v = predicate()
                if v:
                    return v
            except Exception as e:  # noqa: BLE001 - any failure means "not yet"
                last_exc = e
            self._snapshot()
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)
        desc = what or getattr(predicate, "__name__", "condition")
        extra = f"\nlast error: {last_exc!r}" if last_exc else ""
        raise PosternError(f"timed out after {timeout:.0f}s waiting for {desc}{extra}\n{self.log_excerpt()}")
