# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_restore with structure_update: the update runs on the staging copy, before the swap."""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile

import pytest

from datasets import sqlite_snapshot
from playbook import run_module, run_tasks
from test_sqlite_environment import damage, make_sqlite_app

MIGRATIONS = {
    1: "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);",
    2: "ALTER TABLE tags ADD COLUMN color TEXT;",
    3: "CREATE TABLE labels (id INTEGER PRIMARY KEY);\nINSERT INTO labels VALUES (1);",
}


def write_migrations(directory, versions, broken=None):
    directory.mkdir(exist_ok=True)
    for version in versions:
        body = MIGRATIONS[version] if version != broken else "CREATE TABLE half (id INTEGER);\nSELECT * FROM nowhere;"
        (directory / ("V%d__step_%d.sql" % (version, version))).write_text(body + "\n")
    return str(directory)


def history(path):
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT version FROM lifeboat_schema_history ORDER BY 1")]
    finally:
        connection.close()


@pytest.fixture
def env(tmp_path):
    env = make_sqlite_app(tmp_path)
    migrations = write_migrations(tmp_path / "migrations", [1])
    updated = run_module("structure_update", dict(env, migrations=migrations))
    assert updated["applied"] == [1], updated
    return env


def test_backup_records_structure_and_restore_updates_staging(env, tmp_path):
    created = run_module("backup_create", env)
    with tarfile.open(created["backup"]["path"]) as tar:
        assert json.load(tar.extractfile("lifeboat.json"))["structure_version"] == 1

    migrations = write_migrations(tmp_path / "migrations", [1, 2, 3])
    damage(env)
    results = run_tasks([
        {"lifeboat.backup.backup_restore": dict(env, structure_update={"migrations": migrations})},
        {"lifeboat.backup.backup_restore": dict(env, structure_update={"migrations": migrations})},
    ])
    assert results[0]["changed"] is True, results[0]
    assert results[0]["structure"] == {"db": {"applied": [2, 3], "version_before": 1, "version_after": 3}}
    assert results[1]["changed"] is False
    assert history(env["path"]) == [1, 2, 3]


def test_failing_migration_leaves_the_environment_untouched(env, tmp_path):
    run_module("backup_create", env)
    migrations = write_migrations(tmp_path / "migrations", [1, 2, 3], broken=3)
    damage(env)
    before = sqlite_snapshot(env["path"])
    result = run_module("backup_restore", dict(env, structure_update={"migrations": migrations}))
    assert result["failed"] and "V3__step_3.sql" in result["msg"], result
    assert sqlite_snapshot(env["path"]) == before
    assert [p for p in os.listdir(os.path.dirname(env["path"])) if ".lb_" in p] == []


def test_backup_newer_than_the_project_is_refused_unless_forced(env, tmp_path):
    migrations = write_migrations(tmp_path / "migrations", [1, 2, 3])
    run_module("structure_update", dict(env, migrations=migrations))
    created = run_module("backup_create", env)
    old_project = write_migrations(tmp_path / "old-release", [1, 2])
    damage(env)
    before = sqlite_snapshot(env["path"])
    results = run_tasks([
        {"lifeboat.backup.backup_restore": dict(env, structure_update={"migrations": old_project})},
        {"lifeboat.backup.backup_restore": dict(env, structure_update={"migrations": old_project}, force=True)},
    ])
    assert results[0]["failed"] and "newer than the project" in results[0]["msg"], results[0]
    assert results[1]["changed"] is True, results[1]
    assert sqlite_snapshot(env["path"]) != before
    assert results[1]["restored"]["id"] == created["backup"]["id"]
