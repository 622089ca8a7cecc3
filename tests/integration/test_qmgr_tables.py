"""qmgr and a changed lookup table (issue 12): after `postern postmap` rewrites
the `transport_maps` table under a running instance, qmgr logs Postfix's
`table NAME has changed -- restarting` and exits; master starts a fresh qmgr
that routes the next message by the new table, with no reload."""

from __future__ import annotations

import time

from test_agents import MSG, give, lines, postconf, wait_log


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
