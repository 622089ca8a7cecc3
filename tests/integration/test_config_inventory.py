"""Nothing accepted and ignored (issue 10 §3, §4): Debian's stock main.cf/master.cf checked
for settings Postern recognises but does not implement, start refusing the ones that change
security or mail flow, the SMTP client failing closed on broken tables, and the cheap
parameters implemented with it: smtp_fallback_relay, missing headers for
local_header_rewrite_clients, notify_classes, and the unix: table type (differential against
Debian's postmap).

Every peer is on loopback; nothing queries the machine's resolver.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest

from postern import free_port
from test_smtp_client import Sink, wait_queue_empty

STOCK = Path("/usr/share/postfix")
# What Debian's postinst adds to main.cf.debian + main.cf.tls for an "Internet Site".
POSTINST = """\
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = debian.example
alias_maps = hash:{aliases}
alias_database = hash:{aliases}
myorigin = /etc/mailname
mydestination = $myhostname, debian, localhost.localdomain, localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = all
inet_protocols = all
"""
# The instance paths kept from `postern init`'s main.cf (the test's only adjustments).
KEEP = ("queue_directory", "data_directory", "mail_owner", "maillog_file", "maillog_file_prefixes",
        "mail_spool_directory")
# Debian's stock main.cf settings that Postern does not implement (all harmless: reported).
STOCK_UNIMPLEMENTED = {"biff", "readme_directory", "smtp_tls_session_cache_database"}
MSG = b"From: snd@localhost\nSubject: inventory\n\nhello\n"


def postconf(inst, *settings: str) -> None:
    inst.run("postconf", "-e", *settings)


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def debian_postfix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Debian's postmap/postalias with an empty private config directory."""
    conf = Path(tempfile.mkdtemp(prefix="pf-conf-"))
    try:
        (conf / "main.cf").write_text("")
        env = {**os.environ, "MAIL_CONFIG": str(conf), "LC_ALL": "C"}
        return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=cwd,
                              timeout=30)
    finally:
        shutil.rmtree(conf, ignore_errors=True)


def own(inst, path: Path) -> None:
    if inst.user is not None:
        os.chown(path, inst.user.pw_uid, inst.user.pw_gid)


def stock_instance(inst) -> Path:
    """Debian's stock main.cf + master.cf in the instance (own paths and port kept)."""
    root = inst.root
    kept = [l for l in (root / "main.cf").read_text().splitlines()
            if l.split("=")[0].strip() in KEEP]
    aliases = root / "aliases"
    aliases.write_text("postmaster: root\n")
    own(inst, aliases)
    text = "\n".join(kept) + "\n" + (STOCK / "main.cf.debian").read_text() \
        + (STOCK / "main.cf.tls").read_text() + POSTINST.format(aliases=aliases)
    (root / "main.cf").write_text(text)
    master = (STOCK / "master.cf.dist").read_text()
    master = re.sub(r"(?m)^smtp      inet", f"{inst.listen} inet", master)
    (root / "master.cf").write_text(master)
    return aliases


def reload_and_wait(inst) -> None:
    """`postern reload`, then wait until master logged that it reloaded."""
    before = inst.log().count("reload -- version")
    inst.reload()
    inst.wait_for(lambda: inst.log().count("reload -- version") > before, what="master reloaded")


def warnings_of(stderr: bytes, what: str = "not implemented") -> list[str]:
    return [l for l in stderr.decode().splitlines() if what in l]


@pytest.mark.skipif(not (STOCK / "master.cf.dist").exists(), reason="Debian postfix not installed")
def test_stock_debian_config_lists_exactly_the_unimplemented(instance):
    aliases = stock_instance(instance)
    # Postfix's alias table (Berkeley DB) is reported with the command that rebuilds it.
    r = debian_postfix("postalias", str(aliases), cwd=instance.root)
    assert r.returncode == 0, r.stderr
    own(instance, Path(f"{aliases}.db"))
    r = instance.run("check", check=False)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert f'rebuild it with "postern postalias hash:{aliases}"' in err, err
    assert instance.run("start", check=False).returncode == 1
    instance.run("postalias", str(aliases))
    r = instance.run("check", check=False)
    assert r.returncode == 0, r.stderr.decode()
    lines = warnings_of(r.stderr)
    params = {m.group(1) for l in lines if (m := re.search(r"main\.cf: line \d+: parameter (\w+)=", l))}
    assert params == STOCK_UNIMPLEMENTED, lines
    # A non-root instance cannot chroot: each chroot=y service is reported as running
    # without it (a root master runs them in the jail: test_chroot.py).
    chrooted = {m.group(1) for l in warnings_of(r.stderr, "chroot=y")
                if (m := re.search(r"service (\S+)/\w+: chroot=y needs a master started as root", l))}
    want = set()
    for l in (instance.root / "master.cf").read_text().splitlines():
        f = l.split()
        if len(f) >= 8 and not l.startswith((" ", "\t", "#")) and f[4] == "y":
            want.add(f[0])
    non_root = instance.user is not None or os.geteuid() != 0
    assert chrooted == (want if non_root else set()), r.stderr.decode()
    # Nothing else: the stock commands (tlsmgr, trivial-rewrite…) and postlog are covered.
    others = [l for l in lines if "main.cf" not in l]
    assert others == [], others


DANGEROUS = [
    ("smtp_generic_maps = inline:{a=b}", "postscreen_bare_newline_action = enforce"),
    ("sender_dependent_relayhost_maps = inline:{a=b}",),
    ("smtpd_upstream_proxy_protocol = haproxy",),
    ("smtpd_recipient_restrictions = permit_mynetworks, reject_unverified_recipient, "
     "reject_unauth_destination",),
]


@pytest.mark.parametrize("settings", DANGEROUS, ids=lambda s: s[0].split()[0])
def test_start_refuses_dangerous_unimplemented(instance, settings):
    postconf(instance, *settings)
    name = settings[0].split()[0]
    for verb in ("check", "start", "start-fg"):
        r = instance.run(verb, check=False, timeout=15)
        err = r.stderr.decode()
        assert r.returncode == 1, (verb, err)
        assert f"parameter {name}" in err and "is not implemented" in err, (verb, err)
    assert not instance.status()
    assert instance.master_pid() is None


def test_dangerous_at_default_and_chroot_start(instance):
    """At Postfix's default the same parameters are only reported; chroot=y in a non-root
    instance is reported and logged (it runs without chroot); a -o override is checked like
    main.cf."""
    postconf(instance, "smtp_generic_maps =", "sender_dependent_relayhost_maps =", "smtpd_upstream_proxy_protocol =")
    master = instance.root / "master.cf"
    text = master.read_text()
    text = re.sub(r"(?m)^(pickup\s+unix\s+\S+\s+\S+\s+)n", r"\1y", text)
    master.write_text(text + "extra unix - - n - - smtpd -o smtpd_upstream_proxy_protocol=haproxy\n")
    r = instance.run("start", check=False)
    assert r.returncode == 1 and "smtpd_upstream_proxy_protocol=haproxy" in r.stderr.decode()
    master.write_text(text)
    instance.start()
    log = instance.log()
    if instance.user is not None or os.geteuid() != 0:
        assert "service pickup/unix: chroot=y needs a master started as root" in log, log
    assert "parameter sender_dependent_relayhost_maps= is not implemented" in log, log


@pytest.mark.parametrize("table", ["smtp_tls_policy_maps", "smtp_sasl_password_maps"])
def test_smtp_client_broken_table_defers(instance, table):
    port = free_port()
    path = instance.root / "table"
    postconf(instance, f"relayhost = [127.0.0.1]:{port}", f"{table} = hash:{path}",
             "smtp_sasl_auth_enable = yes", "smtp_sasl_security_options = noanonymous",
             "minimal_backoff_time = 300s")
    with Sink(port):
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=deferred" in instance.log(), what="deferred")
        log = instance.log()
        assert f"hash:{path} is unavailable" in log, log
        assert "status=sent" not in log
        want = "client TLS configuration problem" if "tls" in table else "Temporary lookup error"
        assert want in log, log
        # Fixed: a policy for the relay, or passwords for other servers only.
        fixed = f"[127.0.0.1]:{port} none" if "tls" in table else "other.example user:secret"
        path.write_text(fixed + "\n")
        own(instance, path)
        instance.run("postmap", f"hash:{path}")
        reload_and_wait(instance)
        instance.run("postqueue", "-f")
        instance.wait_for(lambda: "status=sent" in instance.log(), what="sent after the fix")
        wait_queue_empty(instance)


def test_fallback_relay_after_temporary_failure(instance):
    dead, port = free_port(), free_port()
    postconf(instance, f"relayhost = [127.0.0.1]:{dead}", f"smtp_fallback_relay = [127.0.0.1]:{port}")
    with Sink(port):
        instance.start()
        instance.sendmail(["-f", "snd@localhost", "u@remote.example"], MSG)
        instance.wait_for(lambda: "status=sent" in instance.log(), what="sent via the fallback")
        wait_queue_empty(instance)
    line = next(l for l in instance.log().splitlines() if "status=sent" in l)
    assert f"relay=127.0.0.1[127.0.0.1]:{port}" in line, line
    assert f"trying fallback relay [127.0.0.1]:{port}" in instance.log()


def _smtp_send(inst, rcpt: str, body: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=20) as c:
        c.sendmail("snd@localhost", [rcpt], body)


def test_missing_headers_only_for_local_header_clients(instance):
    instance.start()
    _smtp_send(instance, "hdr@localhost", b"Subject: bare\n\nbody\n")
    msg = parse(instance.wait_for_mail("hdr", 1)[0].read_bytes())
    assert msg["Message-Id"] and msg["Date"], msg.as_string()
    assert msg["From"] == "snd@localhost", msg.as_string()
    # Loopback no longer counts: permit_mynetworks with a foreign network.
    postconf(instance, "local_header_rewrite_clients = permit_mynetworks", "mynetworks = 10.0.0.0/8")
    reload_and_wait(instance)
    _smtp_send(instance, "hdr2@localhost", b"Subject: bare\n\nbody\n")
    msg = parse(instance.wait_for_mail("hdr2", 1)[0].read_bytes())
    assert msg["Message-Id"] is None and msg["Date"] is None and msg["From"] is None, msg.as_string()
    postconf(instance, "always_add_missing_headers = yes")
    reload_and_wait(instance)
    _smtp_send(instance, "hdr3@localhost", b"Subject: bare\n\nbody\n")
    msg = parse(instance.wait_for_mail("hdr3", 1)[0].read_bytes())
    assert msg["Message-Id"] and msg["Date"], msg.as_string()


def test_notify_classes_bounce_sends_postmaster_copy(instance):
    postconf(instance, "notify_classes = bounce, resource, software")
    instance.start()
    instance.sendmail(["-f", "sender@localhost", "loop@localhost"],
                      b"Delivered-To: loop@localhost\nSubject: loop\n\nbody\n")
    instance.wait_for_mail("sender", 1)
    copy = parse(instance.wait_for_mail("postmaster", 1)[0].read_bytes())
    assert copy["Subject"] == "Postmaster Copy: Undelivered Mail", copy.as_string()
    assert "double-bounce@" in copy["Return-Path"]
    assert any(p.get_content_type() == "text/rfc822-headers" for p in copy.walk())
    assert "postmaster non-delivery notification" in instance.log()


@pytest.mark.skipif(shutil.which("postmap") is None, reason="Debian postmap not installed")
def test_unix_table_differential_and_default_local_recipient_maps(instance):
    for key, table in [("root", "passwd.byname"), ("ROOT", "passwd.byname"),
                       ("root", "group.byname"), ("no-such-user-x", "passwd.byname")]:
        ours = instance.run("postmap", "-q", key, f"unix:{table}", check=False)
        theirs = debian_postfix("postmap", "-q", key, f"unix:{table}", cwd=instance.root)
        assert (ours.returncode, ours.stdout.decode()) == (theirs.returncode, theirs.stdout), key
    postconf(instance, "local_recipient_maps = proxy:unix:passwd.byname $alias_maps")
    instance.start()
    with smtplib.SMTP("127.0.0.1", instance.port, timeout=20) as c:
        c.ehlo("client.example")
        c.mail("snd@localhost")
        assert c.rcpt("root@localhost")[0] == 250
        code, text = c.rcpt("no-such-user-x@localhost")
        assert (code, text[:5]) == (550, b"5.1.1"), (code, text)


def test_syslog_facility_checked(instance):
    postconf(instance, "syslog_facility = local3")
    assert instance.run("check", check=False).returncode == 0
    postconf(instance, "syslog_facility = bogus")
    r = instance.run("check", check=False)
    assert r.returncode == 1 and 'unknown syslog facility: "bogus"' in r.stderr.decode(), r.stderr
