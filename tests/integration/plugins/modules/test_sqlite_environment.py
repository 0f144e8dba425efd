# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create and backup_restore on the embedded engine, through real ansible-playbook runs."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from archives import flip_byte, hostile_archive, truncate
from datasets import files_snapshot, sqlite_snapshot
from playbook import run_module, run_tasks


def make_sqlite_app(root):
    app = root / "app"
    (app / "files" / "invoices" / "2026").mkdir(parents=True)
    db = app / "app.db"
    connection = sqlite3.connect(db)
    connection.executescript(
        """
        PRAGMA journal_mode = WAL;
        CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, note TEXT, photo BLOB);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total NUMERIC);
        CREATE INDEX orders_customer ON orders (customer_id);
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        """
    )
    connection.executemany("INSERT INTO customers (name, note, photo) VALUES (?, ?, ?)", [
        ("Zoë Ångström", None, bytes(range(256))),
        ("李小龍", "ünïcödé ✓", None),
        ("plain", "", b""),
    ])
    connection.executemany("INSERT INTO orders (customer_id, total) VALUES (?, ?)",
                           [(1 + i % 3, i * 7.25) for i in range(50)])
    connection.commit()
    connection.close()
    (app / "files" / "readme.txt").write_text("hello\n")
    (app / "files" / "invoices" / "2026" / "inv-1.pdf").write_bytes(os.urandom(5000))
    (app / "files" / "invoices" / "empty").write_bytes(b"")
    return {
        "environment": "wiki",
        "engine": "sqlite",
        "path": str(db),
        "files_path": str(app / "files"),
        "catalog": str(root / "catalog"),
    }


def damage(env):
    connection = sqlite3.connect(env["path"])
    connection.execute("DELETE FROM orders WHERE id > 10")
    connection.execute("UPDATE customers SET name = 'overwritten'")
    connection.commit()
    connection.close()
    os.unlink(os.path.join(env["files_path"], "readme.txt"))
    with open(os.path.join(env["files_path"], "new.txt"), "w") as handle:
        handle.write("written after the backup\n")


@pytest.fixture
def env(tmp_path):
    return make_sqlite_app(tmp_path)


def test_round_trip_check_mode_diff_and_idempotence(env):
    original = sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])

    result = run_module("backup_create", dict(env, label="nightly"), check=True)
    assert result["changed"] is True and not result.get("failed")
    assert not os.path.exists(env["catalog"]), "check mode must write nothing"

    created = run_module("backup_create", dict(env, label="nightly"))
    assert created["changed"] is True, created
    backup = created["backup"]
    assert os.path.isfile(backup["path"]) and backup["path"].endswith(".tar")
    assert oct(os.stat(backup["path"]).st_mode & 0o777) == "0o600"
    assert oct(os.stat(env["catalog"]).st_mode & 0o777) == "0o700"
    assert backup["files"] == {"count": 3, "size": 5006}
    assert [d["name"] for d in backup["databases"]] == ["db"]

    again = run_module("backup_create", dict(env, label="nightly"))
    assert again["changed"] is False and again["backup"]["id"] == backup["id"]

    damage(env)
    damaged = sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])
    assert damaged != original

    planned = run_module("backup_restore", dict(env, backup="nightly"), check=True, diff=True)
    assert planned["changed"] is True
    assert planned["diff"] == {"before": {"backup": None}, "after": {"backup": backup["id"]}}
    assert (sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])) == damaged

    restored = run_module("backup_restore", dict(env, backup="nightly"), diff=True)
    assert restored["changed"] is True, restored
    assert restored["restored"]["id"] == backup["id"]
    assert not [p for p in os.listdir(os.path.dirname(env["path"])) if p.startswith("app.db-")], \
        "no -wal/-shm/-journal may survive next to the swapped-in file"
    assert (sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])) == original
    # The damaged data is kept as the previous copy.
    previous_db = restored["previous"]["databases"][0]
    assert sqlite_snapshot(previous_db) == damaged[0]
    assert files_snapshot(restored["previous"]["files"]) == damaged[1]

    repeat = run_module("backup_restore", dict(env, backup="latest"))
    assert repeat["changed"] is False

    forced = run_module("backup_restore", dict(env, backup="latest", force=True, keep_previous=1))
    assert forced["changed"] is True
    assert not os.path.exists(previous_db), "keep_previous: 1 drops the older copy"


def test_rollback_brings_previous_data_back(env):
    created = run_module("backup_create", env)
    damage(env)
    damaged = sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])
    run_module("backup_restore", dict(env, backup=created["backup"]["id"]))
    assert sqlite_snapshot(env["path"]) != damaged[0]

    rolled = run_module("backup_restore", dict(env, rollback=True), diff=True)
    assert rolled["changed"] is True, rolled
    assert (sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])) == damaged
    assert rolled["diff"]["before"]["backup"] == created["backup"]["id"]

    # The rollback kept what it replaced: rolling back again returns to the restored backup.
    again = run_module("backup_restore", dict(env, rollback=True))
    assert again["changed"] is True
    assert sqlite_snapshot(env["path"]) != damaged[0]


def test_gzip_and_model_version(env):
    created = run_module("backup_create", dict(env, compression="gzip", model_version="1.2.3"))
    assert created["backup"]["path"].endswith(".tar.gz")
    import json
    import tarfile

    with tarfile.open(created["backup"]["path"]) as tar:
        metadata = json.load(tar.extractfile(".metadata"))
    assert metadata["modelVersion"] == "1.2.3"
    assert all(isinstance(value, str) for value in metadata.values())


BAD = ["flipped", "truncated", "not-an-archive", "dotdot", "absolute", "symlink", "hardlink", "device"]


def test_bad_archives_leave_the_environment_unchanged(env, tmp_path):
    created = run_module("backup_create", env)
    damage(env)
    before = sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])
    sources = {}
    for kind in BAD:
        src = sources[kind] = str(tmp_path / ("%s.tar" % kind))
        if kind in ("flipped", "truncated"):
            shutil.copy(created["backup"]["path"], src)
            flip_byte(src) if kind == "flipped" else truncate(src)
        elif kind == "not-an-archive":
            with open(src, "w") as handle:
                handle.write("just some text, not a backup\n" * 100)
        else:
            hostile_archive(src, kind, env["path"])

    # One playbook, one restore task per bad archive (each task's failure is kept, the play goes on).
    results = run_tasks([{"lifeboat.backup.backup_restore": dict(env, src=src)} for src in sources.values()])
    for kind, result in zip(sources, results):
        assert result.get("failed") is True, (kind, result)
        assert result["msg"] and "Traceback" not in result["msg"], (kind, result)
    assert "unsafe" in results[BAD.index("dotdot")]["msg"] or ".." in results[BAD.index("dotdot")]["msg"]
    assert (sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])) == before
    assert not os.path.exists("/tmp/lifeboat-escaped.txt")
    assert not os.path.exists(str(tmp_path.parent / "escaped.txt"))
    assert [p for p in os.listdir(os.path.dirname(env["path"])) if ".lb_" in p] == []


def test_damaged_catalog_archive_is_refused(env):
    created = run_module("backup_create", env)
    flip_byte(created["backup"]["path"])
    result = run_module("backup_restore", env)
    assert result.get("failed") and ("corrupt" in result["msg"] or "checksum" in result["msg"]), result


def test_unknown_backup_id(env):
    run_module("backup_create", dict(env, label="known"))
    result = run_module("backup_restore", dict(env, backup="20000101T000000Z-000000"))
    assert result.get("failed") and "20000101T000000Z-000000" in result["msg"], result
    assert "known" in result["msg"]


def test_database_in_use_is_refused(env):
    run_module("backup_create", env)
    damage(env)
    before = sqlite_snapshot(env["path"])
    holder = sqlite3.connect(env["path"], isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_module("backup_restore", env)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.get("failed") and "in use" in result["msg"], result
    assert sqlite_snapshot(env["path"]) == before
