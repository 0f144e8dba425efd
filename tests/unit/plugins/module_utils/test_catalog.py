# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import catalog as catalog_module
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import DEFAULT_CATALOG, Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def catalog(tmp_path):
    return Catalog(str(tmp_path / "var" / "lifeboat" / "backups"))


def add_backup(catalog, env, backup_id, created_at, label=None, content=None, suffix=".tar.gz"):
    tmp = os.path.join(catalog.tmp_dir(env), "run-" + backup_id)
    with open(tmp, "wb") as handle:
        handle.write(content if content is not None else backup_id.encode())
    entry = {"id": backup_id, "label": label, "created_at": created_at, "engine": "postgresql"}
    return catalog.add(env, entry, tmp, suffix)


@pytest.fixture
def filled(catalog):
    """Seven backups of 'prod', created a minute apart; two of them at the same second."""
    for minute in range(6):
        add_backup(catalog, "prod", "20250101T00%02d00Z-00000%d" % (minute, minute), "2025-01-01T00:%02d:00Z" % minute)
    add_backup(catalog, "prod", "20250101T000500Z-ffffff", "2025-01-01T00:05:00Z", label="before-upgrade")
    return catalog


# ----------------------------------------------------------------------------------- directories


def test_default_catalog():
    assert DEFAULT_CATALOG == "/var/lib/lifeboat/backups"
    assert Catalog().root == DEFAULT_CATALOG


def test_env_dir_is_created_private_with_its_parents(tmp_path, catalog):
    old_umask = os.umask(0o277)  # would leave the owner without write access
    try:
        path = catalog.env_dir("prod", create=True)
    finally:
        os.umask(old_umask)
    assert path == str(tmp_path / "var" / "lifeboat" / "backups" / "prod")
    for directory in (tmp_path / "var", tmp_path / "var" / "lifeboat", catalog.root, path):
        assert mode_of(directory) == 0o700
    assert catalog.env_dir("test") == os.path.join(catalog.root, "test")
    assert not os.path.exists(catalog.env_dir("test"))


def test_existing_parent_keeps_its_mode(tmp_path):
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    Catalog(str(tmp_path / "shared" / "backups")).env_dir("prod", create=True)
    assert mode_of(tmp_path / "shared") == 0o755
    assert mode_of(tmp_path / "shared" / "backups") == 0o700


@pytest.mark.parametrize("env", ["../etc", "a/b", "", ".hidden", "x" * 64, None, "a..b"])
def test_env_dir_refuses_unsafe_names(catalog, env):
    with pytest.raises(LifeboatError, match="invalid environment"):
        catalog.env_dir(env, create=True)
    assert not os.path.exists(catalog.root)


def test_environments(catalog):
    assert catalog.environments() == []
    for env in ("test", "prod"):
        catalog.env_dir(env, create=True)
    open(os.path.join(catalog.root, "stray-file"), "w").close()
    os.mkdir(os.path.join(catalog.root, "lost+found"))
    assert catalog.environments() == ["prod", "test"]


def test_tmp_dir_and_clean_tmp(catalog):
    tmp = catalog.tmp_dir("prod")
    assert tmp == os.path.join(catalog.env_dir("prod"), ".tmp") and mode_of(tmp) == 0o700
    os.makedirs(os.path.join(tmp, "half", "done"))
    catalog.clean_tmp("prod")
    assert not os.path.exists(tmp)
    catalog.clean_tmp("prod")  # nothing left: no error
    catalog.clean_tmp("never-used")


def test_paths(catalog):
    assert catalog.journal_path("prod") == os.path.join(catalog.root, "prod", "journal.json")
    assert catalog.archive_path({"environment": "prod", "file": "x.tar"}) == os.path.join(catalog.root, "prod", "x.tar")


# ---------------------------------------------------------------------------------------- entries


def test_add(catalog):
    entry = add_backup(catalog, "prod", "20250101T000000Z-aaaaaa", "2025-01-01T00:00:00Z", content=b"archive bytes")
    final = os.path.join(catalog.env_dir("prod"), "20250101T000000Z-aaaaaa.tar.gz")
    assert entry == {
        "id": "20250101T000000Z-aaaaaa",
        "label": None,
        "created_at": "2025-01-01T00:00:00Z",
        "engine": "postgresql",
        "environment": "prod",
        "file": "20250101T000000Z-aaaaaa.tar.gz",
        "path": final,
        "size": len(b"archive bytes"),
        "sha256": hashlib.sha256(b"archive bytes").hexdigest(),
    }
    assert pathlib.Path(final).read_bytes() == b"archive bytes"
    assert os.listdir(catalog.tmp_dir("prod")) == []
    entry_path = os.path.join(catalog.env_dir("prod"), "20250101T000000Z-aaaaaa.json")
    assert json.loads(pathlib.Path(entry_path).read_text()) == entry
    assert mode_of(final) == mode_of(entry_path) == 0o600
    assert catalog.entries("prod") == [entry]
    assert catalog.archive_path(entry) == final


def test_add_refuses_a_taken_id(catalog):
    add_backup(catalog, "prod", "20250101T000000Z-aaaaaa", "2025-01-01T00:00:00Z")
    with pytest.raises(LifeboatError, match="backup 20250101T000000Z-aaaaaa already exists in environment 'prod'"):
        add_backup(catalog, "prod", "20250101T000000Z-aaaaaa", "2025-01-01T00:00:00Z", suffix=".tar")


@pytest.mark.parametrize(
    "entry, suffix, error",
    [
        ({"id": "x", "created_at": "2025-01-01T00:00:00Z"}, ".zip", ValueError),
        ({"id": "x"}, ".tar", ValueError),
        ({"id": "../x", "created_at": "2025-01-01T00:00:00Z"}, ".tar", LifeboatError),
    ],
)
def test_add_refuses_bad_arguments(catalog, entry, suffix, error):
    tmp = os.path.join(catalog.tmp_dir("prod"), "run")
    open(tmp, "w").close()
    with pytest.raises(error):
        catalog.add("prod", entry, tmp, suffix)
    assert os.path.exists(tmp)


def test_add_takes_only_files_from_the_environments_tmp(tmp_path, catalog):
    catalog.tmp_dir("prod")
    elsewhere = tmp_path / "elsewhere.tar"
    elsewhere.write_bytes(b"x")
    other_env = os.path.join(catalog.tmp_dir("test"), "run.tar")
    open(other_env, "w").close()
    for path in (str(elsewhere), other_env):
        with pytest.raises(ValueError, match="is not in the .tmp directory of environment prod"):
            catalog.add("prod", {"id": "x", "created_at": "2025-01-01T00:00:00Z"}, path, ".tar")


def test_entries_newest_first(filled):
    ids = [entry["id"] for entry in filled.entries("prod")]
    assert ids == [
        "20250101T000500Z-ffffff",
        "20250101T000500Z-000005",
        "20250101T000400Z-000004",
        "20250101T000300Z-000003",
        "20250101T000200Z-000002",
        "20250101T000100Z-000001",
        "20250101T000000Z-000000",
    ]
    assert filled.entries("other") == [] and filled.entries("other").warnings == []


@pytest.mark.parametrize(
    "ref, expected",
    [
        ("latest", "20250101T000500Z-ffffff"),
        ("20250101T000200Z-000002", "20250101T000200Z-000002"),
        ("before-upgrade", "20250101T000500Z-ffffff"),
    ],
)
def test_resolve(filled, ref, expected):
    assert filled.entries("prod").resolve(ref)["id"] == expected


def test_resolve_prefers_an_id_to_a_label(filled):
    add_backup(filled, "prod", "20250102T000000Z-aaaaaa", "2025-01-02T00:00:00Z", label="20250101T000100Z-000001")
    assert filled.entries("prod").resolve("20250101T000100Z-000001")["id"] == "20250101T000100Z-000001"


def test_resolve_unknown_lists_five_newest(filled):
    with pytest.raises(LifeboatError) as caught:
        filled.entries("prod").resolve("nope")
    message = str(caught.value)
    assert message.startswith("environment 'prod' has no backup 'nope' (catalog %s); newest known: " % filled.root)
    assert "20250101T000500Z-ffffff (before-upgrade), 20250101T000500Z-000005, 20250101T000400Z-000004" in message
    assert message.endswith("20250101T000200Z-000002") and "000001" not in message


@pytest.mark.parametrize("ref", ["latest", "anything"])
def test_resolve_without_backups(catalog, ref):
    with pytest.raises(LifeboatError, match="environment 'prod' has no backups in catalog"):
        catalog.entries("prod").resolve(ref)


def test_get_find_by_label_and_sha256(filled):
    entries = filled.entries("prod")
    entry = entries.get("20250101T000300Z-000003")
    assert entry["created_at"] == "2025-01-01T00:03:00Z"
    assert entries.get("20250101T000300Z-999999") is None
    assert entries.find_by_label("before-upgrade")["id"] == "20250101T000500Z-ffffff"
    assert entries.find_by_label("nope") is None
    assert entries.find_by_sha256(entry["sha256"]) == entry
    assert entries.find_by_sha256("0" * 64) is None


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("20250101T000100Z-000001.json", b"{not json", "is not valid JSON"),
        ("20250101T000100Z-000001.json", b"\xff\xfe", "is not a JSON object"),
        ("20250101T000100Z-000001.json", b"[1, 2]", "is not a JSON object"),
        ("20250101T000100Z-000001.json", b'{"id": "other", "created_at": "x", "file": "x.tar"}', "names backup"),
        ("20250101T000100Z-000001.json", b'{"id": "20250101T000100Z-000001"}', "has no created_at"),
        (
            "20250101T000100Z-000001.json",
            b'{"id": "20250101T000100Z-000001", "created_at": "x", "file": "../../etc/passwd"}',
            "names the archive file",
        ),
        ("20250101T000100Z-000001.tar.gz", None, "which is missing"),
    ],
)
def test_damaged_entry_is_skipped_with_a_warning(filled, name, content, problem):
    path = os.path.join(filled.env_dir("prod"), name)
    if content is None:
        os.unlink(path)
    else:
        with open(path, "wb") as handle:
            handle.write(content)
    entries = filled.entries("prod")
    ids = [entry["id"] for entry in entries]
    assert "20250101T000100Z-000001" not in ids and len(ids) == 6
    entry_path = os.path.join(filled.env_dir("prod"), "20250101T000100Z-000001.json")
    assert len(entries.warnings) == 1
    assert entry_path in entries.warnings[0] and problem in entries.warnings[0]
    assert entries.warnings[0].endswith(("; repair or remove it", "; move it aside and run again"))
    assert entries.skipped == [{"id": "20250101T000100Z-000001", "path": entry_path, "warning": entries.warnings[0]}]
    assert filled.entries("prod").warnings == entries.warnings  # each listing says it again, not more


def test_archive_without_entry_and_other_files_are_ignored(filled):
    directory = filled.env_dir("prod")
    open(os.path.join(directory, "20250201T000000Z-abcdef.tar"), "w").close()  # its entry was never written
    filled.write_state("prod", {"current": "x"})
    with open(filled.journal_path("prod"), "w") as handle:
        json.dump({"step": 1}, handle)
    open(os.path.join(directory, ".tmp-123.json"), "w").close()
    with filled.lock("prod", "backup"):
        assert len(filled.entries("prod")) == 7 and filled.entries("prod").warnings == []


def test_remove(filled):
    entry = filled.entries("prod").get("20250101T000200Z-000002")
    filled.remove("prod", entry["id"])
    assert not os.path.exists(entry["path"])
    assert not os.path.exists(os.path.join(filled.env_dir("prod"), entry["id"] + ".json"))
    assert filled.entries("prod").get(entry["id"]) is None and len(filled.entries("prod")) == 6
    with pytest.raises(LifeboatError, match="environment 'prod' has no backup 20250101T000200Z-000002"):
        filled.remove("prod", entry["id"])


def test_remove_with_a_damaged_entry(filled):
    directory = filled.env_dir("prod")
    with open(os.path.join(directory, "20250101T000300Z-000003.json"), "w") as handle:
        handle.write("garbage")
    filled.remove("prod", "20250101T000300Z-000003")
    assert not any(name.startswith("20250101T000300Z-000003") for name in os.listdir(directory))


# ------------------------------------------------------------------------------------------ state


def test_state(catalog):
    assert catalog.read_state("prod") == {}
    catalog.write_state("prod", {"current": "20250101T000000Z-aaaaaa", "previous": ["x"]})
    assert catalog.read_state("prod") == {"current": "20250101T000000Z-aaaaaa", "previous": ["x"]}
    assert mode_of(os.path.join(catalog.env_dir("prod"), "state.json")) == 0o600


def test_damaged_state_says_what_to_do(catalog):
    catalog.write_state("prod", {})
    with open(os.path.join(catalog.env_dir("prod"), "state.json"), "w") as handle:
        handle.write("{")
    with pytest.raises(LifeboatError, match="state.json is not valid JSON .*move it aside"):
        catalog.read_state("prod")


# ------------------------------------------------------------------------------------------ trust


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o720, 0o702])
@pytest.mark.parametrize("which", ["root", "env"])
def test_a_catalog_others_can_write_is_refused(filled, which, mode):
    path = filled.root if which == "root" else filled.env_dir("prod")
    os.chmod(path, mode)
    fresh = Catalog(filled.root)
    for use in (lambda: fresh.entries("prod"), lambda: fresh.read_state("prod"), lambda: fresh.env_dir("prod")):
        with pytest.raises(LifeboatError, match=r"catalog directory %s is writable by group or others \(mode %04o\)"
                           ".*chmod go-w" % (path, mode)):
            use()


def test_the_path_to_a_catalog_found_private_is_not_checked_again(filled, monkeypatch):
    filled.env_dir("prod")
    monkeypatch.setattr(catalog_module, "_check_ancestor", None)  # would fail if called
    assert len(filled.entries("prod")) == 7


def test_a_shared_parent_needs_the_sticky_bit(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    catalog = Catalog(str(shared / "catalog"))
    with pytest.raises(LifeboatError, match="catalog parent directory %s is writable by group or others" % shared):
        catalog.env_dir("prod", create=True)
    os.chmod(shared, 0o1777)
    assert os.path.isdir(Catalog(str(shared / "catalog")).env_dir("prod", create=True))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")
@pytest.mark.parametrize("which", ["env", "state"])
def test_a_catalog_of_another_user_is_refused(filled, which):
    filled.write_state("prod", {})
    path = filled.env_dir("prod") if which == "env" else os.path.join(filled.env_dir("prod"), "state.json")
    os.chown(path, 65534, 65534)
    with pytest.raises(LifeboatError, match="belongs to uid 65534, not to uid 0"):
        Catalog(filled.root).read_state("prod")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a symbolic link to another user")
def test_a_catalog_reached_through_another_users_symlink_is_refused(tmp_path):
    real = Catalog(str(tmp_path / "real"))
    real.env_dir("prod", create=True)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "catalog"
    os.symlink(real.root, link)
    assert Catalog(str(link)).env_dir("prod") == os.path.join(str(link), "prod")
    os.lchown(link, 65534, 65534)  # whoever owns it can point it elsewhere
    with pytest.raises(LifeboatError, match="catalog parent symbolic link %s belongs to uid 65534" % link):
        Catalog(str(link)).env_dir("prod")


@pytest.mark.parametrize("name", ["state.json", "journal.json"])
def test_state_and_journal_must_be_private_regular_files(catalog, tmp_path, name):
    directory = catalog.env_dir("prod", create=True)
    read = catalog.read_state if name == "state.json" else catalog.read_journal
    path = os.path.join(directory, name)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    os.symlink(elsewhere, path)
    with pytest.raises(LifeboatError, match="cannot read %s" % path):
        read("prod")
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(LifeboatError, match="%s is not a regular file" % path):
        read("prod")
    os.unlink(path)
    with open(path, "w") as handle:
        handle.write("{}")
    os.chmod(path, 0o666)
    with pytest.raises(LifeboatError, match="catalog file %s is writable by group or others" % path):
        read("prod")
    os.chmod(path, 0o644)
    assert read("prod") == {}


@pytest.mark.parametrize("content,problem", [
    (b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}', "has more than 4194304 bytes, more than a valid one ever has"),
    (b'{"x": ' + b"[" * 100000, r"is not valid JSON \(it nests too deeply\)"),
    (b"[" * 100000, "is not a JSON object"),
])
def test_a_hostile_state_gets_a_clear_message(catalog, content, problem):
    catalog.write_state("prod", {})
    path = os.path.join(catalog.env_dir("prod"), "state.json")
    with open(path, "wb") as handle:
        handle.write(content)
    with pytest.raises(LifeboatError, match="state.json %s; move it aside and run again" % problem):
        catalog.read_state("prod")


def test_a_journal_is_none_until_written(catalog):
    catalog.env_dir("prod", create=True)
    assert catalog.read_journal("prod") is None


def test_an_entry_others_can_write_is_ignored(filled):
    path = os.path.join(filled.env_dir("prod"), "20250101T000100Z-000001.json")
    os.chmod(path, 0o666)
    entries = filled.entries("prod")
    assert "20250101T000100Z-000001" not in [entry["id"] for entry in entries]
    assert "writable by group or others" in entries.warnings[0]


# ------------------------------------------------------------------------------------------- lock

HOLDER = textwrap.dedent(
    """
    import sys
    from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog

    with Catalog(sys.argv[1]).lock("prod", sys.argv[2]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)

# Holds the flock without naming itself, like a taker that has not written its name yet.
ANONYMOUS = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
    """
)


def start(script, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-c", script] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    )
    assert process.stdout.readline() == "locked\n"
    return process


@pytest.fixture
def holder(catalog):
    catalog.env_dir("prod", create=True)
    process = start(HOLDER, catalog.root, "restore")
    yield process
    stop(process)


def stop(process):
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()


def test_lock_content_while_held_and_after(catalog):
    lock_path = os.path.join(catalog.env_dir("prod"), ".lock")
    assert catalog.lock_holder("prod") is None
    with catalog.lock("prod", "backup") as held:
        assert held["operation"] == "backup" and held["pid"] == os.getpid()
        assert held["host"] == socket.gethostname() and held["started_at"].endswith("Z")
        assert json.loads(pathlib.Path(lock_path).read_text()) == held
        assert mode_of(lock_path) == 0o600
    assert pathlib.Path(lock_path).read_text() == ""
    assert catalog.lock_holder("prod") is None


@pytest.mark.parametrize("end", ["release", "sigkill"])
def test_lock_from_another_process(catalog, holder, end):
    with pytest.raises(LifeboatError) as caught:
        with catalog.lock("prod", "backup"):
            pass
    message = str(caught.value)
    assert message.startswith(
        "environment 'prod' is busy: restore by pid %d on host %s since " % (holder.pid, socket.gethostname())
    )
    assert message.endswith("; wait for it or check that process")
    seen = catalog.lock_holder("prod")
    assert (seen["operation"], seen["pid"], seen["host"]) == ("restore", holder.pid, socket.gethostname())

    if end == "release":
        holder.stdin.close()
    else:
        holder.send_signal(signal.SIGKILL)
    holder.wait()

    assert catalog.lock_holder("prod") is None
    with catalog.lock("prod", "backup") as held:
        assert held["pid"] == os.getpid()


def test_holder_that_names_nobody(monkeypatch, catalog):
    monkeypatch.setattr(catalog_module, "_ANONYMOUS_GRACE", 0.3)
    process = start(ANONYMOUS, os.path.join(catalog.env_dir("prod", create=True), ".lock"))
    try:
        assert catalog.lock_holder("prod") == {"operation": None, "pid": None, "host": None, "started_at": None}
        with pytest.raises(LifeboatError, match="environment 'prod' is busy: another process holds its lock"):
            with catalog.lock("prod", "backup"):
                pass
    finally:
        stop(process)
    assert catalog.lock_holder("prod") is None


def test_locks_of_environments_are_independent(catalog, holder):
    with catalog.lock("test", "backup"):
        assert catalog.lock_holder("test")["operation"] == "backup"
    assert catalog.lock_holder("prod")["pid"] == holder.pid
