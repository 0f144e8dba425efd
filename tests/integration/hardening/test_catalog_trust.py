# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Privilege, the catalog's part: a planted journal or state, or a swapped archive, through real module runs.

The journal and the state are acted on as root, so whoever can write them could make a restore rename or
delete anything. Lifeboat trusts them only in a private catalog, and even there acts only on names the
environment derives itself.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest

from datasets import files_snapshot, sqlite_snapshot
from playbook import run_module


@pytest.fixture
def env(tmp_path):
    app = tmp_path / "app"
    (app / "files").mkdir(parents=True)
    connection = sqlite3.connect(app / "app.db")
    connection.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    connection.execute("INSERT INTO notes (body) VALUES ('first')")
    connection.commit()
    connection.close()
    (app / "files" / "a.txt").write_text("a\n")
    return {"environment": "wiki", "engine": "sqlite", "path": str(app / "app.db"),
            "files_path": str(app / "files"), "catalog": str(tmp_path / "catalog")}


@pytest.fixture
def victim(tmp_path):
    """A root-owned file and directory outside the catalog that an attacker wants replaced or deleted."""
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "keep.txt").write_text("keep me\n")
    (tmp_path / "victim.conf").write_text("root's own\n")
    (tmp_path / "evil.conf").write_text("attacker's\n")
    return tmp_path


def live(env):
    return sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])


def env_dir(env):
    return os.path.join(env["catalog"], env["environment"])


def plant(env, name, value):
    path = os.path.join(env_dir(env), name)
    with open(path, "w") as handle:
        json.dump(value, handle)
    os.chmod(path, 0o600)
    return path


def journal_replacing(env, victim):
    """What a restore's own journal looks like, with one operation aimed outside the environment."""
    evil, target = str(victim / "evil.conf"), str(victim / "victim.conf")
    return {
        "engine": "sqlite", "progress": 0, "keep_previous": 1, "consumes": None,
        "backup": {"id": "20260101T000000Z-abcdef"},
        "targets": [{"name": "db", "target": env["path"]}],
        "generation": {"stamp": "20260101000000", "backup": None, "databases": [], "files": None},
        "ops": [{"kind": "replace", "src": evil, "dst": target, "inode": os.lstat(evil).st_ino}],
    }


def assert_untouched(victim):
    assert (victim / "victim.conf").read_text() == "root's own\n"
    assert (victim / "precious" / "keep.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_catalog_others_can_write_is_refused(env, victim, mode):
    assert not run_module("backup_create", env).get("failed")
    before = live(env)
    os.chmod(env_dir(env), mode)
    plant(env, "journal.json", journal_replacing(env, victim))

    result = run_module("backup_restore", dict(env, backup="latest"))

    assert result.get("failed") and "writable by group or others" in result["msg"], result
    assert "chmod go-w" in result["msg"]
    assert_untouched(victim)
    assert live(env) == before


def test_a_shared_parent_without_sticky_bit_is_refused(env, victim, tmp_path):
    assert not run_module("backup_create", env).get("failed")
    os.chmod(tmp_path, 0o777)
    try:
        result = run_module("backup_info", {"catalog": env["catalog"]})
    finally:
        os.chmod(tmp_path, 0o700)
    assert result.get("failed") and "catalog parent directory %s" % tmp_path in result["msg"], result


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the catalog to another user")
def test_a_catalog_of_another_user_is_refused(env, victim):
    assert not run_module("backup_create", env).get("failed")
    plant(env, "journal.json", journal_replacing(env, victim))
    os.chown(env_dir(env), 65534, 65534)

    result = run_module("backup_restore", dict(env, backup="latest"))

    assert result.get("failed") and "belongs to uid 65534" in result["msg"], result
    assert_untouched(victim)


def test_a_journal_aimed_outside_the_environment_is_refused_in_a_private_catalog(env, victim):
    assert not run_module("backup_create", env).get("failed")
    before = live(env)
    journal = plant(env, "journal.json", journal_replacing(env, victim))

    result = run_module("backup_restore", dict(env, backup="latest"))

    assert result.get("failed") and "refusing to act on it" in result["msg"], result
    assert str(victim / "evil.conf") in result["msg"]
    assert_untouched(victim)
    assert live(env) == before
    assert os.path.exists(journal), "the evidence stays for the operator"


@pytest.mark.parametrize("module", ["backup_restore", "backup_prune"])
def test_a_state_naming_a_foreign_directory_as_previous_copy_deletes_nothing(env, victim, module):
    assert not run_module("backup_create", env).get("failed")
    before = live(env)
    plant(env, "state.json", {"current": None, "previous": [
        {"stamp": "20260101000000", "backup": None, "databases": [], "files": str(victim / "precious")}]})
    args = dict(env, backup="latest", keep_previous=0) if module == "backup_restore" else dict(
        env, keep_previous_copies=0)

    result = run_module(module, args)

    assert result.get("failed") and "refusing to act on it" in result["msg"], result
    assert_untouched(victim)
    assert live(env) == before


def test_a_symlinked_state_is_refused(env, victim):
    assert not run_module("backup_create", env).get("failed")
    os.symlink(victim / "victim.conf", os.path.join(env_dir(env), "state.json"))

    result = run_module("backup_restore", dict(env, backup="latest"))

    assert result.get("failed") and "state.json" in result["msg"], result
    assert_untouched(victim)


@pytest.mark.parametrize("check", [True, False])
def test_an_archive_swapped_in_the_catalog_is_refused_before_the_swap(env, check):
    first = run_module("backup_create", dict(env, label="first"))["backup"]
    with open(os.path.join(env["files_path"], "b.txt"), "w") as handle:
        handle.write("b\n")
    second = run_module("backup_create", dict(env, label="second"))["backup"]
    before = live(env)
    # Another valid archive under the first one's name: only the catalog's checksum tells them apart.
    shutil.copyfile(second["path"], first["path"])

    result = run_module("backup_restore", dict(env, backup="first"), check=check)

    assert result.get("failed") and "SHA-256" in result["msg"] and first["id"] in result["msg"], result
    assert live(env) == before
    assert not os.path.exists(env["files_path"] + ".lb_stage")
    tmp = os.path.join(env_dir(env), ".tmp")
    assert not os.path.exists(tmp) or not os.listdir(tmp)
