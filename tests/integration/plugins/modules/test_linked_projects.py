# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Environments with linked projects: one archive or one file per project, all databases swapped together."""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile
import uuid

import pytest

from archives import flip_byte
from datasets import pg_snapshot, sqlite_snapshot
from playbook import run_module, run_tasks
from test_sqlite_environment import make_sqlite_app

PROJECTS = ("crm", "shop")


def make_project_db(path, rows):
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    connection.executemany("INSERT INTO items (name) VALUES (?)", [("item %d ✓" % i,) for i in range(rows)])
    connection.commit()
    connection.close()


def damage_db(path):
    connection = sqlite3.connect(path)
    connection.execute("DELETE FROM %s" % ("orders" if path.endswith("app.db") else "items"))
    connection.commit()
    connection.close()


@pytest.fixture
def env(tmp_path):
    env = make_sqlite_app(tmp_path)
    env["linked_projects"] = []
    for index, name in enumerate(PROJECTS):
        path = str(tmp_path / "app" / ("%s.db" % name))
        make_project_db(path, rows=5 + index)
        env["linked_projects"].append({"name": name, "path": path})
    return env


def paths(env):
    return [env["path"]] + [project["path"] for project in env["linked_projects"]]


def snapshots(env):
    return [sqlite_snapshot(path) for path in paths(env)]


def test_one_archive_holds_every_project_and_all_swap_together(env):
    original = snapshots(env)
    created = run_module("backup_create", env)
    assert [d["name"] for d in created["backup"]["databases"]] == ["db", "crm", "shop"], created
    for path in paths(env):
        damage_db(path)
    damaged = snapshots(env)

    restored, again = run_tasks([{"lifeboat.backup.backup_restore": env}, {"lifeboat.backup.backup_restore": env}])
    assert restored["changed"] is True, restored
    assert snapshots(env) == original
    assert restored["created_empty"] == []
    previous = restored["previous"]["databases"]
    assert len(previous) == 3
    assert [sqlite_snapshot(path) for path in previous] == damaged
    assert again["changed"] is False


def test_backup_from_before_the_projects_were_linked(env):
    main_only = dict(env, linked_projects=[])
    run_module("backup_create", main_only)
    restored = run_module("backup_restore", env)
    assert restored["changed"] is True, restored
    assert restored["created_empty"] == ["crm", "shop"]
    assert [sqlite_snapshot(p["path"]) for p in env["linked_projects"]] == [([], {}), ([], {})]
    assert len(restored["previous"]["databases"]) == 3, "the replaced project databases are kept too"


def test_per_project_files_and_a_missing_one(env, tmp_path):
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    dest = str(exchange / "backup.bck")
    planned, created = run_tasks([
        {"lifeboat.backup.backup_create": dict(env, layout="per_project", dest=dest), "check_mode": True},
        {"lifeboat.backup.backup_create": dict(env, layout="per_project", dest=dest)},
    ])
    assert planned["changed"] is True and created["changed"] is True, created
    names = sorted(os.listdir(exchange))
    assert names == ["backup.bck", "backup.crm.bck", "backup.shop.bck"], "check mode wrote nothing, the run all three"
    assert [p["path"] for p in created["backup"]["projects"]] == [str(exchange / n) for n in
                                                                  ("backup.bck", "backup.crm.bck", "backup.shop.bck")]
    original = snapshots(env)
    for path in paths(env):
        damage_db(path)
    os.unlink(exchange / "backup.shop.bck")

    restored = run_module("backup_restore", dict(env, src=dest))
    assert restored["changed"] is True, restored
    assert restored["created_empty"] == ["shop"]
    assert any("shop" in warning and "empty" in warning for warning in restored.get("warnings", [])), restored
    now = snapshots(env)
    assert now[:2] == original[:2]
    assert now[2] == ([], {}), "the missing project got a new, empty database"


def test_one_bad_project_file_swaps_nothing(env, tmp_path):
    dest = str(tmp_path / "backup.bck")
    run_module("backup_create", dict(env, layout="per_project", dest=dest))
    for path in paths(env):
        damage_db(path)
    before = snapshots(env)
    flip_byte(str(tmp_path / "backup.crm.bck"))
    result = run_module("backup_restore", dict(env, src=dest))
    assert result["failed"], result
    assert snapshots(env) == before
    assert [p for p in os.listdir(os.path.dirname(env["path"])) if ".lb_" in p] == []


def test_linked_project_gets_its_own_migrations(env, tmp_path):
    crm_migrations = tmp_path / "crm-migrations"
    crm_migrations.mkdir()
    (crm_migrations / "V1__notes.sql").write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY);\n")
    env["linked_projects"][0]["migrations"] = str(crm_migrations)
    main_migrations = tmp_path / "main-migrations"
    main_migrations.mkdir()
    planned, first = run_tasks([
        {"lifeboat.backup.structure_update": dict(env, migrations=str(main_migrations)), "check_mode": True},
        {"lifeboat.backup.structure_update": dict(env, migrations=str(main_migrations))},
    ])
    assert planned["changed"] is True and planned["projects"]["crm"]["pending"] == [1], planned
    assert first["changed"] is True and first["projects"]["crm"]["applied"] == [1], first
    assert first["applied"] == [] and "shop" not in first["projects"]
    created = run_module("backup_create", env)
    with tarfile.open(created["backup"]["path"]) as tar:
        assert json.load(tar.extractfile("lifeboat.json"))["linked_structure_versions"] == {"crm": 1}
    (crm_migrations / "V2__more.sql").write_text("ALTER TABLE notes ADD COLUMN body TEXT;\n")
    (crm_migrations / "V3__again.sql").write_text("CREATE INDEX notes_body ON notes (body);\n")
    damage_db(env["path"])
    result = run_module("backup_restore", dict(env, structure_update={"migrations": str(main_migrations)}))
    assert result["changed"] is True, result
    assert result["structure"]["crm"] == {"applied": [2, 3], "version_before": 1, "version_after": 3}
    assert "shop" not in result["structure"], "a project without migrations is not updated"


def pg_env(cluster, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    names = {"db": "main_" + suffix, "crm": "crm_" + suffix, "shop": "shop_" + suffix}
    # An ordinary owner: a restore refuses to run an archive's SQL as a superuser.
    owner = "owner_" + suffix
    cluster.psql("CREATE ROLE %s NOLOGIN" % owner)
    for index, database in enumerate(names.values()):
        cluster.psql("CREATE DATABASE %s OWNER %s" % (database, owner))
        with cluster.connect(database) as conn:
            conn.execute("SET ROLE %s" % owner)
            conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
            conn.execute("INSERT INTO items (name) SELECT 'row ' || i FROM generate_series(1, %s) i", [5 + index])
    env = dict(cluster.conn_params(tcp=False), environment="linked_" + suffix, database=names["db"],
               catalog=str(tmp_path / "catalog"),
               linked_projects=[{"name": name, "database": names[name]} for name in PROJECTS])
    return env, names


def test_postgresql_projects_restore_together_and_other_servers_are_refused(pg_cluster, tmp_path):
    env, names = pg_env(pg_cluster, tmp_path)
    original = {name: pg_snapshot(pg_cluster, db)["rows"] for name, db in names.items()}
    dest = str(tmp_path / "backup.bck")
    other_server = dict(env, linked_projects=[{"name": "crm", "database": names["crm"], "login_port": 1}])
    results = run_tasks([
        {"lifeboat.backup.backup_create": env},
        {"lifeboat.backup.backup_create": dict(env, layout="per_project", dest=dest)},
        {"lifeboat.backup.backup_create": other_server},
    ])
    assert not results[0].get("failed") and not results[1].get("failed"), results
    assert results[2]["failed"] and "another PostgreSQL server" in results[2]["msg"], results[2]
    for db in names.values():
        pg_cluster.psql("DELETE FROM items", db=db)
    os.unlink(tmp_path / "backup.shop.bck")

    restored, from_files = run_tasks([
        {"lifeboat.backup.backup_restore": env},
        {"lifeboat.backup.backup_restore": dict(env, src=dest)},
    ])
    assert restored["changed"] is True, restored
    assert len(restored["previous"]["databases"]) == 3
    assert from_files["changed"] is True and from_files["created_empty"] == ["shop"], from_files
    now = {name: pg_snapshot(pg_cluster, db)["rows"] for name, db in names.items()}
    assert now["db"] == original["db"] and now["crm"] == original["crm"]
    assert now["shop"] == {}, "the missing project got a new, empty database"
