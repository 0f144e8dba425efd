# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and modes from the operator and from an archive, through real module runs."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import tarfile

import pytest

from datasets import files_snapshot
from playbook import run_module


@pytest.fixture
def env(tmp_path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a\n")
    connection = sqlite3.connect(tmp_path / "app.db")
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    return {"environment": "shop", "engine": "sqlite", "path": str(tmp_path / "app.db"),
            "files_path": str(tmp_path / "files"), "catalog": str(tmp_path / "catalog")}


def snapshot_archive(path, db_path, members):
    """A Mendix-style snapshot (no manifest): the database file, then tree members (name, type, mode, data)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(db_path, arcname="db/db.backup")
        for name, kind, mode, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size = kind, mode, len(data)
            tar.addfile(info, io.BytesIO(data))


MODES = [
    ("tree", tarfile.DIRTYPE, 0o755, b""),
    ("tree/shared", tarfile.DIRTYPE, 0o1777, b""),
    ("tree/shared/open.txt", tarfile.REGTYPE, 0o666, b"anyone may write\n"),
    ("tree/bin", tarfile.DIRTYPE, 0o2775, b""),
    ("tree/bin/tool", tarfile.REGTYPE, 0o4755, b"#!/bin/sh\n"),
]


def modes(root):
    return {rel: stat.S_IMODE(os.lstat(os.path.join(root, rel)).st_mode)
            for rel in ("shared", "shared/open.txt", "bin", "bin/tool")}


def test_an_archive_opens_no_file_to_other_users_unless_asked(env, tmp_path):
    archive = str(tmp_path / "snapshot.tar")
    snapshot_archive(archive, env["path"], MODES)

    result = run_module("backup_restore", dict(env, src=archive))
    assert result["changed"] and not result.get("failed"), result
    assert modes(env["files_path"]) == {"shared": 0o755, "shared/open.txt": 0o644, "bin": 0o755, "bin/tool": 0o755}

    kept = run_module("backup_restore", dict(env, src=archive, force=True, keep_unsafe_modes=True))
    assert kept["changed"] and not kept.get("failed"), kept
    # setuid and setgid never come back on files: the extracted files belong to root.
    assert modes(env["files_path"]) == {"shared": 0o1777, "shared/open.txt": 0o666, "bin": 0o2775,
                                        "bin/tool": 0o755}


def test_a_member_name_that_is_not_utf8_is_refused_at_restore(env, tmp_path):
    archive = str(tmp_path / "snapshot.tar")
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        tar.add(env["path"], arcname="db/db.backup")
        info = tarfile.TarInfo("tree/caf\xe9.txt")
        tar.addfile(info, io.BytesIO(b""))
    before = files_snapshot(env["files_path"])

    result = run_module("backup_restore", dict(env, src=archive))

    assert result.get("failed") and "UTF-8" in result["msg"], result
    assert files_snapshot(env["files_path"]) == before
    assert not os.path.exists(env["files_path"] + ".lb_stage")


@pytest.mark.parametrize("module", ["backup_create", "backup_restore", "backup_info"])
def test_a_name_with_a_trailing_newline_is_refused(env, module):
    result = run_module(module, dict(env, environment="shop\n"))
    assert result.get("failed") and "invalid environment 'shop\\n'" in result["msg"], result
    assert not os.path.exists(os.path.join(env["catalog"], "shop\n"))
