# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""environment_call through real ansible-playbook runs: module_defaults reach the module it runs, below what the
entry and the task's options say."""

from __future__ import annotations

import os

from ansible_collections.lifeboat.backup.tests.databases import sqlite_db
from playbook import run_play


def _entry(path, **extra):
    return dict({"name": "shop", "engine": "sqlite", "path": path}, **extra)


def _call(entry, defaults, **options):
    return {"lifeboat.backup.environment_call": {"entry": entry, "module": "backup_create", "options": options},
            "module_defaults": defaults}


def test_module_defaults_of_the_group_reach_the_module(tmp_path):
    group = str(tmp_path / "group-catalog")
    own = str(tmp_path / "own-catalog")
    defaults = {"group/lifeboat.backup.all": {"catalog": group, "comment": "from the defaults"}}
    path = sqlite_db(tmp_path / "app.db")
    results, process = run_play([
        _call(_entry(path), defaults, label="one"),
        _call(_entry(path, catalog=own), defaults, label="two", comment="from the task"),
    ])
    assert process.returncode == 0, process.stdout + process.stderr
    first, second = results
    assert not first.get("failed") and first["backup"]["path"].startswith(group + os.sep), first
    assert first["backup"]["comment"] == "from the defaults"
    # The entry's catalog and the task's options win over the defaults.
    assert not second.get("failed") and second["backup"]["path"].startswith(own + os.sep), second
    assert second["backup"]["comment"] == "from the task"
