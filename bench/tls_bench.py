#!/usr/bin/env python3
"""tls_bench.py -- TLS handshakes/s and TLS message throughput, Postern's smtpd against
Debian's Postfix smtpd, configured alike, in the same run (issue 6).

Run it through bench/tls-bench.sh (which documents the flags). For each MTA, back to back:

  1. a fresh private instance (bench/smtpd_bench.py's BenchPostfix / BenchPostern) with
     `smtpd_tls_security_level = may` and the same RSA-2048 key and certificate (minted
     here with the openssl CLI), session tickets/cache at their defaults;
  2. phase "handshake": N concurrent clients, each repeating connect, EHLO, STARTTLS,
     TLS handshake (full, no resumption), EHLO, QUIT, for a fixed number of connections;
  3. phase "message": the same with one 1 KB message per connection after the second
     EHLO (MAIL, RCPT, DATA); counted when the server answers 250 to the final dot;
  4. CPU seconds of the MTA's process tree over each phase (/proc, as smtpd_bench);
  5. stop, kill leftovers by PID.

The client is Python's asyncio + ssl (OpenSSL), in --procs worker processes so that it is
not the bottleneck on 2 cores; it is the same client for both MTAs. Results as a markdown
table with Postern/Postfix ratios, for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import pwd
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
sys.path.insert(0, str(HERE))
import postern as harness  # noqa: E402
import smtpd_bench as sbench  # noqa: E402

BODY = b"Subject: tls bench\r\n\r\n" + (b"x" * 70 + b"\r\n") * 14  # ~1 KB


def log(msg: str) -> None:
    print(f"[tls-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def reply(r: asyncio.StreamReader) -> int:
    while True:
        line = await r.readline()
        if not line:
            raise EOFError
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


async def one(port: int, ctx: ssl.SSLContext, message: bool, rcpt: str) -> bool:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        async def cmd(line: bytes, want: int) -> None:
            w.write(line + b"\r\n")
            await w.drain()
            code = await reply(r)
            if code != want:
                raise RuntimeError(f"{line!r}: {code}")
        if await reply(r) != 220:
            return False
        await cmd(b"EHLO bench.client", 250)
        await cmd(b"STARTTLS", 220)
        await w.start_tls(ctx)
        await cmd(b"EHLO bench.client", 250)
        if message:
            await cmd(b"MAIL FROM:<bench@localhost>", 250)
            await cmd(f"RCPT TO:<{rcpt}>".encode(), 250)
            await cmd(b"DATA", 354)
            await cmd(BODY + b".", 250)
        await cmd(b"QUIT", 221)
        return True
    finally:
        w.close()


async def worker_async(port: int, clients: int, conns: int, message: bool, rcpt: str) -> tuple[int, int]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    # Full handshakes only: a fresh context per connection would also work; OpenSSL's
    # client does not resume unless given a session, and asyncio never does.
    left = [conns]
    ok = [0, 0]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                if await asyncio.wait_for(one(port, ctx, message, rcpt), 60):
                    ok[0] += 1
                else:
                    ok[1] += 1
            except Exception:  # noqa: BLE001 - counted as a failure
                ok[1] += 1
    await asyncio.gather(*(loop() for _ in range(clients)))
    return ok[0], ok[1]


def worker(args: tuple[int, int, int, bool, str]) -> tuple[int, int]:
    return asyncio.run(worker_async(*args))


def phase(port: int, clients: int, conns: int, procs: int, message: bool, rcpt: str) -> tuple[float, int, int]:
    per_proc_clients = max(1, clients // procs)
    jobs = [(port, per_proc_clients, conns // procs, message, rcpt) for _ in range(procs)]
    t0 = time.monotonic()
    with multiprocessing.Pool(procs) as pool:
        res = pool.map(worker, jobs)
    dt = time.monotonic() - t0
    return dt, sum(a for a, _ in res), sum(b for _, b in res)


def tree_cpu(master_pid: int | None) -> float:
    if not master_pid:
        return 0.0
    total = 0.0
    for pid in {master_pid} | harness.descendants(master_pid):
        st = sbench.proc_stat(pid)
        if st:
            total += st[1] + st[2]
    return total


def mint(d: Path) -> tuple[Path, Path]:
    key, cert = d / "bench.key", d / "bench.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=bench.localdomain"], check=True,
                   capture_output=True, timeout=60)
    key.chmod(0o644)
    cert.chmod(0o644)
    return cert, key


def bench(kind: str, a, tmp: Path, user: pwd.struct_passwd, cert: Path, key: Path) -> dict:
    listen = f"127.0.0.1:{harness.free_port()}"
    tls = [f"smtpd_tls_cert_file = {cert}", f"smtpd_tls_key_file = {key}", "smtpd_tls_security_level = may"]
    if kind == "postfix":
        mta = sbench.BenchPostfix(tmp / "postfix", user, listen)
        mta.setup()
        subprocess.run(["postconf", "-c", str(mta.conf), "-e", *tls], check=True, capture_output=True, timeout=30)
    else:
        mta = sbench.BenchPostern(a.binary, user, tmp, listen)
        mta.setup()
        mta.inst.run("postconf", "-e", *tls)
    out = {"mta": mta.name}
    try:
        mta.start()
        host, port = sbench.loopback(listen)
        sbench.wait_port(host, port)
        rcpt = f"{user.pw_name}@localhost"
        phase(port, a.clients, a.clients * 2, a.procs, True, rcpt)  # warm-up (processes, caches)
        for name, message in (("handshake", False), ("message", True)):
            mta.snapshot()
            c0 = tree_cpu(mta.master_pid())
            dt, ok, bad = phase(port, a.clients, a.connections, a.procs, message, rcpt)
            mta.snapshot()
            cpu = tree_cpu(mta.master_pid()) - c0
            out[name] = {"secs": dt, "ok": ok, "failed": bad, "rate": ok / dt if dt else 0,
                         "cpu_ms": 1000 * cpu / ok if ok else None}
            log(f"{mta.name} {name}: {ok} ok, {bad} failed in {dt:.2f}s = {ok / dt:.0f}/s, "
                f"cpu {out[name]['cpu_ms'] or 0:.2f} ms/conn")
    finally:
        mta.stop()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--only", choices=("postfix", "postern"))
    p.add_argument("--binary", type=Path, default=None)
    a = p.parse_args()
    if a.binary is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", HERE.parent / "target"))
        a.binary = target / "release" / "postern"
    tmp = Path(tempfile.mkdtemp(prefix="tls-bench-"))
    tmp.chmod(0o755)
    user = harness.ensure_user() if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    binary = tmp / "postern"
    subprocess.run(["cp", str(a.binary), str(binary)], check=True)
    binary.chmod(0o755)
    a.binary = binary
    certs = tmp / "certs"
    certs.mkdir()
    certs.chmod(0o755)
    cert, key = mint(certs)
    results = []
    kinds = [a.only] if a.only else ["postfix", "postern"]
    if os.geteuid() != 0 and "postfix" in kinds:
        log("not root: Postfix skipped")
        kinds.remove("postfix")
    for k in kinds:
        results.append(bench(k, a, tmp, user, cert, key))
    print(f"\nTLS (STARTTLS, RSA-2048, TLSv1.3 full handshakes), {a.clients} concurrent clients, "
          f"{a.connections} connections per phase, client: Python asyncio+ssl in {a.procs} processes\n")
    print("| phase | MTA | connections/s | server CPU ms/conn | failed |")
    print("|---|---|---|---|---|")
    for ph in ("handshake", "message"):
        for r in results:
            v = r.get(ph)
            if v:
                cpu = f"{v['cpu_ms']:.2f}" if v["cpu_ms"] is not None else "-"
                print(f"| {ph} | {r['mta']} | {v['rate']:.0f} | {cpu} | {v['failed']} |")
    if len(results) == 2 and all(ph in r for r in results for ph in ("handshake", "message")):
        pf, pn = results
        print("\n| phase | Postern/Postfix throughput | Postern/Postfix CPU per connection |")
        print("|---|---|---|")
        for ph in ("handshake", "message"):
            t = pn[ph]["rate"] / pf[ph]["rate"] if pf[ph]["rate"] else float("nan")
            c = (pn[ph]["cpu_ms"] / pf[ph]["cpu_ms"]) if pf[ph]["cpu_ms"] and pn[ph]["cpu_ms"] else float("nan")
            print(f"| {ph} | {t:.2f} | {c:.2f} |")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
