# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import sqlite3
import types

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import common
from ansible_collections.lifeboat.backup.plugins.module_utils.engines import sqlite
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.tests.databases import sqlite_db


@pytest.fixture
def dump(tmp_path):
    return sqlite_db(tmp_path / "db.backup", bytes(200000))


def test_restore_to_builds_a_sound_staging_copy(dump, tmp_path):
    staging = str(tmp_path / "app.db.lb_stage")
    sqlite.restore_to(dump, staging)
    connection = sqlite3.connect(staging)
    assert connection.execute("SELECT length(v) FROM t").fetchall() == [(200000,)]
    connection.close()


def test_restore_to_refuses_before_writing_when_the_filesystem_is_nearly_full(dump, tmp_path, monkeypatch):
    real = os.statvfs(str(tmp_path))
    # As much free as the dump needs, without the margin.
    tight = types.SimpleNamespace(f_bavail=os.path.getsize(dump) // real.f_frsize + 1, f_frsize=real.f_frsize,
                                  f_files=real.f_files, f_favail=real.f_favail)
    monkeypatch.setattr(common.os, "statvfs", lambda path: tight)
    staging = str(tmp_path / "app.db.lb_stage")
    with pytest.raises(LifeboatError, match="not enough free space for the staging copy of SQLite database %s on the "
                       "filesystem mounted at /" % staging):
        sqlite.restore_to(dump, staging)
    assert not os.path.exists(staging)
