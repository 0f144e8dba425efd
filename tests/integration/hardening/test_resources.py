# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resources: hostile archives that would fill a disk or exhaust memory, restored through real module runs.

A gzip bomb and a sparse member go to an environment whose file store lives on a small filesystem (a tmpfs
mounted by the test, so it runs as root); a manifest bomb goes to an ordinary one. Each must fail with a clear
message before it writes or reads much, leave the live data as it was and leave no staging behind.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils.common import free_space_margin
from datasets import files_snapshot, sqlite_snapshot
from playbook import run_module, run_tasks

MiB = 1024 * 1024
SMALL_FS = 128 * MiB
BOMB = 256 * MiB  # twice the small filesystem; about 260 KB gzipped


class Repeated:
    """``head + unit * count + tail`` as a file object, made as it is read: big members, little memory."""

    def __init__(self, unit, count, head=b"", tail=b""):
        self.size = len(head) + len(unit) * count + len(tail)
        full, rest = divmod(count, MiB // len(unit))
        self._pending = [head] + [unit * (MiB // len(unit))] * full + [unit * rest, tail]
        self._buffer = b""

    def read(self, size):
        while len(self._buffer) < size and self._pending:
            self._buffer += self._pending.pop(0)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def add(tar, name, fileobj, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    tar.addfile(info, fileobj)


def snapshot_archive(path, db_path, metadata, last_name, last):
    """A Mendix-style .tar.gz: [.metadata], db/db.backup (the real database), then member ``last_name``."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        if metadata is not None:
            data = json.dumps(metadata).encode()
            add(tar, ".metadata", io.BytesIO(data), len(data))
        with open(db_path, "rb") as handle:
            add(tar, "db/db.backup", handle, os.path.getsize(db_path))
        add(tar, last_name, last, last.size)
    assert os.path.getsize(path) < 400 * 1024
    return str(path)


def sparse_archive(path, db_path, work):
    """What GNU tar --sparse makes of a 1 GiB file that is all hole (old GNU format, member type S)."""
    if shutil.which("tar") is None:
        pytest.skip("needs GNU tar")
    (work / "db").mkdir(parents=True)
    (work / "tree").mkdir()
    shutil.copy(db_path, work / "db" / "db.backup")
    with open(work / "tree" / "holes", "wb") as handle:
        handle.truncate(1024 * MiB)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(work), "-cf", str(path), "db", "tree"], check=True)
    return str(path)


def metadata(db_path, files_size):
    return {"duration": "1", "dumpSize": str(os.path.getsize(db_path)), "modelVersion": "", "databaseSize": "0",
            "filesSize": str(files_size)}


@pytest.fixture
def small_fs(tmp_path):
    """A 128 MiB tmpfs: the file store's filesystem, small enough for a bomb to fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem for the file store needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % SMALL_FS, "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def make_env(tmp_path, files_parent):
    app = tmp_path / "app"
    app.mkdir()
    connection = sqlite3.connect(app / "app.db")
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    connection.execute("INSERT INTO notes (body) VALUES ('first')")
    connection.commit()
    connection.close()
    files = files_parent / "files"
    (files / "2026").mkdir(parents=True)
    (files / "2026" / "invoice.pdf").write_bytes(os.urandom(5000))
    (files / "readme.txt").write_text("hello\n")
    return {"environment": "wiki", "engine": "sqlite", "path": str(app / "app.db"), "files_path": str(files),
            "catalog": str(tmp_path / "catalog")}


def live(env):
    return sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])


def leftovers(env, marker=".lb_"):
    """Staging (and previous) copies beside the live data, and dumps left in the catalog's work directories."""
    found = [name for directory in (os.path.dirname(env["path"]), os.path.dirname(env["files_path"]))
             for name in os.listdir(directory) if marker in name]
    for root, _dirs, files in os.walk(env["catalog"]):
        found.extend(os.path.join(root, name) for name in files if name.endswith(".backup"))
    return found


def test_disk_bombs_fail_before_filling_a_small_file_store(tmp_path, small_fs):
    env = make_env(tmp_path, small_fs)
    created = run_module("backup_create", dict(env, label="good"))
    assert created["changed"] is True, created
    with sqlite3.connect(env["path"]) as connection:
        connection.execute("INSERT INTO notes (body) VALUES ('after the backup')")
    connection.close()
    before = live(env)
    sources = {
        "declared": snapshot_archive(tmp_path / "declared.tar.gz", env["path"], metadata(env["path"], 5),
                                     "tree/zeros", Repeated(b"\0", BOMB)),
        "undeclared": snapshot_archive(tmp_path / "undeclared.tar.gz", env["path"], None, "tree/zeros",
                                       Repeated(b"\0", BOMB)),
        "sparse": sparse_archive(tmp_path / "sparse.tar", env["path"], tmp_path / "sparse"),
    }

    results = run_tasks([{"lifeboat.backup.backup_restore": dict(env, src=src)} for src in sources.values()])

    messages = dict(zip(sources, (result.get("msg", "") for result in results)))
    assert all(result.get("failed") for result in results), results
    assert "declared.tar.gz is truncated or corrupt: member tree/zeros brings the file store to 256.00 MiB, more " \
           "than its .metadata declares (filesSize 5" in messages["declared"], messages
    assert "not enough free space for member tree/zeros of archive %s on the filesystem mounted at %s: it needs " \
           "332.80 MiB" % (sources["undeclared"], small_fs) in messages["undeclared"], messages
    assert "contains the unsafe member 'tree/holes' (it is a GNU sparse file" in messages["sparse"], messages
    assert live(env) == before
    assert leftovers(env) == []
    usage = os.statvfs(small_fs)
    assert usage.f_bavail * usage.f_frsize > SMALL_FS - MiB > free_space_margin(0), "nothing was left on the store"

    # The same small filesystem takes a real backup.
    restored = run_module("backup_restore", dict(env, backup="good"))
    assert restored["changed"] is True, restored
    assert live(env) != before and files_snapshot(env["files_path"]) == before[1]
    assert leftovers(env, ".lb_stage") == []


def test_manifest_bomb_fails_fast_with_a_clear_message(tmp_path):
    env = make_env(tmp_path, tmp_path)
    before = live(env)
    bomb = Repeated(b"{},", 255_000_000 // 3, head=b'{"files": [', tail=b"{}]}")
    src = snapshot_archive(tmp_path / "manifest.tar.gz", env["path"], metadata(env["path"], 0), "lifeboat.json", bomb)

    result = run_module("backup_restore", dict(env, src=src))

    assert result.get("failed") is True, result
    assert "manifest.tar.gz is truncated or corrupt: member lifeboat.json has 255000015 bytes, more than a " \
           "manifest of its 3 members can need" in result["msg"], result
    assert live(env) == before
    assert leftovers(env) == []
