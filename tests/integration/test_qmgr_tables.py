"""qmgr and a changed lookup table (issue 12): after `postern postmap` rewrites
the `transport_maps` table under a running instance, qmgr logs Postfix's
`table NAME has changed -- restarting` and exits; master starts a fresh qmgr
that routes the next message by the new table, with no reload."""

from __future__ import annotations

import re
import time

from postern import free_port
from test_agents import MSG, give, lines, postconf, wait_log
from test_smtp_client import Sink


def write_hash(inst, text: str) -> str:
    """Writes the source file `transport` and builds transport.db with postern postmap."""
    p = inst.root / "transport"
    p.write_text(text)
    give(inst, p)
    inst.run("postmap", f"hash:{p}")
    return f"hash:{p}"


def test_transport_table_change_restarts_qmgr(instance):
    table = write_hash(instance, "route.test error:5.1.1 first route\n")
    postconf(instance, f"transport_maps = {table}")
    instance.start()
    instance.sendmail(["-f", "", "a@route.test"], MSG % b"before")
    first = wait_log(instance, "to=<a@route.test>")
    assert "status=bounced (first route)" in first[0], first
    time.sleep(1.1)  # a new modification time even on coarse clocks
    write_hash(instance, "route.test discard:second route\n")
    instance.sendmail(["-f", "", "b@route.test"], MSG % b"after")
    restart = wait_log(instance, f"table {table} has changed -- restarting")
    assert "qmgr" in restart[0]
    got = wait_log(instance, "to=<b@route.test>")
    assert "status=sent (second route)" in got[0], got
    assert "first route" not in " ".join(got)
    assert not lines(instance, "to=<b@route.test>, relay=error")
    # Nothing was lost on the way: the queue is empty, no process crashed.
    instance.wait_for(lambda: not instance.queue_files(), what="empty queue")
    assert not lines(instance, "exit status") and not lines(instance, "killed by signal")


def test_delivery_under_way_finishes_before_restart(instance):
    """A delivery in progress when the table changes (the peer waits 5 s before
    answering DATA) completes once, by the old route; qmgr exits only after it,
    and the next message takes the new route."""
    port = free_port()
    with Sink(port, "-w", "5"):
        table = write_hash(instance, f"route.test smtp:[127.0.0.1]:{port}\n")
        postconf(instance, f"transport_maps = {table}")
        instance.start()
        instance.sendmail(["-f", "", "a@route.test"], MSG % b"slow")
        wait_log(instance, "(queue active)")
        time.sleep(1.1)
        write_hash(instance, "route.test discard:second route\n")
        restart = wait_log(instance, "has changed -- restarting")
        sent = wait_log(instance, "to=<a@route.test>")
        instance.sendmail(["-f", "", "b@route.test"], MSG % b"after")
        got = wait_log(instance, "to=<b@route.test>")
    log = instance.log().splitlines()
    assert len(sent) == 1 and "status=sent" in sent[0] and f"127.0.0.1[127.0.0.1]:{port}" in sent[0]
    # The old qmgr waited for the delivery: its statistics line comes after it.
    tag = re.search(r"qmgr\[\d+\]:", restart[0]).group(0)
    stats = [i for i, l in enumerate(log) if tag in l and "statistics:" in l]
    assert stats and log.index(restart[0]) < log.index(sent[0]) < stats[0], (tag, stats)
    # A fresh qmgr took the second message; the first was not delivered again.
    assert tag not in lines(instance, "(queue active)")[-1]
    assert len(lines(instance, "to=<a@route.test>")) == 1
    assert "status=sent (second route)" in got[0], got
    instance.wait_for(lambda: not instance.queue_files(), what="empty queue")
