# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create and backup_restore on real PostgreSQL servers, through real ansible-playbook runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import psycopg
import pytest

from archives import flip_byte, mendix_snapshot
from datasets import damage_pg, files_snapshot, make_pg_app, pg_snapshot
from playbook import REPO, ansible_env, collections_path, run_module, run_tasks


def new_env(cluster, tmp_path, rows=200, tcp=False):
    name = "app_" + uuid.uuid4().hex[:8]
    password = make_pg_app(cluster, name, rows=rows)
    files = tmp_path / name / "files"
    (files / "nested" / "deeper").mkdir(parents=True)
    (files / "nested" / "deeper" / "photo.bin").write_bytes(os.urandom(3000))
    (files / "top.txt").write_text("top level ✓\n")
    env = dict(cluster.conn_params(tcp=tcp), environment=name, engine="postgresql", database=name,
               files_path=str(files), catalog=str(tmp_path / "catalog"))
    return env, password


def databases(cluster, like):
    return sorted(r[0] for r in cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=[like]))


def test_round_trip_with_owner_settings_and_privileges(pg_cluster, tmp_path):
    env, app_password = new_env(pg_cluster, tmp_path)
    db = env["database"]
    original = pg_snapshot(pg_cluster, db), files_snapshot(env["files_path"])

    planned = run_module("backup_create", dict(env, label="before"), check=True)
    assert planned["changed"] is True and not os.path.exists(env["catalog"])
    created = run_module("backup_create", dict(env, label="before"))
    assert created["changed"] is True, created
    again = run_module("backup_create", dict(env, label="before"))
    assert again["changed"] is False and again["backup"]["id"] == created["backup"]["id"]

    damage_pg(pg_cluster, db)
    (tmp_path / db / "files" / "top.txt").unlink()
    damaged = pg_snapshot(pg_cluster, db), files_snapshot(env["files_path"])
    assert damaged != original

    check = run_module("backup_restore", dict(env, backup="before"), check=True, diff=True)
    assert check["changed"] is True and check["diff"]["after"]["backup"] == created["backup"]["id"]
    assert (pg_snapshot(pg_cluster, db), files_snapshot(env["files_path"])) == damaged

    restored = run_module("backup_restore", dict(env, backup="before"))
    assert restored["changed"] is True, restored
    assert (pg_snapshot(pg_cluster, db), files_snapshot(env["files_path"])) == original

    # The app's own role (not a superuser) can still read and write every restored table.
    with pg_cluster.connect(db, tcp=True, user=db, password=app_password) as conn:
        for table in ("customers", "orders"):
            conn.execute("INSERT INTO %s DEFAULT VALUES" % table if table == "orders"
                         else "INSERT INTO customers (name) VALUES ('new')")
            assert conn.execute("SELECT count(*) FROM %s" % table).fetchone()[0] > 0
        conn.execute("SELECT nextval('invoice_no')")
    with pg_cluster.connect(db, tcp=True, user=db + "_reader", password=app_password) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,), "GRANT CONNECT must survive"

    # The replaced data is the previous copy, closed to connections.
    previous = restored["previous"]["databases"]
    assert len(previous) == 1 and previous[0].startswith(db + "__lb_prev_")
    assert pg_cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = %s", params=previous) == [(False,)]
    assert files_snapshot(restored["previous"]["files"]) == damaged[1]

    repeat = run_module("backup_restore", dict(env, backup="before"))
    assert repeat["changed"] is False

    rolled = run_module("backup_restore", dict(env, rollback=True))
    assert rolled["changed"] is True, rolled
    assert pg_snapshot(pg_cluster, db)["rows"] == damaged[0]["rows"]
    assert files_snapshot(env["files_path"]) == damaged[1]


@pytest.mark.parametrize("form", ["mendix", "bare"])
def test_foreign_archives_restore_into_a_new_database(pg_cluster, tmp_path, form):
    source = new_env(pg_cluster, tmp_path)[0]
    dump = str(tmp_path / "db.backup")
    subprocess.run([os.path.join(pg_cluster.bin_dir, "pg_dump"), "-Fc", "-O", "-x", "-h", pg_cluster.socket_dir,
                    "-p", str(pg_cluster.port), "-U", "postgres", "-f", dump, source["database"]], check=True)
    if form == "mendix":
        src = str(tmp_path / "snapshot.tar.gz")
        mendix_snapshot(src, dump, {"a/b.txt": b"from the snapshot"})
    else:
        src = str(tmp_path / "export.db")  # the kind comes from the content, not the name
        shutil.copy(dump, src)
    target = source["database"] + "_copy"
    files = tmp_path / "copy-files"
    env = dict(pg_cluster.conn_params(tcp=False), environment=target, database=target, files_path=str(files),
               catalog=str(tmp_path / "catalog"), owner=source["database"])
    result = run_module("backup_restore", dict(env, src=src))
    assert result["changed"] is True, result
    assert result["restored"]["src"] == src
    assert pg_snapshot(pg_cluster, target)["rows"] == pg_snapshot(pg_cluster, source["database"])["rows"]
    assert pg_snapshot(pg_cluster, target)["database"][0] == source["database"], "owner option applies"
    if form == "mendix":
        assert (files / "a" / "b.txt").read_bytes() == b"from the snapshot"
    again = run_module("backup_restore", dict(env, src=src))
    assert again["changed"] is False


def test_connection_problems_are_clear(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path, tcp=True)[0]
    before = pg_snapshot(pg_cluster, env["database"])
    results = run_tasks([
        {"lifeboat.backup.backup_create": dict(env, login_password="wrong-password-123")},
        {"lifeboat.backup.backup_restore": dict(env, login_password="wrong-password-123", src="/etc/hostname")},
        {"lifeboat.backup.backup_create": dict(env, login_port=1)},
    ])
    assert results[0]["failed"] and "authentication failed" in results[0]["msg"], results[0]
    assert "wrong-password-123" not in json.dumps(results)
    assert results[1]["failed"], results[1]
    assert results[2]["failed"] and "server" in results[2]["msg"], results[2]
    assert pg_snapshot(pg_cluster, env["database"]) == before


def test_damaged_archive_leaves_data_unchanged(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    created = run_module("backup_create", env)
    damage_pg(pg_cluster, env["database"])
    before = pg_snapshot(pg_cluster, env["database"]), files_snapshot(env["files_path"])
    flip_byte(created["backup"]["path"])
    result = run_module("backup_restore", env)
    assert result["failed"], result
    assert (pg_snapshot(pg_cluster, env["database"]), files_snapshot(env["files_path"])) == before
    assert databases(pg_cluster, env["database"] + "__lb%") == []


def test_running_app_is_refused_then_cut_off(pg_cluster, tmp_path):
    env, app_password = new_env(pg_cluster, tmp_path)
    db = env["database"]
    run_module("backup_create", env)
    damage_pg(pg_cluster, db)
    before = pg_snapshot(pg_cluster, db)
    app = psycopg.connect(host=pg_cluster.host, port=pg_cluster.port, dbname=db, user=db, password=app_password,
                          autocommit=True)
    try:
        refused = run_module("backup_restore", env)
        assert refused["failed"] and "1 session" in refused["msg"], refused
        assert pg_snapshot(pg_cluster, db) == before
        app.execute("SELECT 1")  # still connected: the refusal touched nothing

        done = run_module("backup_restore", dict(env, terminate_sessions=True))
        assert done["changed"] is True, done
        with pytest.raises(psycopg.OperationalError):
            app.execute("INSERT INTO customers (name) VALUES ('lost write')")
        # The old copy takes no new connections, so the app cannot go on writing into it.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=pg_cluster.host, port=pg_cluster.port, dbname=done["previous"]["databases"][0],
                            user=db, password=app_password).close()
    finally:
        app.close()


# Where a crash may hit a restore, and which data the environment must be on right after it.
KILL_POINTS = [
    ("during_pg_restore", "old"),
    ("after_staging", "old"),
    ("after_journal", "old"),
    ("during_commit", "new"),
    ("between_file_ops", "new"),
    ("before_finish", "new"),
]


@pytest.mark.parametrize("point,expected", KILL_POINTS)
def test_sigkill_leaves_old_or_new_data_and_next_run_cleans_up(pg_cluster, tmp_path, point, expected):
    env = new_env(pg_cluster, tmp_path, rows=400000 if point == "during_pg_restore" else 200)[0]
    db = env["database"]
    created = run_module("backup_create", env)
    new = pg_snapshot(pg_cluster, db)["rows"], files_snapshot(env["files_path"])
    damage_pg(pg_cluster, db)
    (tmp_path / db / "files" / "added-later.txt").write_text("old data\n")
    old = pg_snapshot(pg_cluster, db)["rows"], files_snapshot(env["files_path"])

    params = dict(env, backup=None, src=None, owner=None, keep_previous=1, terminate_sessions=False, force=False,
                  rollback=False, login_db="postgres", ssl_mode="prefer", ca_cert=None)
    killed = subprocess.run([sys.executable, os.path.join(REPO, "tests", "integration", "killer.py"), point,
                             json.dumps(params)], env=ansible_env(PYTHONPATH=collections_path()),
                            capture_output=True, text=True, check=False)
    assert killed.returncode == -9, (killed.returncode, killed.stdout, killed.stderr)

    # Right after the crash the database is on old or new data, never neither.
    assert pg_snapshot(pg_cluster, db)["rows"] == (old if expected == "old" else new)[0]
    files_now = files_snapshot(env["files_path"]) if os.path.isdir(env["files_path"]) else None
    assert files_now in (old[1], new[1])

    result = run_module("backup_restore", dict(env, backup=created["backup"]["id"]))
    assert not result.get("failed"), result
    assert (pg_snapshot(pg_cluster, db)["rows"], files_snapshot(env["files_path"])) == new
    assert databases(pg_cluster, db + "__lb_stage%") == []
    catalog_env = os.path.join(env["catalog"], env["environment"])
    assert not os.path.exists(os.path.join(catalog_env, "journal.json"))
    assert not os.path.exists(env["files_path"] + ".lb_stage")
    tmp = os.path.join(catalog_env, ".tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
