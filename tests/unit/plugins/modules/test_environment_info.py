# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""environment_info driven through main(), on a real SQLite environment, and its disk space helper."""

from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.environment_info import free_space
from ansible_collections.lifeboat.backup.plugins.modules import environment_info


@pytest.fixture
def env(tmp_path):
    db = tmp_path / "app.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE t (v TEXT)")
    connection.commit()
    connection.close()
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.bin").write_bytes(b"x" * 1000)
    return {"environment": "unit", "engine": "sqlite", "path": str(db), "files_path": str(files),
            "catalog": str(tmp_path / "catalog")}


def test_reads_an_idle_environment_without_writing(env, run_main, tmp_path):
    result = run_main(environment_info, dict(env, _ansible_check_mode=True))
    assert result["changed"] is False and not result.get("failed"), result
    assert result["sessions"] == {env["path"]: 0}
    assert result["lock"] is None and result["current"] is None
    assert result["needed_space"] == os.path.getsize(env["path"]) + 1000
    assert set(result["free_space"]) == {env["catalog"], str(tmp_path)}
    assert not os.path.exists(env["catalog"])


def test_reports_the_lock_holder_and_current_backup(env, run_main):
    catalog = Catalog(env["catalog"])
    catalog.write_state("unit", {"current": {"id": "20261122T130812Z-a1b2c3"}})
    with catalog.lock("unit", "restore"):
        result = run_main(environment_info, env)
    assert result["lock"]["operation"] == "restore" and result["lock"]["pid"] == os.getpid()
    assert result["current"] == {"id": "20261122T130812Z-a1b2c3"}


@pytest.mark.parametrize("args,message", [
    ({"environment": "unit", "engine": "sqlite"}, "path"),
    ({"environment": "../x", "engine": "sqlite", "path": "/x.db"}, "invalid environment"),
    ({"environment": "unit", "engine": "sqlite", "path": "relative.db"}, "must be absolute"),
])
def test_operator_errors(args, message, run_main):
    result = run_main(environment_info, args)
    assert result["failed"] and message in result["msg"], result


def test_free_space_of_a_missing_path_is_its_parents(tmp_path):
    space = free_space([str(tmp_path / "not" / "yet"), str(tmp_path)])
    assert space[str(tmp_path / "not" / "yet")] > 0 and set(space) == {str(tmp_path / "not" / "yet"), str(tmp_path)}
