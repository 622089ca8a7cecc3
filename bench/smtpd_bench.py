#!/usr/bin/env python3
"""smtpd_bench.py -- Postfix's smtp-source against Postern's and Postfix's smtpd, into Maildir.

Run it through bench/smtpd-bench.sh (which documents the flags). For every point
(sessions, size) of the matrix and for each MTA, back to back on the same machine:

  1. start a fresh private instance in a temp dir with its SMTP server on a loopback
     port (never port 25, never /etc/postfix), inside a cgroup of its own;
  2. warm up: SESSIONS messages through SESSIONS parallel sessions, wait for delivery;
  3. `smtp-source -c -s SESSIONS -m MESSAGES -l SIZE -f bench@localhost
     -t postern-test@localhost 127.0.0.1:PORT`, timed (accepted msg/s);
  4. wait until MESSAGES more files are in postern-test's Maildir new/ (delivered msg/s,
     clock from the start of smtp-source);
  5. CPU of all the MTA's processes over steps 3-4 (cgroup cpuacct.usage, or the summed
     process tree: live processes' utime+stime plus what the master reaped), divided by
     MESSAGES; peak of the summed RSS of its processes (sampled every 0.1 s) and peak
     anonymous memory (the cgroup's total_rss, or summed RSS-shared); a per-program
     CPU breakdown (sampled /proc/PID/stat) and the machine's CPU used by anything else
     (the noise indicator: other engineers compile on these machines);
  6. stop the instance; kill whatever is left in its cgroup / process tree, by PID.

The Postern binary is copied once at the start (sha256 in the output) so that every run
uses the same build; --reps N repeats the matrix (interleaved) and reports medians.

Configured alike: both accept mail for `localhost` only (mydestination = localhost),
mynetworks = 127.0.0.0/8, default_process_limit = 100, local_recipient_maps and
alias_maps empty, Maildir delivery into DIR/mail/USER/, everything else at the
defaults (in_flow_delay = 1s, local_destination_concurrency_limit = 2, ...). Postfix:
Debian's 3.7 package, private config dir (as bench/sendmail_bench.py), Debian's
master.cf with chroot n and the only inet service `127.0.0.1:PORT inet n - n - - smtpd`;
its local(8) delivers as the recipient, the postern-test account. Postern: `postern
init DIR --smtp-listen 127.0.0.1:PORT`, run as postern-test (its non-root mode).
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))
import postern as harness  # noqa: E402  (the integration harness: Instance, Proc, kill by PID)
import sendmail_bench as sb  # noqa: E402  (PrivatePostfix: the private Postfix instance)

SENDER = "bench@localhost"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
LARGE = 10_000  # sizes from here on use the "large" message count


# main.cf settings for both MTAs from --set (milter-bench.sh: smtpd_milters), and for one
# of them from --set-postfix / --set-postern (milter-bench.sh --builtin: Postern signs itself).
EXTRA_SETTINGS: list[str] = []
POSTFIX_SETTINGS: list[str] = []
POSTERN_SETTINGS: list[str] = []


def log(msg: str) -> None:
    print(f"[smtpd-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loopback(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    if not host.startswith("127.") or not port.isdigit():
        raise SystemExit(f"smtpd-bench: {hostport!r}: only 127.x.x.x:PORT addresses are allowed")
    return host, int(port)


def port_free(host: str, port: int) -> bool:
    import socket
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def count_new(d: Path) -> int:
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------- /proc

def proc_stat(pid: int) -> tuple[int, float, float, int] | None:
    """(ppid, utime+stime s, cutime+cstime s, starttime) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    ut, st, cut, cst = (int(x) for x in rest[11:15])
    return int(rest[1]), (ut + st) / CLK, (cut + cst) / CLK, int(rest[19])


def statm(pid: int) -> tuple[int, int]:
    """(resident, resident - shared) bytes."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            v = f.read().split()
        return int(v[1]) * PAGE, (int(v[1]) - int(v[2])) * PAGE
    except OSError:
        return 0, 0


def prog_name(pid: int) -> str:
    """argv[0]'s basename (Postfix: smtpd, cleanup, ...; Postern names its daemons too)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        name = argv0.split()[0].rsplit("/", 1)[-1] if argv0.strip() else ""
    except OSError:
        name = ""
    if not name:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            name = "?"
    return name


def sys_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) summed over all CPUs, from /proc/stat; time stolen
    by the hypervisor counts as neither."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    total = sum(v[:7])
    return (total - idle) / CLK, total / CLK


def children_cpu() -> float:
    r = os.times()
    return r.children_user + r.children_system


def self_cpu() -> float:
    r = os.times()
    return r.user + r.system


# --------------------------------------------------------------------------- accounting

class Account:
    """CPU and memory of one MTA instance: a cgroup v1 (cpuacct + memory) of its own,
    created under ours, that its start command (and so every daemon) is born into; or,
    without cgroups, the process tree of its master."""

    def __init__(self, name: str):
        self.name = name
        self.cpu_cg: Path | None = None
        self.mem_cg: Path | None = None
        self.home: dict[str, Path] = {}
        self.master: int | None = None
        if os.geteuid() != 0 or os.environ.get("SMTPD_BENCH_NO_CGROUP") == "1":
            return
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return
        for line in lines:
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(","):
                if c in ("cpuacct", "memory"):
                    base = Path("/sys/fs/cgroup") / ctrls
                    if not base.is_dir():
                        base = Path("/sys/fs/cgroup") / c
                    if not (base / "cgroup.procs").exists():
                        continue
                    self.home[c] = base / path.lstrip("/")
        try:
            if "cpuacct" in self.home:
                d = self.home["cpuacct"] / name
                d.mkdir(exist_ok=True)
                self.cpu_cg = d
            if "memory" in self.home:
                d = self.home["memory"] / name
                d.mkdir(exist_ok=True)
                self.mem_cg = d
        except OSError as e:
            log(f"cgroup {name}: {e}; summing the process tree instead")
            self.remove()
            self.cpu_cg = self.mem_cg = None

    @property
    def mode(self) -> str:
        return "cgroup" if self.cpu_cg else "proctree"

    # -- membership ----------------------------------------------------------------
    def enter(self) -> None:
        """Moves this process into the MTA's cgroups (children started now inherit)."""
        for d in (self.cpu_cg, self.mem_cg):
            if d:
                (d / "cgroup.procs").write_text(str(os.getpid()))

    def leave(self) -> None:
        for c, d in (("cpuacct", self.cpu_cg), ("memory", self.mem_cg)):
            if d and c in self.home:
                (self.home[c] / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        if self.cpu_cg:
            try:
                return [int(x) for x in (self.cpu_cg / "cgroup.procs").read_text().split()]
            except OSError:
                return []
        if self.master is None:
            return []
        return [self.master, *harness.descendants(self.master)]

    def cpu_seconds(self) -> float:
        if self.cpu_cg:
            return int((self.cpu_cg / "cpuacct.usage").read_text()) / 1e9
        tot = 0.0
        for p in self.pids():
            st = proc_stat(p)
            if st:
                tot += st[1] + (st[2] if p == self.master else 0.0)
        return tot

    def user_sys(self) -> tuple[float, float] | None:
        """(user, system) CPU seconds of the cgroup, from cpuacct.stat; None without one."""
        if not self.cpu_cg:
            return None
        try:
            st = dict(line.split() for line in (self.cpu_cg / "cpuacct.stat").read_text().splitlines())
            return int(st["user"]) / CLK, int(st["system"]) / CLK
        except (OSError, KeyError, ValueError):
            return None

    def mem_sample(self) -> tuple[int, int, int]:
        """(summed RSS, anonymous, number of processes) in bytes."""
        ps = self.pids()
        rss = anon = 0
        for p in ps:
            r, a = statm(p)
            rss += r
            anon += a
        if self.mem_cg:
            try:
                st = dict(line.split() for line in (self.mem_cg / "memory.stat").read_text().splitlines())
                anon = int(st.get("total_rss", st.get("rss", anon)))
            except (OSError, ValueError):
                pass
        return rss, anon, len(ps)

    def kill_leftovers(self) -> int:
        """SIGTERM then SIGKILL every process still in the cgroup, by PID."""
        if not self.cpu_cg:
            return 0
        procs = {p for p in (harness.Proc.of(pid) for pid in self.pids()) if p is not None}
        procs.discard(harness.Proc.of(os.getpid()))
        return len(harness.kill_procs(procs))

    def remove(self) -> None:
        for d in (self.cpu_cg, self.mem_cg):
            if d and d.is_dir():
                for _ in range(50):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.1)


# --------------------------------------------------------------------------- the MTAs

class BenchPostfix(sb.PrivatePostfix):
    """sendmail_bench's private Postfix, plus an smtpd on a loopback port, Maildir in
    DIR/mail/, mynetworks = 127.0.0.0/8, default_process_limit = 100."""

    name = "Postfix"

    def __init__(self, tmp: Path, user: pwd.struct_passwd, listen: str):
        super().__init__(tmp, user)
        self.spool = tmp / "mail"
        self.listen = listen

    def _master_cf(self) -> str:  # type: ignore[override]
        return (sb.PrivatePostfix._master_cf()
                + "# smtpd-bench: the only inet service\n"
                + f"{self.listen} inet n - n - - smtpd\n")

    def setup(self) -> None:
        super().setup()
        r = subprocess.run(["postconf", "-c", str(self.conf), "-e", "mynetworks = 127.0.0.0/8",
                            "default_process_limit = 100", "myorigin = localhost", *EXTRA_SETTINGS,
                            *POSTFIX_SETTINGS],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"postconf -e failed: {r.stderr}")

    def version(self) -> str:
        r = subprocess.run(["postconf", "-c", str(self.conf), "-h", "mail_version"], capture_output=True,
                           text=True, timeout=30)
        return f"Postfix {r.stdout.strip()}" if r.returncode == 0 else "Postfix"


class BenchPostern:
    name = "Postern"

    def __init__(self, binary: Path, user: pwd.struct_passwd | None, tmp: Path, listen: str):
        self.inst = harness.Instance.create(binary, user=user, tmp_base=tmp, init=False)
        self.listen = listen
        self.inst.port = loopback(listen)[1]
        self.rcpt_user = user.pw_name if user else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def newdir(self) -> Path:
        return self.inst.maildir_path(self.rcpt_user) / "new"

    @property
    def maillog(self) -> Path:
        return self.inst.log_path

    def setup(self) -> None:
        self.inst.run_raw(["init", str(self.inst.root), "--smtp-listen", self.listen])
        self.inst.run("postconf", "-e", "mydestination = localhost", "mynetworks = 127.0.0.0/8",
                      "default_process_limit = 100", "myorigin = localhost", *EXTRA_SETTINGS,
                      *POSTERN_SETTINGS)

    def start(self) -> None:
        self.inst.start()

    def master_pid(self) -> int | None:
        return self.inst.master_pid()

    def snapshot(self) -> None:
        self.inst._snapshot()

    def stop(self) -> None:
        killed = self.inst.close()
        if killed:
            log(f"postern: killed {len(killed)} leftover process(es) by PID")

    def version(self) -> str:
        r = self.inst.run_raw(["--version"], check=False)
        out = r.stdout.decode(errors="replace").strip().splitlines()
        return out[0] if r.returncode == 0 and out else "Postern"


# --------------------------------------------------------------------------- one run

@dataclass
class Run:
    mta: str
    sessions: int
    size: int
    messages: int
    rep: int = 0
    accept_s: float | None = None
    deliver_s: float | None = None
    delivered: int = 0
    cpu_s: float | None = None
    peak_rss: int = 0
    peak_anon: int = 0
    peak_procs: int = 0
    src_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    machine_busy_pct: float = 0.0
    pre_busy_pct: float = -1.0
    acct_mode: str = ""
    by_prog: dict[str, float] = field(default_factory=dict)
    procs_by_prog: dict[str, int] = field(default_factory=dict)
    sys_share: float | None = None  # share of the MTA's CPU spent in the kernel
    note: str = ""

    @property
    def accept_mps(self) -> float | None:
        return self.messages / self.accept_s if self.accept_s and not self.note else None

    @property
    def deliver_mps(self) -> float | None:
        return self.messages / self.deliver_s if self.deliver_s and not self.note else None

    @property
    def cpu_per_msg(self) -> float | None:
        return self.cpu_s / self.messages if self.cpu_s is not None and not self.note else None


def wait_port(host: str, port: int, timeout: float = 30) -> None:
    import socket
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.settimeout(5)
                s.recv(512)  # the greeting: smtpd really answers
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {host}:{port} after {timeout:.0f}s")


def wait_idle(limit: float, below: float) -> float:
    """Waits up to `limit` s until the machine was < `below` % busy over 1 s; returns it."""
    end = time.monotonic() + limit
    while True:
        b0, t0 = sys_cpu()
        time.sleep(1.0)
        b1, t1 = sys_cpu()
        pct = 100.0 * (b1 - b0) / max(t1 - t0, 1e-9)
        if pct < below or time.monotonic() >= end:
            return round(pct, 1)


def smtp_source(host: str, port: int, sessions: int, messages: int, size: int, rcpt: str, reuse: bool,
                max_secs: float, out: Path) -> tuple[int, float, float, bool]:
    """Runs smtp-source; returns (exit code, wall seconds, its CPU seconds, timed out)."""
    cmd = ["smtp-source", "-c", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", SENDER, "-t", rcpt] + (["-d"] if reuse else []) + [f"{host}:{port}"]
    with open(out, "ab") as fh:
        fh.write(("$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > max_secs:
                timed_out = True
                p.kill()  # by PID: our own child
                _, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.002)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, timed_out


def wait_delivered(newdir: Path, want: int, max_secs: float, stall_secs: float, on_poll=None) -> tuple[int, bool]:
    """Waits until `newdir` holds `want` messages; gives up after max_secs, or after
    stall_secs without progress. Returns (count, reached)."""
    deadline = time.monotonic() + max_secs
    last, last_t = count_new(newdir), time.monotonic()
    while True:
        n = count_new(newdir)
        if n >= want:
            return n, True
        now = time.monotonic()
        if n != last:
            last, last_t = n, now
        if now >= deadline or now - last_t > stall_secs:
            return n, False
        if on_poll:
            on_poll()
        time.sleep(0.01)


def run_point(mta, acct: Account, host: str, port: int, rcpt: str, sessions: int, size: int, messages: int,
              a: argparse.Namespace, workdir: Path) -> Run:
    r = Run(mta.name, sessions, size, messages, acct_mode=acct.mode)
    srcout = workdir / f"smtp-source-{mta.name}-{sessions}-{size}.out"
    mta.setup()
    acct.enter()
    try:
        mta.start()
    finally:
        acct.leave()
    acct.master = mta.master_pid()
    wait_port(host, port)
    newdir = mta.newdir

    # Warm-up: one message per session, so the server side has started its processes.
    if a.warmup:
        rc, wall, _, to = smtp_source(host, port, sessions, sessions, size, rcpt, a.reuse, a.max_secs, srcout)
        n, ok = wait_delivered(newdir, sessions, min(a.max_secs, 60), 30)
        if rc != 0 or to or not ok:
            r.note = f"warm-up failed: smtp-source rc={rc}{' timed out' if to else ''}, {n}/{sessions} delivered"
            return r
        time.sleep(a.settle)
    base = count_new(newdir)
    if a.idle_wait > 0:
        r.pre_busy_pct = wait_idle(a.idle_wait, a.idle_below)

    # Sampler: memory every 0.1 s, per-program CPU from /proc/PID/stat.
    peak = {"rss": 0, "anon": 0, "procs": 0}
    first: dict[tuple[int, int], float] = {}
    last: dict[tuple[int, int], tuple[str, float]] = {}
    nprocs: dict[str, int] = {}
    stop = threading.Event()

    def sample() -> None:
        rss, anon, n = acct.mem_sample()
        peak["rss"] = max(peak["rss"], rss)
        peak["anon"] = max(peak["anon"], anon)
        peak["procs"] = max(peak["procs"], n)
        counts: dict[str, int] = {}
        for pid in acct.pids():
            st = proc_stat(pid)
            if st is None:
                continue
            key = (pid, st[3])
            name = last[key][0] if key in last else prog_name(pid)
            counts[name] = counts.get(name, 0) + 1
            if key not in last:
                last[key] = (prog_name(pid), st[1])
            else:
                last[key] = (last[key][0], st[1])
        for name, n in counts.items():
            nprocs[name] = max(nprocs.get(name, 0), n)

    def sampler() -> None:
        while not stop.is_set():
            sample()
            stop.wait(a.sample_interval)

    sample()
    for k, (_, c) in last.items():
        first[k] = c
    busy0, tot0 = sys_cpu()
    us0 = acct.user_sys()
    cpu0 = acct.cpu_seconds()
    self0 = self_cpu()
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.monotonic()
    try:
        rc, wall, src_cpu, to = smtp_source(host, port, sessions, messages, size, rcpt, a.reuse, a.max_secs, srcout)
        r.accept_s = wall
        r.src_cpu_s = src_cpu
        n, ok = wait_delivered(newdir, base + messages, a.max_secs, a.stall_secs)
        t2 = time.monotonic()
        r.deliver_s = t2 - t0 if ok else None
        r.delivered = n - base
    finally:
        stop.set()
        th.join()
    sample()
    cpu1 = acct.cpu_seconds()
    us1 = acct.user_sys()
    busy1, tot1 = sys_cpu()
    if us0 and us1 and (us1[0] - us0[0]) + (us1[1] - us0[1]) > 0:
        r.sys_share = (us1[1] - us0[1]) / ((us1[0] - us0[0]) + (us1[1] - us0[1]))
    r.procs_by_prog = dict(nprocs)
    r.cpu_s = cpu1 - cpu0
    elapsed = time.monotonic() - t0
    bench = self_cpu() - self0
    r.other_cpu_s = max(0.0, (busy1 - busy0) - r.cpu_s - r.src_cpu_s - bench)
    r.machine_busy_pct = 100.0 * (busy1 - busy0) / max(tot1 - tot0, 1e-9)
    r.peak_rss, r.peak_anon, r.peak_procs = peak["rss"], peak["anon"], peak["procs"]
    for k, (name, c) in last.items():
        r.by_prog[name] = r.by_prog.get(name, 0.0) + c - first.get(k, 0.0)
    sampled = sum(r.by_prog.values())
    if r.cpu_s - sampled > 0.01:
        r.by_prog["(exited between samples)"] = r.cpu_s - sampled
    if rc != 0 or to or r.deliver_s is None:
        try:
            tail = srcout.read_bytes()[-300:].decode(errors="replace").replace("\r", " ").replace("\n", " | ")
        except OSError:
            tail = ""
        r.note = (f"smtp-source rc={rc}{' timed out' if to else ''}; {r.delivered}/{messages} delivered; "
                  f"{tail.strip()[-160:]}")
    log(f"{r.mta:7} s={sessions:<3} l={size:<6} m={messages:<5} accept {wall:7.2f}s "
        f"({messages / wall:6.1f}/s)  delivered {r.delivered}/{messages} in "
        f"{(r.deliver_s or elapsed):7.2f}s  cpu {r.cpu_s:6.2f}s ({1e3 * r.cpu_s / messages:5.2f} ms/msg)  "
        f"rss {r.peak_rss / 2**20:6.1f} MiB anon {r.peak_anon / 2**20:6.1f} MiB procs {r.peak_procs}  "
        f"src {100 * r.src_cpu_s / elapsed:4.0f}%  other {100 * r.other_cpu_s / elapsed:4.0f}%  "
        f"pre-busy {r.pre_busy_pct}%  [{acct.mode}]{'  NOTE ' + r.note if r.note else ''}")
    top = sorted(r.by_prog.items(), key=lambda kv: -kv[1])[:8]
    log("          cpu by program: " + ", ".join(f"{k} {v:.2f}s" for k, v in top)
        + (f"; kernel share {100 * r.sys_share:.0f}%" if r.sys_share is not None else ""))
    log("          peak processes by program: "
        + ", ".join(f"{k} {v}" for k, v in sorted(r.procs_by_prog.items(), key=lambda kv: -kv[1])))
    return r


def bench_one(kind: str, a, binary: Path, user: pwd.struct_passwd | None, run_user: pwd.struct_passwd,
              base: Path, idx: int, sessions: int, size: int, messages: int, versions: dict) -> Run:
    # short: Postern binds sockets below it (SUN_LEN); distinct per MTA (--keep keeps both)
    tmp = base / f"{'pf' if kind == 'postfix' else 'pn'}{idx}"
    tmp.mkdir()
    tmp.chmod(0o755)
    listen = a.postfix_listen if kind == "postfix" else a.postern_listen
    if listen is None:
        listen = f"127.0.0.1:{harness.free_port('127.0.0.1')}"
    host, port = loopback(listen)
    if not port_free(host, port):
        r = Run(kind.capitalize(), sessions, size, messages)
        r.note = f"{listen} is in use (someone else's listener): pick another"
        return r
    rcpt = f"{run_user.pw_name}@localhost"
    acct = Account(f"smtpd-bench-{os.getpid()}-{kind}-{idx}")
    mta = None
    try:
        if kind == "postfix":
            if os.geteuid() != 0:
                r = Run("Postfix", sessions, size, messages)
                r.note = "not run: a private Postfix instance needs root"
                return r
            mta = BenchPostfix(tmp, run_user, listen)
        else:
            if not binary.is_file():
                r = Run("Postern", sessions, size, messages)
                r.note = f"not run: no binary at {binary} (cargo build --release)"
                return r
            mta = BenchPostern(binary, user, tmp, listen)
        r = run_point(mta, acct, host, port, rcpt, sessions, size, messages, a, tmp)
        if mta.name not in versions:
            try:
                versions[mta.name] = mta.version()
            except Exception:  # noqa: BLE001 - cosmetic only
                versions[mta.name] = mta.name
        return r
    except Exception as e:  # noqa: BLE001 - report and keep going
        r = Run(kind.capitalize(), sessions, size, messages)
        r.note = f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        log(f"{kind}: {e}")
        if mta is not None and getattr(mta, "maillog", None) and Path(mta.maillog).exists():
            log(f"{kind}: maillog tail:\n" + Path(mta.maillog).read_text(errors="replace")[-2000:])
        return r
    finally:
        if mta is not None:
            try:
                mta.stop()
            except Exception as e:  # noqa: BLE001
                log(f"{kind}: stop failed: {e}")
        n = acct.kill_leftovers()
        if n:
            log(f"{kind}: killed {n} leftover process(es) in its cgroup, by PID")
        acct.remove()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- report

def fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def ratio(pn: float | None, pf: float | None) -> str:
    if pn is None or pf is None or pf == 0:
        return "–"
    return f"**{pn / pf:.2f}×**"


def size_label(n: int) -> str:
    return f"{n // 1024} KB" if n % 1024 == 0 else f"{n} B"


def median(vals: list[float]) -> float | None:
    vals = sorted(vals)
    if not vals:
        return None
    k = len(vals) // 2
    return vals[k] if len(vals) % 2 else (vals[k - 1] + vals[k]) / 2


def report(runs: list[Run], versions: dict, a) -> str:
    by: dict[tuple[str, int, int], list[Run]] = {}
    for r in runs:
        by.setdefault((r.mta, r.sessions, r.size), []).append(r)
    points = sorted({(r.sessions, r.size) for r in runs})
    reps = max((r.rep for r in runs), default=0) + 1
    pfn, pnn = versions.get("Postfix", "Postfix"), versions.get("Postern", "Postern")
    out = [f"| sessions | size | messages | metric | {pfn} | {pnn} | Postern/Postfix |",
           "|---:|---:|---:|---|---:|---:|---:|"]
    metrics = [
        ("accepted msg/s ↑", lambda r: r.accept_mps, ".0f", 1),
        ("delivered msg/s ↑", lambda r: r.deliver_mps, ".0f", 1),
        ("CPU ms/msg ↓", lambda r: r.cpu_per_msg, ".2f", 1e3),
        ("peak RSS sum MiB ↓", lambda r: r.peak_rss / 2**20 if r.peak_rss else None, ".0f", 1),
        ("peak anon MiB ↓", lambda r: r.peak_anon / 2**20 if r.peak_anon else None, ".0f", 1),
    ]
    def med(rs: list[Run] | None, get, scale: float) -> float | None:
        """Median over the repetitions that completed (a failed one counts as missing)."""
        vals = [v * scale for v in (get(r) for r in rs or []) if v is not None]
        return median(vals) if len(vals) == len(rs or []) else None

    for s, l in points:
        pf, pn = by.get(("Postfix", s, l)), by.get(("Postern", s, l))
        m = (pf or pn)[0].messages
        for i, (label, get, spec, scale) in enumerate(metrics):
            vf = med(pf, get, scale)
            vn = med(pn, get, scale)
            lead = f"| {s} | {size_label(l)} | {m} |" if i == 0 else "| | | |"
            out.append(f"{lead} {label} | {fmt(vf, spec)} | {fmt(vn, spec)} | {ratio(vn, vf)} |")
    details = ["| MTA | sessions | size | rep | accept s | deliver s | MTA CPU % of a core | smtp-source CPU % | "
               "kernel share of MTA CPU | other CPU % (noise) | peak procs | top programs by CPU | note |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(runs, key=lambda r: (r.sessions, r.size, r.mta, r.rep)):
        span = r.deliver_s or r.accept_s
        pct = (lambda x: f"{100 * x / span:.0f}") if span else (lambda x: "–")
        top = sorted(((k, v) for k, v in r.by_prog.items()), key=lambda kv: -kv[1])[:4]
        tops = ", ".join(f"{k} {100 * v / r.cpu_s:.0f}%" for k, v in top if r.cpu_s) if r.cpu_s else ""
        details.append(f"| {r.mta} | {r.sessions} | {size_label(r.size)} | {r.rep + 1} | {fmt(r.accept_s, '.2f')} | "
                       f"{fmt(r.deliver_s, '.2f')} | {pct(r.cpu_s) if r.cpu_s is not None else '–'} | "
                       f"{pct(r.src_cpu_s)} | {f'{100 * r.sys_share:.0f}%' if r.sys_share is not None else '–'} | "
                       f"{pct(r.other_cpu_s)} | {r.peak_procs} | {tops} | "
                       f"{r.note.replace('|', '/')} |")
    cpu = platform.processor() or platform.machine()
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    mode = "smtp-source -d (connection reuse)" if a.reuse else "one connection per message"
    head = (f"smtp-source → smtpd → Maildir, {mode}, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
            f"{os.cpu_count()} CPUs ({cpu}){mem}, kernel {platform.release()}; "
            f"CPU accounting: {', '.join(sorted({r.acct_mode for r in runs if r.acct_mode})) or '–'}"
            + (f"; Postern binary {versions['Postern build']}" if "Postern build" in versions else "") + "\n")
    return (head + "\n" + "\n".join(out) + f"\n\n{'Medians of ' + str(reps) + ' repetitions (runs interleaved). ' if reps > 1 else ''}"
            "↑ higher is better, ↓ lower is better; the ratio is "
            "Postern's figure divided by Postfix's.\n\nPer run (the CPU columns are % of one core over the "
            "run, from the start of smtp-source until the last message was in new/; 'other' is CPU used by "
            "anything else on the machine during the run):\n\n" + "\n".join(details) + "\n")


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description="smtp-source -> smtpd -> Maildir, Postern vs Postfix")
    ap.add_argument("--quick", action="store_true", help="1 and 20 sessions, 300 x 1 KB / 60 x 100 KB")
    ap.add_argument("-s", "--sessions", default=None, help="session counts, default 1,20,100")
    ap.add_argument("-l", "--sizes", default="1024,102400", help="message sizes in bytes, default 1024,102400")
    ap.add_argument("-m", "--messages", type=int, default=None, help="messages per run below 10,000 bytes (2000)")
    ap.add_argument("-M", "--messages-large", type=int, default=None, help="messages per run from 10,000 bytes (300)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions of the matrix; the table shows medians")
    ap.add_argument("--reuse", action="store_true", help="smtp-source -d: many messages per connection")
    ap.add_argument("--only", choices=["postfix", "postern"])
    ap.add_argument("--max-secs", type=float, default=300, help="bound of each phase (default 300)")
    ap.add_argument("--stall-secs", type=float, default=30, help="give up delivery after this long without progress")
    ap.add_argument("--idle-wait", type=float, default=20, help="wait up to N s for a quiet machine before each run")
    ap.add_argument("--idle-below", type=float, default=30, help="'quiet' = less than this %% busy (default 30)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after the warm-up (default 1)")
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--sample-interval", type=float, default=0.1)
    ap.add_argument("--postfix-listen", help="127.x.x.x:PORT for Postfix's smtpd (default: a free port)")
    ap.add_argument("--postern-listen", help="127.x.x.x:PORT for Postern's smtpd (default: a free port)")
    ap.add_argument("--binary", type=Path, default=None, help="postern binary (default target/release/postern)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="main.cf setting for both MTAs (repeatable; bench/milter-bench.sh sets smtpd_milters)")
    ap.add_argument("--set-postfix", action="append", default=[], metavar="NAME=VALUE",
                    help="main.cf setting for Postfix only (repeatable)")
    ap.add_argument("--set-postern", action="append", default=[], metavar="NAME=VALUE",
                    help="main.cf setting for Postern only (repeatable)")
    a = ap.parse_args()
    EXTRA_SETTINGS.extend(a.set)
    POSTFIX_SETTINGS.extend(a.set_postfix)
    POSTERN_SETTINGS.extend(a.set_postern)
    for listen in (a.postfix_listen, a.postern_listen):
        if listen:
            loopback(listen)
    sessions = [int(x) for x in (a.sessions or ("1,20" if a.quick else "1,20,100")).split(",")]
    sizes = [int(x) for x in a.sizes.split(",")]
    m_small = a.messages or (300 if a.quick else 2000)
    m_large = a.messages_large or (60 if a.quick else 300)
    if min(sessions) < 1 or min(sizes) < 1 or m_small < 1 or m_large < 1 or a.reps < 1:
        ap.error("sessions, sizes and message counts must be positive")

    # SIGTERM (e.g. from timeout(1) in smtpd-bench.sh) and SIGHUP unwind through the
    # finally blocks, which stop the instances.
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = (a.binary or target / "release" / "postern").resolve()
    user = harness.ensure_user(harness.TEST_USER) if os.geteuid() == 0 else None
    run_user = user or pwd.getpwuid(os.geteuid())
    harness.become_subreaper()
    versions: dict[str, str] = {}
    base = Path(tempfile.mkdtemp(prefix="psb-"))
    base.chmod(0o755)
    if binary.is_file():
        # Pin the build: other engineers rebuild target/release/postern at any time,
        # and every run of the matrix must use the same binary (the copy is also
        # executable by the postern-test account).
        import hashlib
        digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(binary.stat().st_mtime))
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=30).stdout.strip() or "?"
        versions["Postern build"] = f"sha256 {digest}…, built {built}, repository HEAD {head}"
        log(f"postern binary {binary}: {versions['Postern build']} (copied; all runs use the copy)")
        copy = base / "postern"
        shutil.copy2(binary, copy)
        copy.chmod(0o755)
        binary = copy
    kinds = [k for k in ("postfix", "postern") if a.only in (None, k)]
    runs: list[Run] = []
    log(f"matrix: sessions {sessions}, sizes {sizes}, messages {m_small} (< {LARGE} B) / {m_large}; "
        f"MTAs {kinds}; {'reuse (-d)' if a.reuse else 'one connection per message'}")
    t_start = time.monotonic()
    try:
        idx = 0
        for rep in range(a.reps):
            for s in sessions:
                for l in sizes:
                    m = m_small if l < LARGE else m_large
                    order = kinds if idx % 2 == 0 else kinds[::-1]
                    for kind in order:
                        r = bench_one(kind, a, binary, user, run_user, base, idx, s, l, m, versions)
                        r.rep = rep
                        runs.append(r)
                    idx += 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); reporting what was measured")
    finally:
        if a.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    log(f"done in {time.monotonic() - t_start:.0f}s")
    print(report(runs, versions, a))
    return 0 if runs and all(not r.note for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
