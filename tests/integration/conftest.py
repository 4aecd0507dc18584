"""Fixtures for moat's integration tests.

Every test that takes `ctx` runs once per variant:

  root   moat runs as root; the workspace belongs to the test user `moat-it`
         (root's sandbox user is mapped to the workspace owner, never to host root)
  user   moat runs as `moat-it`, which has /etc/subuid and /etc/subgid ranges
         (newuidmap/newgidmap path) -- rootless is the main target
  nosub  moat runs as `moat-it-nosub`, without subordinate ids (single mapping,
         setgroups denied); only for tests marked @pytest.mark.all_users

The pytest process itself always stays root; moat is started through
`setpriv --reuid/--regid --clear-groups` with a clean environment. When pytest
is not run as root, the only variant is "self" (moat runs as the caller).

MOAT_IT_VARIANTS=root,user restricts the variants (for quick local runs).
"""

import os
import pwd
import grp
import shutil
import subprocess
import tempfile
import itertools
from pathlib import Path

import pytest

from moat_it import Ctx, moat_bin

IT_USER = "moat-it"
IT_NOSUB_USER = "moat-it-nosub"
IT_UID_PREFERRED = 64100  # above UID_MAX (60000): no clash with regular accounts
SUBID_COUNT = 65536
SUBID_START_PREFERRED = 200000

_counter = itertools.count()


def pytest_configure(config):
    config.addinivalue_line("markers", "all_users: also run as the user without /etc/subuid entries")
    config.addinivalue_line("markers", "variants(*names): run only for these variants")


def _wanted_variants(definition):
    if os.geteuid() != 0:
        return ["self"]
    variants = ["root", "user"]
    if definition.get_closest_marker("all_users"):
        variants.append("nosub")
    only = definition.get_closest_marker("variants")
    if only:
        variants = [v for v in variants if v in only.args] or list(only.args)
    env = os.environ.get("MOAT_IT_VARIANTS")
    if env:
        keep = {v.strip() for v in env.split(",")}
        variants = [v for v in variants if v in keep]
    return variants


def pytest_generate_tests(metafunc):
    if "ctx" in metafunc.fixturenames:
        metafunc.parametrize("ctx", _wanted_variants(metafunc.definition), indirect=True)


# ---------------------------------------------------------------- host set-up


def _id_free(uid):
    try:
        pwd.getpwuid(uid)
        return False
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return False
    except KeyError:
        return True


def _ensure_user(name, preferred):
    """Create (idempotently) a system user with its own group and no home."""
    try:
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    uid = preferred
    while not _id_free(uid):
        uid += 1
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "-g", str(uid), name], check=True, capture_output=True)
    # -r: a system account, so useradd allocates no subordinate ids by itself
    subprocess.run(
        ["useradd", "-r", "-M", "-u", str(uid), "-g", name, "-d", "/nonexistent",
         "-s", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,  # it warns that the uid is above SYS_UID_MAX: intended
    )
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def _read_subids(path):
    try:
        with open(path) as f:
            lines = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        lines = []
    return [line for line in lines if line.strip()]


def _write_subids(path, lines):
    tmp = f"{path}.moat-it.tmp"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _entries_for(lines, name, uid):
    out = []
    for line in lines:
        parts = line.split(":")
        if len(parts) == 3 and parts[0] in (name, str(uid)):
            out.append((int(parts[1]), int(parts[2])))
    return out


def _ensure_subids(path, name, uid):
    lines = _read_subids(path)
    have = _entries_for(lines, name, uid)
    if have:
        return have[0]
    taken = []
    for line in lines:
        parts = line.split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            taken.append((int(parts[1]), int(parts[2])))
    start = SUBID_START_PREFERRED
    while any(s < start + SUBID_COUNT and start < s + c for s, c in taken):
        start += SUBID_COUNT
    _write_subids(path, lines + [f"{name}:{start}:{SUBID_COUNT}"])
    return (start, SUBID_COUNT)


def _remove_subids(path, name, uid):
    lines = _read_subids(path)
    keep = [line for line in lines if line.split(":")[0] not in (name, str(uid))]
    if keep != lines:
        _write_subids(path, keep)


@pytest.fixture(scope="session")
def it_users():
    """{'user': (uid, gid, subuid, subgid), 'nosub': (uid, gid, None, None)}"""
    if os.geteuid() != 0:
        return {}
    uid, gid = _ensure_user(IT_USER, IT_UID_PREFERRED)
    subuid = _ensure_subids("/etc/subuid", IT_USER, uid)
    subgid = _ensure_subids("/etc/subgid", IT_USER, uid)
    nuid, ngid = _ensure_user(IT_NOSUB_USER, IT_UID_PREFERRED + 1)
    _remove_subids("/etc/subuid", IT_NOSUB_USER, nuid)
    _remove_subids("/etc/subgid", IT_NOSUB_USER, nuid)
    return {"user": (uid, gid, subuid, subgid), "nosub": (nuid, ngid, None, None)}


@pytest.fixture(scope="session")
def kernel_userns():
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                pytest.skip("kernel: user namespaces disabled (user.max_user_namespaces = 0)")
    except FileNotFoundError:
        pytest.skip("kernel built without user namespaces")


@pytest.fixture(scope="session")
def it_base(kernel_userns):
    """A 0755 base directory every test user can traverse (tmp_path is 0700 root)."""
    if not os.path.exists(moat_bin()):
        pytest.fail(f"moat binary {moat_bin()} does not exist (run make, or set MOAT_BIN)")
    base = Path(tempfile.mkdtemp(prefix="moat-it-", dir="/tmp"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def ctx(request, it_users, it_base):
    variant = request.param
    if variant == "root":
        uid, gid, subuid, subgid = 0, 0, None, None
        ws_uid, ws_gid = it_users["user"][:2]
    elif variant == "self":
        uid, gid, subuid, subgid = os.geteuid(), os.getegid(), None, None
        ws_uid, ws_gid = uid, gid
    else:
        uid, gid, subuid, subgid = it_users[variant]
        ws_uid, ws_gid = uid, gid

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)[:80]
    base = it_base / f"{next(_counter):03d}-{safe}"
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)
    if variant != "self":
        os.chown(base, uid, gid)

    workspace = base / "ws"
    workspace.mkdir(mode=0o755)
    moat_home = base / "moat-home"
    moat_home.mkdir(mode=0o700)
    if variant == "root":
        home = Path(pwd.getpwuid(0).pw_dir)
    else:
        home = base / "home"
        home.mkdir(mode=0o700)
    if variant != "self":
        os.chown(workspace, ws_uid, ws_gid)
        os.chown(moat_home, uid, gid)
        if variant != "root":
            os.chown(home, uid, gid)

    return Ctx(
        variant=variant,
        run_uid=uid,
        run_gid=gid,
        ws_uid=ws_uid,
        ws_gid=ws_gid,
        base=base,
        workspace=workspace,
        moat_home=moat_home,
        home=home,
        subuid=subuid,
        subgid=subgid,
    )
