"""qmgr's scheduler (issue 4): dead-destination detection, delay warnings and
the destination rate delay, against loopback peers (a port nobody listens
on, Postfix's smtp-sink)."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import time

import pytest

from postern import free_port
from test_smtp_client import Sink, postconf, wait_queue_empty

MSG = b"From: snd@localhost\nSubject: qmgr test\n\nhello\n"


def attempt_lines(log: str) -> list[str]:
    """Deferrals after a real connection attempt (not qmgr's own)."""
    return [l for l in log.splitlines()
            if "status=deferred (connect to" in l]


def suspended_lines(log: str) -> list[str]:
    return [l for l in log.splitlines()
            if "status=deferred (delivery temporarily suspended: connect to" in l]


def test_dead_destination_defers_without_connecting(instance):
    """Ten messages to a relayhost nobody listens on: a few connection attempts
    fail (initial concurrency 5, one fewer after each failure), then the failed
    pseudo-cohorts exceed the limit (1), the destination is dead for
    minimal_backoff_time, and the rest are deferred at once with the last
    failure's reason."""
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}",
             "minimal_backoff_time = 300s", "maximal_backoff_time = 4000s")
    instance.start()
    for i in range(10):
        instance.sendmail(["-f", "snd@localhost", f"u{i}@remote.example"], MSG)
    instance.wait_for(lambda: len(attempt_lines(instance.log()))
                      + len(suspended_lines(instance.log())) >= 10,
                      what="10 deferrals")
    instance.wait_for(lambda: len([p for p in instance.queue_files() if "/deferred/" in str(p)]) == 10,
                      what="10 messages in deferred/")
    log = instance.log()
    attempts, suspended = attempt_lines(log), suspended_lines(log)
    # At most the initial concurrency is in flight when the destination dies.
    assert 1 <= len(attempts) <= 5, "\n".join(attempts)
    assert len(suspended) >= 5, log
    assert len(attempts) + len(suspended) == 10, log
    for l in suspended:
        assert "relay=none" in l and "dsn=4.4.1" in l, l
        assert f"127.0.0.1[127.0.0.1]:{port}: Connection refused)" in l, l
    assert "declared dead" in log
    # The defer log has the reason, for mailq.
    assert "delivery temporarily suspended" in instance.postqueue_p()


def test_delay_warning_reaches_sender(instance):
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}",
             "delay_warning_time = 1s", "queue_run_delay = 1s",
             "minimal_backoff_time = 1s", "maximal_backoff_time = 2s")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
    files = instance.wait_for_mail("snd", 1, timeout=30)
    notice = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert notice["Subject"] == "Delayed Mail (still being retried)", notice
    text = files[0].read_text(errors="replace")
    assert "far@remote.example" in text
    assert "Action: delayed" in text
    assert "Connection refused" in text
    # One warning only, though retries continue every second or two.
    time.sleep(4)
    assert len(instance.new_messages("snd")) == 1
    assert instance.log().count("sender delay notification") == 1
    # The message itself is still queued.
    assert any("/deferred/" in str(p) or "/active/" in str(p) for p in instance.queue_files())


def test_no_delay_warning_when_off(instance):
    port = free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{port}",
             "queue_run_delay = 1s", "minimal_backoff_time = 1s", "maximal_backoff_time = 1s")
    instance.start()
    instance.sendmail(["-f", "snd@localhost", "far@remote.example"], MSG)
    instance.wait_for(lambda: len(attempt_lines(instance.log())) >= 2, timeout=30,
                      what="two delivery attempts")
    time.sleep(1)
    assert instance.new_messages("snd") == []
    assert "delay notification" not in instance.log()


@pytest.mark.skipif(shutil.which("smtp-sink") is None, reason="smtp-sink not installed")
def test_destination_rate_delay(instance):
    port = free_port()
    with Sink(port):
        postconf(instance, f"relayhost = [127.0.0.1]:{port}",
                 "default_destination_rate_delay = 1s")
        instance.start()
        t0 = time.monotonic()
        for i in range(3):
            instance.sendmail(["-f", "snd@localhost", f"r{i}@remote.example"], MSG)
        instance.wait_for(lambda: instance.log().count("status=sent") >= 3, timeout=30,
                          what="3 deliveries")
        wait_queue_empty(instance)
        elapsed = time.monotonic() - t0
    assert elapsed >= 1.9, elapsed
    sent = [l for l in instance.log().splitlines() if "status=sent" in l]
    stamps = []
    for l in sent:
        m = re.match(r"^\S+\s+\S+\s+(\d+):(\d+):(\d+)(?:\.(\d+))?", l) or \
            re.match(r"^\S+T(\d+):(\d+):(\d+)(?:\.(\d+))?", l)
        assert m, l
        h, mi, s, frac = m.groups()
        stamps.append(int(h) * 3600 + int(mi) * 60 + int(s) + (float("0." + frac) if frac else 0))
    # Deliveries to one destination are at least the rate delay apart
    # (second resolution in the log: 3 deliveries span at least 2 s, minus rounding).
    assert max(stamps) - min(stamps) >= 1.0, sent
