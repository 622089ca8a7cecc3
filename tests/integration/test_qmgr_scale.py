"""qmgr at scale and qmgr's Postfix parameters (issue 10): incremental queue
scans (a large deferred queue drains in bounded time, with few scan passes),
`soft_bounce`, `defer_transports` (released by a flush only), expiry checked
after each attempt (`maximal_queue_lifetime = 0` means one try,
`bounce_queue_lifetime` for the null sender), and a `retry:` transport never
declaring its destination dead."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from postern import free_port
from test_smtp_client import Sink, postconf, wait_queue_empty

MSG = b"From: snd@localhost\nSubject: qmgr scale\n\nhello\n"

needs_sink = pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="smtp-sink not installed")


def in_queue(inst, queue: str) -> list[Path]:
    return [p for p in inst.queue_files() if f"/{queue}/" in str(p)]


def test_soft_bounce_agent_and_qmgr_bounces_become_deferrals(instance):
    """An error: transport (the agent's bounce) and an unroutable address
    (qmgr's own bounce): both logged status=deferred with 4.x.x, the message
    stays queued, no notice goes to the sender."""
    postconf(instance, "soft_bounce = yes",
             "default_transport = error:5.1.1 Mailbox unavailable",
             "relocated_maps = inline:{ moved@remote.example=new@else.example }")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "far@remote.example", "moved@remote.example"], MSG)
    instance.wait_for(lambda: "status=deferred (Mailbox unavailable)" in instance.log()
                      and "status=deferred (User has moved" in instance.log(),
                      what="soft-bounced error: delivery and relocated recipient")
    instance.wait_for(lambda: in_queue(instance, "deferred"), what="message in deferred/")
    log = instance.log()
    line = next(l for l in log.splitlines() if "to=<far@remote.example>" in l)
    assert "dsn=4.1.1, status=deferred (Mailbox unavailable)" in line, line
    line = next(l for l in log.splitlines() if "to=<moved@remote.example>" in l)
    assert "dsn=4.1.6, status=deferred (User has moved to new@else.example)" in line, line
    assert "status=bounced" not in log, log
    assert "non-delivery notification" not in log
    assert instance.new_messages("snd") == []


@needs_sink
def test_soft_bounce_smtp_5xx(instance):
    port = free_port()
    with Sink(port, "-f", "rcpt"):
        postconf(instance, "soft_bounce = yes", f"relayhost = [127.0.0.1]:{port}")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
        instance.wait_for(lambda: in_queue(instance, "deferred"), what="message in deferred/")
    line = next(l for l in instance.log().splitlines() if "to=<far@remote.example>" in l)
    assert re.search(r"dsn=4\.\d+\.\d+, status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\]"
                     r"(:\d+)? said: 5\d\d", line), line
    assert instance.new_messages("snd") == []


@needs_sink
def test_defer_transports_until_flush(instance):
    port = free_port()
    with Sink(port):
        postconf(instance, "defer_transports = smtp", f"relayhost = [127.0.0.1]:{port}",
                 "queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 1s")
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
        instance.wait_for(lambda: "dsn=4.3.2, status=deferred (deferred transport)" in instance.log(),
                          what="deferred transport")
        # Retries by the deferred-queue timer keep it deferred (no connection).
        instance.wait_for(lambda: instance.log().count("(deferred transport)") >= 2, timeout=15,
                          what="a second timer-driven attempt")
        assert "status=sent" not in instance.log()
        instance.run("postqueue", "-f")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="delivery after the flush")
        wait_queue_empty(instance)


def test_lifetime_zero_is_one_try(instance):
    """maximal_queue_lifetime = 0: the first failed attempt returns the
    message at once (not at the next deferred scan, 300 s away)."""
    port = free_port()  # nobody listens: connection refused
    postconf(instance, f"relayhost = [127.0.0.1]:{port}", "maximal_queue_lifetime = 0",
             "bounce_queue_lifetime = 0")
    instance.start()
    t0 = time.monotonic()
    instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
    instance.wait_for_mail("snd", 1, timeout=20)
    wait_queue_empty(instance, timeout=20)
    assert time.monotonic() - t0 < 20
    log = instance.log()
    assert "from=<snd@localhost>, status=expired, returned to sender" in log, log
    assert log.count("Connection refused") >= 1
    # The null sender: bounce_queue_lifetime, likewise one try, then gone.
    instance.sendmail(["-f", "", "far2@remote.example"], MSG)
    instance.wait_for(lambda: "from=<>, status=expired, returned to sender" in instance.log(),
                      timeout=20, what="null-sender message expired")
    wait_queue_empty(instance, timeout=20)


def test_retry_transport_is_not_a_dead_destination(instance):
    """Deferrals by the retry: agent (relay=none) do not make the destination
    dead: every message is handed to the agent, none is 'suspended'."""
    postconf(instance, "default_transport = retry:4.3.0 try later")
    instance.start()
    for i in range(8):
        instance.sendmail(["-f", "snd@localhost", f"r{i}@remote.example"], MSG)
    instance.wait_for(lambda: instance.log().count("status=deferred (try later)") >= 8,
                      what="8 retry: deferrals")
    log = instance.log()
    assert "declared dead" not in log, log
    assert "delivery temporarily suspended" not in log, log


def fill_deferred(inst, n: int) -> None:
    """Copies the one deferred queue file n times under fresh IDs (not due)."""
    [template] = in_queue(inst, "deferred")
    data, st = template.read_bytes(), template.stat()
    future = time.time() + 3600
    for i in range(n):
        p = template.parent / f"S{i:09d}"
        p.write_bytes(data)
        os.chown(p, st.st_uid, st.st_gid)
        p.chmod(0o700)
        os.utime(p, (future, future))
    template.unlink()


def test_large_deferred_queue_drains_incrementally(instance):
    """3,000 deferred messages, flushed to the discard agent: drained in
    bounded time, with a handful of scan passes (no rescan per message)."""
    n = 3000
    postconf(instance, "default_transport = discard:bench", "defer_transports = discard")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
    instance.wait_for(lambda: len(in_queue(instance, "deferred")) == 1, what="template deferred")
    instance.stop()
    postconf(instance, "defer_transports =")
    fill_deferred(instance, n)
    instance.start()
    t0 = time.monotonic()
    instance.run("postqueue", "-f")
    wait_queue_empty(instance, timeout=60)
    elapsed = time.monotonic() - t0
    instance.stop()
    log = instance.log()
    assert log.count("status=sent") >= n, log[-2000:]
    stats = re.findall(r"qmgr\[\d+\]: statistics: activated=(\d+) incoming_scans=(\d+) deferred_scans=(\d+)",
                       log)
    assert stats, log[-2000:]
    activated, inc, dfr = map(int, stats[-1])
    assert activated == n, stats
    assert dfr <= 3 and inc <= 10, f"scan passes: incoming {inc}, deferred {dfr}"
    assert elapsed < 60, elapsed
