#!/usr/bin/env python3
"""sendmail_bench.py -- N messages through each MTA's own sendmail into a local Maildir.

Run it through bench/sendmail-bench.sh (which documents the flags). For each MTA in
the same run, on the same machine:

  1. start a private instance in a temp dir (never /etc/postfix, never port 25);
  2. submit N ~1 KB messages with K parallel submitters, each running the MTA's
     sendmail once per message, to one local recipient;
  3. time from the first submission until the N-th file is in the recipient's
     Maildir new/ directory;
  4. stop the instance and kill anything it left, by PID.

Prints a markdown table (messages/s, the Postern/Postfix ratio) on stdout; progress
goes to stderr. Loopback only; every phase is bounded in time.

Postfix side (Debian's package, run as root as it must be): config dir with copies of
/etc/postfix/{dynamicmaps.cf,postfix-files,...}, Debian's master.cf with chroot=n and
no inet listener, `mail_spool_directory = DIR/` (trailing slash: Maildir), delivery to
a real account (local(8) delivers as the recipient). Submission: `sendmail -C DIR`.

Postern side: `postern init DIR --smtp-listen 127.0.0.1:PORT`, `postern -c DIR start`,
run as the same account the integration tests use (postern-test when root) -- Postern's
non-root mode, in which every process runs as that user and mail for USER@localhost
lands in DIR/mail/USER/. Submission: `postern -c DIR sendmail`.
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
import postern as harness  # noqa: E402  (the integration harness: Instance, Proc, kill by PID)

SENDER = "bench-sender@localhost"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def message(i: int, size: int) -> bytes:
    head = (f"From: Bench Sender <{SENDER}>\nTo: <{{rcpt}}>\nSubject: bench message {i}\n"
            f"Message-ID: <bench.{i}.{os.getpid()}@localhost>\n"
            f"Date: Thu, 01 Jan 2026 00:00:00 +0000\n\n")
    line = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnop.\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head))]
    return (head + body).encode()


def count_new(d: Path) -> int:
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


class Result:
    def __init__(self, name: str, n: int):
        self.name, self.n = name, n
        self.submit_s: float | None = None
        self.total_s: float | None = None
        self.delivered = 0
        self.failures = 0
        self.note = ""

    @property
    def rate(self) -> float | None:
        return self.n / self.total_s if self.total_s else None


def run_load(name: str, argv: list[str], env: dict[str, str], rcpt: str, newdir: Path, n: int, k: int,
             size: int, timeout: float) -> Result:
    """Submits n messages with k parallel workers, waits for n files in newdir."""
    res = Result(name, n)
    already = count_new(newdir)
    if already:
        raise RuntimeError(f"{newdir} already holds {already} messages")
    msgs = [message(i, size).replace(b"{rcpt}", rcpt.encode()) for i in range(n)]
    fail_lock = threading.Lock()
    first_error: list[str] = []

    def submit(i: int) -> None:
        try:
            r = subprocess.run(argv, input=msgs[i], capture_output=True, env=env, timeout=60)
            ok = r.returncode == 0
            err = r.stderr.decode(errors="replace").strip()
        except subprocess.TimeoutExpired:
            ok, err = False, "sendmail timed out after 60s"
        if not ok:
            with fail_lock:
                res.failures += 1
                if not first_error:
                    first_error.append(err or "non-zero exit")

    log(f"{name}: submitting {n} messages with {k} submitters: {' '.join(argv)}")
    t0 = time.monotonic()
    deadline = t0 + timeout
    with ThreadPoolExecutor(max_workers=k) as pool:
        futures = [pool.submit(submit, i) for i in range(n)]
        for f in futures:
            f.result(timeout=max(1.0, deadline - time.monotonic()))
            if res.failures > max(10, n // 100):
                for g in futures:
                    g.cancel()
                break
    res.submit_s = time.monotonic() - t0
    if first_error:
        log(f"{name}: {res.failures} submission(s) failed; first error: {first_error[0]}")
    want = n - res.failures
    last_log = time.monotonic()
    while True:
        res.delivered = count_new(newdir)
        if res.delivered >= want:
            break
        now = time.monotonic()
        if now >= deadline:
            res.note = f"timed out after {timeout:.0f}s with {res.delivered}/{want} delivered"
            log(f"{name}: {res.note}")
            return res
        if now - last_log >= 5:
            log(f"{name}: {res.delivered}/{want} delivered")
            last_log = now
        time.sleep(0.02)
    res.total_s = time.monotonic() - t0
    if res.failures:
        res.note = f"{res.failures} submissions failed"
        res.total_s = None
    log(f"{name}: {res.delivered} delivered in {res.total_s or 0:.2f}s (submissions done at {res.submit_s:.2f}s)")
    return res


# --------------------------------------------------------------------------- Postfix

class PrivatePostfix:
    """A private Debian Postfix instance under `tmp`, delivering to Maildir."""

    def __init__(self, tmp: Path, user: pwd.struct_passwd):
        self.tmp = tmp
        self.conf = tmp / "pfx"
        self.queue = tmp / "pfxq"
        self.data = tmp / "pfxdata"
        self.spool = tmp / "pfxmail"
        self.user = user
        self.seen: set[harness.Proc] = set()

    @property
    def maillog(self) -> Path:
        return self.conf / "maillog"

    @property
    def newdir(self) -> Path:
        return self.spool / self.user.pw_name / "new"

    def setup(self) -> None:
        for d in (self.conf, self.queue, self.data, self.spool):
            d.mkdir(parents=True)
        shutil.chown(self.data, "postfix", "postfix")
        for d in (self.conf, self.queue):
            d.chmod(0o755)
        self.spool.chmod(0o1777)  # local(8) creates USER/ in it as the recipient
        for name in ("dynamicmaps.cf", "dynamicmaps.cf.d", "postfix-files", "postfix-files.d",
                     "postfix-script", "post-install"):
            src = Path("/etc/postfix") / name
            if src.is_dir():
                shutil.copytree(src, self.conf / name)
            elif src.exists():
                shutil.copy2(src, self.conf / name)
        (self.conf / "main.cf").write_text(f"""# generated by bench/sendmail_bench.py
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localdomain
mydomain = localdomain
myorigin = localhost
mydestination = localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
local_recipient_maps =
mail_spool_directory = {self.spool}/
maillog_file = {self.maillog}
maillog_file_prefixes = /var, /dev/stdout, {self.tmp}
biff = no
""")
        (self.conf / "master.cf").write_text(self._master_cf())
        self._postfix("check")

    @staticmethod
    def _master_cf() -> str:
        """Debian's master.cf: chroot n everywhere, no inet listeners at all."""
        out, skip = ["# generated by bench/sendmail_bench.py: no inet services, chroot n\n"], False
        for line in Path("/etc/postfix/master.cf").read_text().splitlines(keepends=True):
            if line.lstrip().startswith("#") or not line.strip():
                out.append(line)
                continue
            if line[0].isspace():
                if not skip:
                    out.append(line)
                continue
            f = line.split()
            skip = len(f) >= 2 and f[1] == "inet"
            if skip:
                out.append("#" + line)
                continue
            if len(f) >= 8:
                f[4] = "n"
                line = " ".join(f) + "\n"
            out.append(line)
        return "".join(out)

    def _postfix(self, *args: str) -> None:
        # `script` gives postfix a tty: without one it prints nothing and just exits 1.
        cmd = f"postfix -c {self.conf} {' '.join(args)}"
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            tail = self.maillog.read_text(errors="replace")[-3000:] if self.maillog.exists() else ""
            raise RuntimeError(f"{cmd} failed ({r.returncode}):\n{r.stdout}{r.stderr}\n{tail}")

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def snapshot(self) -> None:
        pid = self.master_pid()
        if pid:
            for q in {pid} | harness.descendants(pid):
                p = harness.Proc.of(q)
                if p:
                    self.seen.add(p)

    def start(self) -> None:
        self._postfix("start")
        deadline = time.monotonic() + 30
        while self.master_pid() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.master_pid() is None:
            raise RuntimeError("postfix master did not write its pid file within 30s")
        self.snapshot()

    def sendmail_argv(self) -> list[str]:
        return ["/usr/sbin/sendmail", "-C", str(self.conf), "-f", SENDER, f"{self.user.pw_name}@localhost"]

    def stop(self) -> None:
        self.snapshot()
        try:
            self._postfix("stop")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"postfix: stop failed: {e}")
        deadline = time.monotonic() + 15
        while any(p.alive() for p in self.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = harness.kill_procs(self.seen)
        if left:
            log(f"postfix: killed {len(left)} leftover process(es) by PID")


def bench_postfix(tmp: Path, user: pwd.struct_passwd, n: int, k: int, size: int, timeout: float) -> Result:
    if os.geteuid() != 0:
        r = Result("Postfix", n)
        r.note = "not run: a private Postfix instance needs root"
        return r
    if not Path("/usr/sbin/postfix").exists():
        r = Result("Postfix", n)
        r.note = "not run: /usr/sbin/postfix not installed"
        return r
    pf = PrivatePostfix(tmp / "postfix", user)
    try:
        pf.setup()
        pf.start()
        res = run_load("Postfix", pf.sendmail_argv(), {"PATH": "/usr/sbin:/usr/bin:/bin", "LC_ALL": "C"},
                       f"{user.pw_name}@localhost", pf.newdir, n, k, size, timeout)
        pf.snapshot()
        return res
    except Exception as e:  # noqa: BLE001 - report and keep going with the other MTA
        r = Result("Postfix", n)
        r.note = f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        log(f"postfix: {e}")
        return r
    finally:
        pf.stop()


# --------------------------------------------------------------------------- Postern

def bench_postern(binary: Path, user: pwd.struct_passwd | None, n: int, k: int, size: int,
                  timeout: float, tmp: Path) -> Result:
    if not binary.is_file():
        r = Result("Postern", n)
        r.note = f"not run: no binary at {binary} (cargo build --release)"
        return r
    inst = None
    try:
        inst = harness.Instance.create(binary, user=user, tmp_base=tmp)
        inst.start()
        rcpt_user = user.pw_name if user else pwd.getpwuid(os.geteuid()).pw_name
        argv = inst.argv(["-c", str(inst.root), "sendmail", "-f", SENDER, f"{rcpt_user}@localhost"])
        return run_load("Postern", argv, inst.env(), f"{rcpt_user}@localhost",
                        inst.maildir_path(rcpt_user) / "new", n, k, size, timeout)
    except Exception as e:  # noqa: BLE001 - report and keep going
        r = Result("Postern", n)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        r.note = f"failed: {first}"
        log(f"postern: {e}")
        return r
    finally:
        if inst is not None:
            killed = inst.close()
            if killed:
                log(f"postern: killed {len(killed)} leftover process(es) by PID")


# --------------------------------------------------------------------------- report

def table(results: list[Result], n: int, k: int, size: int) -> str:
    rows = ["| MTA | messages | submitters | submit s | total s | msgs/s | note |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for r in results:
        rows.append(f"| {r.name} | {r.n} | {k} | "
                    f"{f'{r.submit_s:.2f}' if r.submit_s is not None else '-'} | "
                    f"{f'{r.total_s:.2f}' if r.total_s else '-'} | "
                    f"{f'{r.rate:.0f}' if r.rate else '-'} | {r.note} |")
    by = {r.name: r for r in results}
    pf, pn = by.get("Postfix"), by.get("Postern")
    if pf and pn and pf.rate and pn.rate:
        ratio = f"**Postern/Postfix = {pn.rate / pf.rate:.2f}x**"
    else:
        ratio = "Postern/Postfix ratio: n/a (a side did not complete)"
    cpu = platform.processor() or platform.machine()
    return (f"sendmail -> Maildir, {n} messages of ~{size} bytes, {k} parallel submitters, "
            f"{os.cpu_count()} CPUs ({cpu}), {time.strftime('%Y-%m-%d')}\n\n" + "\n".join(rows) + f"\n\n{ratio}\n")


def main() -> int:
    ap = argparse.ArgumentParser(description="sendmail -> Maildir throughput, Postern vs Postfix")
    ap.add_argument("-n", type=int, default=10000, help="messages per MTA (default 10000)")
    ap.add_argument("-k", type=int, default=4, help="parallel submitters (default 4)")
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per MTA (default 900)")
    ap.add_argument("--only", choices=["postfix", "postern"], help="run one MTA only")
    ap.add_argument("--binary", type=Path, default=None, help="postern binary (default target/release/postern)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    args = ap.parse_args()
    if args.n < 1 or args.k < 1:
        ap.error("-n and -k must be positive")

    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = (args.binary or target / "release" / "postern").resolve()
    if os.geteuid() == 0:
        user = harness.ensure_user(harness.TEST_USER)
    else:
        user = None
    run_user = user or pwd.getpwuid(os.geteuid())
    harness.become_subreaper()
    base = Path(tempfile.mkdtemp(prefix="postern-bench-"))
    base.chmod(0o755)
    if user is not None and os.geteuid() == 0 and not harness.readable_by_others(binary) and binary.is_file():
        copy = base / "postern"
        shutil.copy2(binary, copy)
        copy.chmod(0o755)
        binary = copy
    results = []
    try:
        if args.only in (None, "postfix"):
            results.append(bench_postfix(base, run_user, args.n, args.k, args.size, args.timeout))
        if args.only in (None, "postern"):
            results.append(bench_postern(binary, user, args.n, args.k, args.size, args.timeout, base))
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(table(results, args.n, args.k, args.size))
    return 0 if all(r.rate for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
