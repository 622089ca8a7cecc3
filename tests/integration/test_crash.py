"""Crash test (issue 2): while mail flows, kill -9 the master and all its
children at random moments, restart, 20 times over. Every message that
sendmail acknowledged is delivered at least once, none is stuck, no queue
file is corrupt."""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time

ROUNDS = int(os.environ.get("POSTERN_CRASH_ROUNDS", "20"))


def kill_all(inst) -> int:
    victims = [p for p in inst.processes() if p.alive()]
    for p in victims:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(p.alive() for p in victims) and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(victims)


def test_kill9_under_load(instance):
    inst = instance
    inst.run("postconf", "-e", "queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 2s")
    inst.start()
    acked: list[int] = []
    stop = threading.Event()
    rng = random.Random(int(os.environ.get("POSTERN_CRASH_SEED", "4242")))

    def sender() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            msg = b"Subject: crash %d\nX-Seq: %d\n\nbody %d\n" % (seq, seq, seq)
            r = inst.sendmail(["-f", "load@localhost", "sink@localhost"], msg, check=False)
            if r.returncode == 0:
                acked.append(seq)

    t = threading.Thread(target=sender, daemon=True)
    t.start()
    killed_total = 0
    try:
        for _ in range(ROUNDS):
            time.sleep(rng.uniform(0.05, 0.6))
            killed_total += kill_all(inst)
            inst.start()
    finally:
        stop.set()
        t.join(timeout=60)
    assert acked, "sendmail never succeeded"
    assert killed_total >= ROUNDS, killed_total
    inst.run("postqueue", "-f")

    def delivered() -> set[int]:
        seen = set()
        for p in inst.new_messages("sink"):
            m = re.search(rb"^X-Seq: (\d+)$", p.read_bytes(), re.M)
            if m:
                seen.add(int(m.group(1)))
        return seen

    inst.wait_for(lambda: set(acked) <= delivered(), timeout=90,
                  what=f"all {len(acked)} acknowledged messages delivered")
    inst.wait_for(lambda: not [p for p in inst.queue_files() if "/corrupt/" not in str(p)], timeout=60,
                  what="queue drained")
    corrupt = [p for p in inst.queue_files() if "/corrupt/" in str(p)]
    assert not corrupt, corrupt
    got = inst.new_messages("sink")
    print(f"crash test: {ROUNDS} rounds, {killed_total} processes killed, {len(acked)} acknowledged, "
          f"{len(got)} delivered ({len(got) - len(delivered())} duplicates)")
