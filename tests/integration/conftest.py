"""pytest fixtures for Postern's integration tests (the real binary, real processes).

Fixtures:
  postern_bin        (session)  path of target/release/postern: built with
                                `cargo build --release --bin postern` unless POSTERN_BIN
                                names a binary or POSTERN_TEST_NO_BUILD=1.
  unprivileged_user  (session)  the `postern-test` system account (created once with
                                useradd when root; the test is skipped when not root).
                                An `instance` in a test that requests it runs as it.
  instance           (function) a fresh `postern init` instance on a free loopback port,
                                not started. As root it runs as `postern-test` (Postern's
                                non-root mode: every process runs as the invoking user);
                                POSTERN_TEST_AS_ROOT=1 keeps root. Closed at teardown:
                                stopped, leftovers killed by PID, temp dir removed.
  root_instance      (function) the same, run as root (skipped when not root).
  make_instance      (function) factory for more instances in one test.

Environment knobs: POSTERN_BIN, POSTERN_TEST_NO_BUILD=1, POSTERN_TEST_TMP (where
instance dirs go, default /tmp), POSTERN_TEST_KEEP=1 (keep instance dirs),
POSTERN_TEST_AS_ROOT=1.

On a failing test, the maillog of every instance it used is attached to the report.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from postern import (REPO, TEST_USER, Instance, PosternError, become_subreaper, ensure_user,
                     readable_by_others)

BUILD_TIMEOUT = 30 * 60


def pytest_configure(config: pytest.Config) -> None:
    # Orphaned daemons re-parent to this process, so teardown can still find them by PID.
    become_subreaper()


def _target_dir() -> Path:
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"])
    try:
        r = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 0:
            return Path(json.loads(r.stdout)["target_directory"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        pass
    return REPO / "target"


@pytest.fixture(scope="session")
def postern_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release binary; built (incrementally: a no-op after scripts/test's build)
    unless POSTERN_BIN is given or POSTERN_TEST_NO_BUILD=1."""
    if os.environ.get("POSTERN_BIN"):
        binary = Path(os.environ["POSTERN_BIN"]).resolve()
    else:
        if os.environ.get("POSTERN_TEST_NO_BUILD") != "1" and shutil.which("cargo"):
            r = subprocess.run(["cargo", "build", "--release", "--bin", "postern"], cwd=REPO,
                               capture_output=True, text=True, timeout=BUILD_TIMEOUT)
            if r.returncode != 0:
                pytest.fail(f"cargo build --release --bin postern failed:\n{r.stderr[-6000:]}", pytrace=False)
        binary = _target_dir() / "release" / "postern"
    if not binary.is_file():
        pytest.fail(f"no postern binary at {binary} (run cargo build --release)", pytrace=False)
    if os.geteuid() == 0 and not readable_by_others(binary):
        # The unprivileged account must be able to exec it: use a world-readable copy.
        d = Path(tempfile.mkdtemp(prefix="postern-bin-"))
        d.chmod(0o755)
        copy = d / "postern"
        shutil.copy2(binary, copy)
        copy.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        binary = copy
    return binary


@pytest.fixture(scope="session")
def unprivileged_user() -> pwd.struct_passwd:
    """The `postern-test` account; requesting it makes `instance` run as it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create and switch to the postern-test account")
    try:
        return ensure_user(TEST_USER)
    except (PosternError, OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot create {TEST_USER}: {e}")


def _default_user(request: pytest.FixtureRequest) -> pwd.struct_passwd | None:
    if "unprivileged_user" in request.fixturenames:
        return request.getfixturevalue("unprivileged_user")
    if os.geteuid() == 0 and os.environ.get("POSTERN_TEST_AS_ROOT") != "1":
        return ensure_user(TEST_USER)
    return None


@pytest.fixture
def make_instance(request: pytest.FixtureRequest, postern_bin: Path) -> Iterator[Callable[..., Instance]]:
    """Factory: make_instance(user=..., init=True) -> Instance; all closed at teardown."""
    made: list[Instance] = []
    request.node.postern_instances = made
    default_user = _default_user(request)
    sentinel = object()

    def factory(user=sentinel, init: bool = True) -> Instance:
        inst = Instance.create(postern_bin, user=default_user if user is sentinel else user, init=False)
        made.append(inst)
        if init:
            inst.init()
        return inst

    yield factory
    errors = []
    for inst in reversed(made):
        try:
            inst.close()
        except Exception as e:  # noqa: BLE001 - close every instance, report after
            errors.append(f"{inst.root}: {e!r}")
    if errors:
        pytest.fail("instance teardown failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def instance(make_instance: Callable[..., Instance]) -> Instance:
    """A fresh, initialised, not yet started instance."""
    return make_instance()


@pytest.fixture
def root_instance(make_instance: Callable[..., Instance]) -> Instance:
    """An instance run as root (master as root, daemons dropping privileges)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return make_instance(user=None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("call", "setup"):
        for inst in getattr(item, "postern_instances", []):
            report.sections.append((f"maillog {inst.root}", inst.log_excerpt()))
