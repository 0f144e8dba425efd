# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create and backup_restore driven through main(), on a real SQLite environment."""

from __future__ import annotations

import os
import sqlite3

import pytest

from ansible_collections.lifeboat.backup.plugins.modules import backup_create, backup_restore
from ansible_collections.lifeboat.backup.tests.databases import rows, sqlite_db


@pytest.fixture
def env(tmp_path):
    return {"environment": "unit", "engine": "sqlite", "path": sqlite_db(tmp_path / "app.db", "before"),
            "catalog": str(tmp_path / "catalog")}


@pytest.mark.parametrize("module,args,message", [
    (backup_create, {"environment": "x", "engine": "sqlite"}, "path"),
    (backup_create, {"environment": "x"}, "database"),
    (backup_restore, {"environment": "x", "engine": "sqlite", "path": "/x.db", "backup": "latest", "src": "/a"},
     "mutually exclusive"),
    (backup_restore, {"environment": "x", "engine": "sqlite", "path": "/x.db", "keep_previous": -1},
     "keep_previous"),
    (backup_create, {"environment": "../etc", "engine": "sqlite", "path": "/x.db"}, "invalid environment"),
    (backup_create, {"environment": "x", "engine": "sqlite", "path": "/missing/x.db", "catalog": "/nonexistent"},
     "does not exist"),
    (backup_create, {"environment": "x", "engine": "sqlite", "path": "/x.db",
                     "encryption": {"mode": "passphrase"}}, "passphrase"),
])
def test_bad_arguments_fail_cleanly(module, args, message, run_main):
    result = run_main(module, args)
    assert result["failed"] is True
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"]


def test_create_then_restore(env, run_main):
    planned = run_main(backup_create, dict(env, _ansible_check_mode=True))
    assert planned["changed"] is True and not os.path.exists(env["catalog"])

    created = run_main(backup_create, dict(env, label="one"))
    assert created["changed"] is True and os.path.isfile(created["backup"]["path"])
    assert run_main(backup_create, dict(env, label="one"))["changed"] is False

    connection = sqlite3.connect(env["path"])
    connection.execute("UPDATE t SET v = 'after'")
    connection.commit()
    connection.close()

    diff = run_main(backup_restore, dict(env, backup="one", _ansible_check_mode=True, _ansible_diff=True))
    assert diff["changed"] is True and rows(env["path"]) == [("after",)]
    assert diff["diff"] == {"before": {"backup": None}, "after": {"backup": created["backup"]["id"]}}

    restored = run_main(backup_restore, dict(env, backup="one"))
    assert restored["changed"] is True and rows(env["path"]) == [("before",)]
    assert "diff" not in restored, "no diff unless asked for"
    assert run_main(backup_restore, dict(env, backup="one"))["changed"] is False
