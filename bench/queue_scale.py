#!/usr/bin/env python3
"""queue_scale.py -- drain N deferred messages, Postern vs Debian's Postfix.

Run it through bench/queue-scale.sh (which documents the flags). For each MTA, in
the same run, on the same machine:

  1. a private instance in a temp dir (never /etc/postfix, never port 25) with
     `relayhost = [127.0.0.1]:PORT` (nothing listens there yet: the destination is
     down) and `defer_transports = smtp`;
  2. one message submitted with the MTA's own sendmail to a remote address: qmgr
     defers it ("deferred transport") into deferred/;
  3. the MTA is stopped, `defer_transports` removed, and that queue file copied
     N times under fresh queue IDs into deferred/ (Postfix: its hashed
     subdirectory deferred/X/, `hash_queue_depth = 1`), owner and mode kept, mtime
     an hour ahead (not due) -- filling is not timed and costs the same for both;
  4. the destination comes up (Postfix's smtp-sink on PORT), the MTA is started and
     flushed (`postqueue -f`); the clock runs from the flush until deferred/,
     active/ and incoming/ are empty (polled every 0.5 s).

Prints a markdown table (seconds, messages/s, Postern/Postfix ratio) on stdout;
progress on stderr. Loopback only, every phase bounded; every process started is
stopped, leftovers killed by PID.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))
import postern as harness  # noqa: E402
from sendmail_bench import PrivatePostfix, log  # noqa: E402
from test_smtp_client import Sink  # noqa: E402

SENDER = "bench@localhost"
RCPT = "sink@remote.example"
MSG = b"From: bench@localhost\nTo: sink@remote.example\nSubject: queue scale\n\n" + b"x" * 900 + b"\n"


def queue_id(i: int) -> str:
    """A short-form (Postfix-style) queue ID: ten hex digits, spread over the hash dirs."""
    return f"{(i * 2654435761 + 0x1000000000) % (1 << 40):010X}"


def count(queue: Path, dirs=("incoming", "active", "deferred")) -> int:
    n = 0
    for d in dirs:
        stack = [queue / d]
        while stack:
            try:
                with os.scandir(stack.pop()) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        else:
                            n += 1
            except FileNotFoundError:
                pass
    return n


def deferred_files(queue: Path) -> list[Path]:
    return [p for p in (queue / "deferred").rglob("*") if p.is_file()]


def wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def fill(template: Path, queue: Path, n: int, hashed: bool) -> float:
    """Copies `template` n times into deferred/ (not due for an hour)."""
    t0 = time.monotonic()
    data = template.read_bytes()
    st = template.stat()
    future = time.time() + 3600
    for i in range(n):
        qid = queue_id(i)
        d = queue / "deferred" / qid[0] if hashed else queue / "deferred"
        if hashed and not d.is_dir():
            d.mkdir(mode=0o700)
            os.chown(d, st.st_uid, st.st_gid)
        p = d / qid
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fchown(fd, st.st_uid, st.st_gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        os.utime(p, (future, future))
    template.unlink()
    os.sync()
    return time.monotonic() - t0


def sent(maillog: Path) -> int:
    with open(maillog, "rb") as f:
        return sum(1 for line in f if b"status=sent" in line)


def drain(name: str, queue: Path, n: int, flush, timeout: float, maillog: Path) -> dict:
    log(f"{name}: flushing {n} deferred messages")
    t0 = time.monotonic()
    flush()
    last, last_t = n, t0
    while True:
        left = count(queue)
        now = time.monotonic()
        if left == 0:
            break
        if left != last:
            last, last_t = left, now
        if now - t0 > timeout:
            raise RuntimeError(f"{left} messages left after {timeout:.0f}s")
        if now - last_t > 120:
            raise RuntimeError(f"no progress for 120 s ({left} left)")
        time.sleep(0.5)
    secs = time.monotonic() - t0
    log(f"{name}: {n} drained in {secs:.1f}s ({n / secs:.0f} msg/s)")
    got = sent(maillog)
    if got < n:
        raise RuntimeError(f"{name}: only {got} of {n} logged status=sent")
    return {"mta": name, "n": n, "secs": secs}


def bench_postfix(tmp: Path, n: int, port: int, timeout: float) -> dict:
    user = harness.ensure_user()
    pf = PrivatePostfix(tmp / "postfix", user)
    pc = lambda *kv: subprocess.run(["postconf", "-c", str(pf.conf), "-e", *kv], check=True)  # noqa: E731
    try:
        pf.setup()
        pc(f"relayhost = [127.0.0.1]:{port}", "defer_transports = smtp", "mydestination = localhost")
        pf.start()
        subprocess.run(["/usr/sbin/sendmail", "-C", str(pf.conf), "-f", SENDER, RCPT], input=MSG, check=True,
                       timeout=30)
        wait(lambda: len(deferred_files(pf.queue)) == 1, 60, "Postfix: template in deferred/")
        pf.stop()
        pc("defer_transports =")
        template = deferred_files(pf.queue)[0]
        log(f"postfix: filling {n} (template {template.name})")
        log(f"postfix: filled in {fill(template, pf.queue, n, hashed=True):.1f}s")
        # Postfix's start runs postsuper, which renames the copies to match their
        # inode numbers and logs as mail_owner: do that here, as root, untimed.
        # (postsuper writes the maillog itself while postlogd is down, as postfix.)
        shutil.chown(pf.maillog, "postfix", "postfix")
        r = subprocess.run(["postsuper", "-c", str(pf.conf)], capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise RuntimeError(f"postsuper: {r.stdout}{r.stderr}")
        with Sink(port):
            pf.start()
            return drain("Postfix", pf.queue, n, lambda: subprocess.run(
                ["postqueue", "-c", str(pf.conf), "-f"], check=True, timeout=30), timeout, pf.maillog)
    finally:
        pf.stop()


def attach_profiler(inst, how: str | None, out: Path | None):
    """`strace -c` or `perf record` on the running qmgr (None: no profiling)."""
    if not how:
        return None
    def argv0(pid: int) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            return b""
    qmgr = [p.pid for p in inst.processes() if argv0(p.pid).endswith(b"qmgr")]
    if not qmgr:
        raise RuntimeError("no qmgr process to profile")
    argv = (["strace", "-c", "-f", "-o", str(out)] if how == "strace"
            else ["perf", "record", "-g", "-o", str(out)]) + ["-p", str(qmgr[0])]
    prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return prof


def detach_profiler(prof) -> None:
    if prof is not None:
        prof.send_signal(2)
        prof.wait(timeout=120)


def bench_postern(tmp: Path, binary: Path, n: int, port: int, timeout: float,
                  profile: str | None = None, profile_out: Path | None = None) -> dict:
    inst = harness.Instance.create(binary, user=harness.ensure_user(), tmp_base=tmp)
    try:
        inst.run("postconf", "-e", f"relayhost = [127.0.0.1]:{port}", "defer_transports = smtp",
                 "mydestination = localhost")
        inst.start()
        inst.sendmail(["-f", SENDER, RCPT], MSG)
        queue = inst.root / "queue"
        wait(lambda: len(deferred_files(queue)) == 1, 60, "Postern: template in deferred/")
        inst.stop()
        inst.run("postconf", "-e", "defer_transports =")
        template = deferred_files(queue)[0]
        log(f"postern: filling {n} (template {template.name})")
        log(f"postern: filled in {fill(template, queue, n, hashed=False):.1f}s")
        with Sink(port):
            inst.start()
            prof = attach_profiler(inst, profile, profile_out)
            try:
                return drain("Postern", queue, n, lambda: inst.run("postqueue", "-f"), timeout, inst.log_path)
            finally:
                detach_profiler(prof)
    finally:
        left = inst.close()
        if left:
            log(f"postern: killed {len(left)} leftover process(es) by PID")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=30000, help="deferred messages (default 30000)")
    ap.add_argument("--only", choices=["postfix", "postern"])
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per drain")
    ap.add_argument("--binary", type=Path, default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
                    / "release" / "postern")
    ap.add_argument("--profile", choices=["strace", "perf"],
                    help="profile Postern's qmgr during the drain (strace -c, or perf record -g)")
    ap.add_argument("--profile-out", type=Path, default=Path("qmgr.profile"),
                    help="where the profile goes (default ./qmgr.profile)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("queue-scale: run as root (a private Postfix instance needs it)", file=sys.stderr)
        return 2
    harness.become_subreaper()
    base = Path(os.environ.get("TMPDIR", "/tmp"))
    tmp = Path(__import__("tempfile").mkdtemp(prefix="queue-scale.", dir=base))
    tmp.chmod(0o755)
    results = []
    try:
        if args.only in (None, "postfix"):
            results.append(bench_postfix(tmp, args.n, harness.free_port(), args.timeout))
        if args.only in (None, "postern"):
            results.append(bench_postern(tmp, args.binary, args.n, harness.free_port(), args.timeout,
                                         args.profile, args.profile_out.resolve()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"<!-- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}, kernel {platform.release()} -->")
    print("| MTA | deferred messages | drain s | msgs/s |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['mta']} | {r['n']} | {r['secs']:.1f} | {r['n'] / r['secs']:.0f} |")
    if len(results) == 2:
        pf, pt = results
        print(f"\n**Postern / Postfix drain time = {pt['secs'] / pf['secs']:.2f}x** (N = {args.n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
