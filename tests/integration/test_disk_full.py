"""A full queue file system (issue 10): the instance's queue directory is a small tmpfs
mounted by the test (root), so that space can be taken away and given back.

* queue_minfree and Postfix's free-space rule at MAIL: `452 4.3.1 Insufficient system
  storage` while free space is at or below queue_minfree (or below 1.5 x
  message_size_limit), with Postfix's warning; MAIL is accepted again when space returns.
* A DATA that runs out of space in cleanup is never acknowledged: the client gets a 4xx,
  no queue file is left behind, and the same message sent again after space returned is
  accepted and delivered. Every message that got a 250 is delivered.

Needs root (mount). The tmpfs is unmounted at the end; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
from pathlib import Path

import pytest

from test_smtpd import started, wait_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

SIZE_MB = 6


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill_to(queue: Path, leave: int) -> Path:
    """Writes a filler file in the queue file system so that about `leave` bytes stay free."""
    filler = queue / "filler"
    with open(filler, "ab") as f:
        need = free_bytes(queue) - leave
        if need > 0:
            f.write(b"\0" * need)
    return filler


def send(port: int, body_size: int, subject: str) -> tuple[int, str]:
    """One message from a local client; the reply code of MAIL, or of DATA's end."""
    with smtplib.SMTP("127.0.0.1", port, timeout=15) as s:
        s.ehlo("client.example")
        code, text = s.mail("sender@localhost")
        if code != 250:
            return code, text.decode()
        s.rcpt("user@localhost")
        body = f"From: sender@localhost\r\nSubject: {subject}\r\n\r\n".encode() + b"x" * body_size + b"\r\n"
        try:
            code, text = s.data(body)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode()
        return code, text.decode()


@pytest.fixture
def tmpfs_queue(make_instance):
    """An instance whose queue directory is a fresh tmpfs of SIZE_MB."""
    instance = make_instance(init=False)
    queue = instance.root / "queue"
    queue.mkdir(parents=True)
    if instance.user:
        os.chown(instance.root, instance.user.pw_uid, instance.user.pw_gid)
    owner = f"uid={instance.user.pw_uid},gid={instance.user.pw_gid}" if instance.user else "uid=0,gid=0"
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0755,{owner}", "tmpfs", str(queue)],
                   check=True, timeout=10)
    try:
        instance.init()
        yield instance, queue
    finally:
        try:
            instance.stop()
        except Exception:  # noqa: BLE001 - the instance fixture closes what is left
            pass
        subprocess.run(["umount", str(queue)], timeout=10, check=False)
        if queue.is_mount():
            subprocess.run(["umount", "-l", str(queue)], timeout=10, check=False)
        shutil.rmtree(queue, ignore_errors=True)


def test_full_queue_refuses_at_mail_and_never_acknowledges_a_lost_message(tmpfs_queue):
    inst, queue = tmpfs_queue
    mb = 1024 * 1024
    inst.run("postconf", "-e", "smtpd_error_sleep_time=0")
    started(inst, "message_size_limit=0", f"queue_minfree={2 * mb}")
    acked = 0
    assert send(inst.port, 1000, "before")[0] == 250
    acked += 1
    inst.wait_for_mail("user", acked)

    # Free space at queue_minfree: MAIL is refused, as Postfix refuses it.
    filler = fill_to(queue, 2 * mb - 64 * 1024)
    code, text = send(inst.port, 1000, "refused at MAIL")
    assert (code, text) == (452, "4.3.1 Insufficient system storage")
    inst.wait_for(lambda: "not enough free space in mail queue" in inst.log(), timeout=5,
                  what="Postfix's free-space warning")

    # MAIL passes (queue_minfree = 0) but the message does not fit: cleanup hits ENOSPC.
    inst.run("postconf", "-e", "queue_minfree=0")
    inst.reload()
    wait_port(inst.port)
    filler.unlink()
    filler = fill_to(queue, 512 * 1024)
    code, text = send(inst.port, 2 * mb, "too big for the disk")
    assert 400 <= code < 500, f"a message that did not fit was answered {code} {text}"
    # The session's postmaster notice (notify_classes has `resource` by default) may
    # still be on its way through the queue: wait for it, a partial file never leaves.
    inst.wait_for(lambda: inst.queue_files() == [], timeout=15,
                  what="no partial queue file left behind")

    # Space returns: the same message is accepted, and everything acknowledged arrives.
    filler.unlink()
    code, text = send(inst.port, 2 * mb, "too big for the disk")
    assert code == 250, (code, text)
    acked += 1
    assert send(inst.port, 1000, "after")[0] == 250
    acked += 1
    msgs = inst.wait_for_mail("user", acked, timeout=20)
    assert len(msgs) == acked
