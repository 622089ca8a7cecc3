"""Typed configuration validated once at load (issue 12 item 5): a boolean, numerical, time or
size parameter whose value does not convert is refused with Postfix's one-line wording, naming
the file, the line, the parameter and the value: `postern check` reports every one, `postern
start` refuses, and a daemon given a bad `-o` override dies with a fatal line.

Nothing here listens on the network except the instance's own loopback listener.
"""

from __future__ import annotations

import re
import socket

from postern import free_port


def append(path, text: str) -> int:
    """Appends `text` (one line) and returns its 1-based line number."""
    old = path.read_text()
    if old and not old.endswith("\n"):
        old += "\n"
    path.write_text(old + text + "\n")
    return old.count("\n") + 1


def connect_and_close(port: int) -> bool:
    """Connects to the loopback `port` (which makes master spawn its daemon) and hangs up."""
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        return True


def test_check_and_start_refuse_bad_values(instance):
    main_cf = instance.root / "main.cf"
    master_cf = instance.root / "master.cf"
    assert instance.run("check", check=False).returncode == 0
    lines = {
        "max_use": append(main_cf, "max_use = abc"),
        "biff": append(main_cf, "biff = maybe"),
        "max_idle": append(main_cf, "max_idle = 10x"),
        "message_size_limit": append(main_cf, "message_size_limit = -1"),
        "soft_bounce": append(master_cf, "typed unix n - n - 0 cleanup -o soft_bounce=perhaps"),
    }
    main, master = f"{main_cf}: line", f"{master_cf}: line"
    expected = [
        f"{main} {lines['max_use']}: bad numerical configuration: max_use = abc",
        f"{main} {lines['biff']}: bad boolean configuration: biff = maybe",
        f"{main} {lines['max_idle']}: parameter max_idle: bad time value or unit: 10x",
        f"{main} {lines['message_size_limit']}: invalid message_size_limit parameter value -1 < 0",
        f"{master} {lines['soft_bounce']}: bad boolean configuration: soft_bounce = perhaps",
    ]
    r = instance.run("check", check=False)
    err = r.stderr.decode()
    assert r.returncode != 0, err
    for e in expected:
        assert f"postern/postern-script: error: {e}\n" in err, (e, err)
    r = instance.run("start", check=False)
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert f"postern/postern-script: fatal: {expected[0]}\n" in err, err
    assert not instance.master_alive()
    assert not instance.status()


def test_one_bad_value_expanded_through_another_parameter(instance):
    main_cf = instance.root / "main.cf"
    n = append(main_cf, "my_limit = lots")
    m = append(main_cf, "default_process_limit = $my_limit")
    r = instance.run("check", check=False)
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert (f"{main_cf}: line {m}: bad numerical configuration: default_process_limit = lots"
            in err), err
    assert f"line {n}:" not in err, err


def test_good_values_of_every_kind_pass(instance):
    main_cf = instance.root / "main.cf"
    for line in ("max_use = 7", "biff = NO", "max_idle = 2m", "maximal_queue_lifetime = 3",
                 "message_size_limit = 0", "relay_destination_concurrency_limit = 4"):
        append(main_cf, line)
    r = instance.run("check", check=False)
    assert r.returncode == 0, r.stderr.decode()


def test_daemon_refuses_bad_values_after_reload(instance):
    """`reload` does not run the checks: a daemon started with a bad `-o` override, or after a
    bad main.cf edit, dies with Postfix's fatal line; master keeps its old configuration."""
    instance.start()
    port = free_port()
    append(instance.root / "master.cf",
           f"127.0.0.1:{port} inet n - n - - smtpd -o soft_bounce=perhaps")
    instance.reload()
    instance.wait_for(lambda: connect_and_close(port), what=f"listener on {port}")
    instance.wait_for(
        lambda: re.search(r"smtpd\[\d+\]: fatal: bad boolean configuration: "
                          r"soft_bounce = perhaps$", instance.log(), re.M),
        what="smtpd's fatal line for the bad -o")
    main_cf = instance.root / "main.cf"
    n = append(main_cf, "max_use = abc")
    bad = f"{main_cf}: line {n}: bad numerical configuration: max_use = abc"
    instance.reload()
    instance.wait_for(
        lambda: f"warning: reload failed, keeping the old configuration: {bad}" in instance.log(),
        what="master keeps the old configuration")
    assert instance.master_alive()
    instance.wait_for(lambda: connect_and_close(instance.port), what="smtpd spawned")
    instance.wait_for(lambda: re.search(rf"smtpd\[\d+\]: fatal: {re.escape(bad)}$",
                                        instance.log(), re.M),
                      what="smtpd's fatal line for the bad main.cf value")
