"""test_content_filter.py -- the after-queue content filter (content_filter, Postfix's
FILTER_README) with real filters on loopback.

* smtp variant: `content_filter = scan:[127.0.0.1]:PORT` with a `scan` smtp service; the
  filter (a scripted SMTP peer; the test plays its reinjecting half: it adds a header and
  sends the message on to a second smtpd `127.0.0.1:PORT2 … -o content_filter= -o
  receive_override_options=…`). The message is delivered with the filter's header, the
  filter saw it once, nothing loops.
* pipe variant: FILTER_README's simple filter (`filter unix - n n - 10 pipe flags=Rq
  user=filter null_sender= argv=SCRIPT -f ${sender} -- ${recipient}`, a shell script that
  reinjects with `sendmail -G -i`), turned on per service with `-o content_filter=filter:dummy`
  on the smtpd line: SMTP mail is filtered, mail from sendmail (pickup) is not.
* per service: main.cf's content_filter applies to pickup (sendmail) and smtpd; a service
  with `-o content_filter=` (empty) is not filtered; an access FILTER action overrides
  content_filter.
* amavisd-new as the filter (its own config file, its own ports, no virus or spam
  scanners), run privately in the foreground; skipped with the reason when it is not
  installed.

Every process started here is stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import os
import pwd
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from postern import MAX_WAIT, as_user_prefix, free_port
from test_rewrite import mail, parse
from test_smtp_client import Peer, postconf, wait_port, wait_queue_empty

# FILTER_README's reinjection smtpd, option for option.
REINJECT_OPTIONS = """
    -o content_filter=
    -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
    -o smtpd_helo_restrictions=
    -o smtpd_client_restrictions=
    -o smtpd_sender_restrictions=
    -o smtpd_relay_restrictions=
    -o smtpd_recipient_restrictions=permit_mynetworks,reject
    -o smtpd_data_restrictions=
    -o mynetworks=127.0.0.0/8
    -o smtpd_authorized_xforward_hosts=127.0.0.0/8"""


def add_services(inst, *lines: str) -> None:
    master = inst.root / "master.cf"
    master.write_text(master.read_text() + "".join(l + "\n" for l in lines))


def smtp_line_option(inst, option: str) -> None:
    """Appends `option` (-o name=value) to the instance's main smtpd service line."""
    master = inst.root / "master.cf"
    head = f"{inst.listen} inet"
    lines = master.read_text().splitlines()
    i = next(i for i, l in enumerate(lines) if l.startswith(head))
    lines.insert(i + 1, f"    {option}")
    master.write_text("\n".join(lines) + "\n")


def send(port: int, rcpt: str, body: bytes, sender: str = "s@example.org") -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=MAX_WAIT) as c:
        c.sendmail(sender, [rcpt], body)


def reinject(peer: Peer, done: int, port: int, header: bytes) -> int:
    """The filter's second half: each message the peer received since `done` goes back
    to Postern's reinjection port with `header` prepended. Returns the new count."""
    while done < len(peer.messages):
        rcpts, body = peer.messages[done]
        body = body.replace(b"\r\n..", b"\r\n.")
        with smtplib.SMTP("127.0.0.1", port, local_hostname="filter.example", timeout=MAX_WAIT) as c:
            c.sendmail("s@example.org", rcpts, header + b"\r\n" + body)
        done += 1
    return done


def test_smtp_filter_and_reinjection(instance):
    peer = Peer()
    back = free_port()
    try:
        postconf(instance, f"content_filter = scan:[127.0.0.1]:{peer.port}")
        # FILTER_README's scan transport, without -o disable_dns_lookups=yes (Postern
        # refuses to start with it: its smtp client has no DNS-less mode).
        add_services(instance,
                     "scan unix - - n - 10 smtp -o smtp_send_xforward_command=yes -o max_use=20",
                     f"localhost:{back} inet n - n - - smtpd {REINJECT_OPTIONS}")
        instance.start()
        wait_port(instance.port)
        wait_port(back)
        send(instance.port, "u@localhost", b"Subject: scan me\r\n\r\nbody\r\n")
        instance.wait_for(lambda: peer.messages, what="message at the content filter")
        assert peer.messages[0][0] == ["u@localhost"]
        assert b"Subject: scan me" in peer.messages[0][1]
        assert not instance.new_messages("u"), "delivered before the filter"
        reinject(peer, 0, back, b"X-Filtered: yes")
        m = mail(instance, "u")[0]
        assert m.get_all("X-Filtered") == ["yes"] and m["Subject"] == "scan me"
        wait_queue_empty(instance)
        time.sleep(1)
        assert len(peer.messages) == 1, "the reinjected message went to the filter again"
        log = instance.log()
        assert f"relay=127.0.0.1[127.0.0.1]:{peer.port}" in log, log
    finally:
        peer.close()


def test_pipe_filter_per_smtpd_service(instance):
    script = instance.base / "filter.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# FILTER_README's simple filter: inspect, then reinject with sendmail -G -i.\n"
        f"{{ echo 'X-Pipe-Filter: seen'; cat; }} | {instance.binary} -c {instance.root} sendmail -G -i \"$@\"\n"
        "exit $?\n")
    script.chmod(0o755)
    if instance.user is not None:
        os.chown(script, instance.user.pw_uid, instance.user.pw_gid)
    add_services(instance,
                 f"filter unix - n n - 10 pipe flags=Rq user=filter null_sender= "
                 f"argv={script} -f ${{sender}} -- ${{recipient}}")
    smtp_line_option(instance, "-o content_filter=filter:dummy")
    instance.start()
    wait_port(instance.port)
    send(instance.port, "u@localhost", b"Subject: via smtp\r\n\r\nx\r\n")
    m = mail(instance, "u")[0]
    assert m["X-Pipe-Filter"] == "seen" and m["Subject"] == "via smtp"
    assert "relay=filter" in instance.log()
    # sendmail -> pickup: the smtpd service's -o content_filter does not apply.
    instance.sendmail(["-f", "s@localhost", "v@localhost"], b"Subject: local\n\nx\n")
    m = mail(instance, "v")[0]
    assert m["X-Pipe-Filter"] is None and m["Subject"] == "local"
    wait_queue_empty(instance)
    assert len(instance.new_messages("u")) == 1


def test_content_filter_per_service_and_filter_action(instance):
    peer = Peer()
    other = Peer()
    direct = free_port()
    try:
        postconf(instance, f"content_filter = smtp:[127.0.0.1]:{peer.port}",
                 "smtpd_sender_restrictions = check_sender_access "
                 f"inline:{{ {{redirect@example.org=FILTER smtp:[127.0.0.1]:{other.port}}} }}")
        add_services(instance, f"127.0.0.1:{direct} inet n - n - - smtpd -o content_filter=")
        instance.start()
        wait_port(instance.port)
        wait_port(direct)
        # pickup (sendmail) and smtpd take main.cf's content_filter.
        instance.sendmail(["-f", "s@localhost", "a@localhost"], b"Subject: pickup\n\nx\n")
        send(instance.port, "b@localhost", b"Subject: smtpd\r\n\r\nx\r\n")
        instance.wait_for(lambda: len(peer.messages) == 2, what="both messages at the filter")
        assert sorted(r[0] for r, _ in peer.messages) == ["a@localhost", "b@localhost"]
        # -o content_filter= on a service: delivered directly.
        send(direct, "c@localhost", b"Subject: direct\r\n\r\nx\r\n")
        assert mail(instance, "c")[0]["Subject"] == "direct"
        # An access FILTER action wins over content_filter.
        send(instance.port, "d@localhost", b"Subject: action\r\n\r\nx\r\n", sender="redirect@example.org")
        instance.wait_for(lambda: other.messages, what="message at the FILTER action's filter")
        assert other.messages[0][0] == ["d@localhost"]
        wait_queue_empty(instance)
        assert len(peer.messages) == 2
        assert not instance.new_messages("a") and not instance.new_messages("b")
    finally:
        peer.close()
        other.close()


AMAVIS = next((p for p in ("/usr/sbin/amavisd", "/usr/sbin/amavisd-new") if os.access(p, os.X_OK)), None)


def amavis_conf(base: Path, listen: int, back: int, user: str) -> Path:
    home = base / "amavis"
    for d in ("tmp", "db", "var"):
        (home / d).mkdir(parents=True, exist_ok=True)
    # amavisd refuses a configuration file (or its directory) its own user may write.
    etc = base / "amavis-etc"
    etc.mkdir(mode=0o755, exist_ok=True)
    conf = etc / "amavisd.conf"
    conf.write_text(f"""use strict;
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$pid_file = "$MYHOME/var/amavisd.pid";
$lock_file = "$MYHOME/var/amavisd.lock";
$daemon_user = '{user}';
$daemon_group = '{user}';
$mydomain = 'localhost';
$myhostname = 'amavis.localhost';
$max_servers = 1;
$child_timeout = 60;
$inet_socket_port = [{listen}];
$inet_socket_bind = '127.0.0.1';
@inet_acl = qw(127.0.0.1);
$notify_method = 'smtp:[127.0.0.1]:{back}';
$forward_method = 'smtp:[127.0.0.1]:{back}';
@bypass_virus_checks_maps = (1);
@bypass_spam_checks_maps = (1);
@bypass_banned_checks_maps = (1);
@bypass_header_checks_maps = (1);
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
$enable_db = 0;
$enable_zmq = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/var/amavis.log";
$log_level = 1;
@local_domains_maps = (1);
@av_scanners = ();
@av_scanners_backup = ();
$X_HEADER_TAG = 'X-Virus-Scanned';
$X_HEADER_LINE = "by amavisd-new (postern test)";
$final_virus_destiny = D_PASS;
$final_banned_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
@lookup_sql_dsn = ();
$sa_local_tests_only = 1;
$unix_socketname = undef;
1;
""")
    return conf


@pytest.mark.skipif(AMAVIS is None, reason="amavisd-new is not installed (apt-get install amavisd-new)")
def test_amavisd_new_as_the_filter(instance):
    listen, back = free_port(), free_port()
    user = instance.user.pw_name if instance.user is not None else pwd.getpwuid(os.geteuid()).pw_name
    if instance.user is None:
        pytest.skip("amavisd-new refuses a configuration file its own user owns: "
                    "the test needs root to run it as the instance's user")
    conf = amavis_conf(instance.base, listen, back, user)
    home = instance.base / "amavis"
    for p in [home, *home.rglob("*")]:
        os.chown(p, instance.user.pw_uid, instance.user.pw_gid)
    conf.chmod(0o644)
    postconf(instance, f"content_filter = smtp-amavis:[127.0.0.1]:{listen}")
    add_services(instance,
                 "smtp-amavis unix - - n - 2 smtp -o smtp_data_done_timeout=1200 "
                 "-o smtp_send_xforward_command=yes",
                 f"127.0.0.1:{back} inet n - n - - smtpd {REINJECT_OPTIONS}")
    instance.start()
    wait_port(instance.port)
    wait_port(back)
    cmd = [AMAVIS, "-c", str(conf), "foreground"]
    amavis = subprocess.Popen(as_user_prefix(instance.user) + cmd,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_port(listen, timeout=25)
        except AssertionError:
            amavis.kill()
            out = amavis.communicate(timeout=10)[0].decode(errors="replace")
            pytest.skip(f"amavisd-new did not start here within 25s: {out[-1500:]}")
        send(instance.port, "u@localhost", b"Subject: amavis\r\n\r\nclean body\r\n")
        m = mail(instance, "u")[0]
        assert m["Subject"] == "amavis"
        # amavisd-new's own Received header: the message went through it (scanners are
        # bypassed, so it adds no X-Virus-Scanned).
        assert any("(amavis, port" in r for r in m.get_all("Received")), m.as_string()
        wait_queue_empty(instance)
        log = instance.log()
        assert f"relay=127.0.0.1[127.0.0.1]:{listen}" in log, log
        assert len(instance.new_messages("u")) == 1
    finally:
        try:
            os.killpg(amavis.pid, signal.SIGTERM)
            amavis.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(amavis.pid, signal.SIGKILL)
            amavis.wait(timeout=10)
