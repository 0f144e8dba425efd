# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node half of backup_download, on real files and catalogs."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import backup_download
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, sha256_file
from ansible_collections.lifeboat.backup.tests.unit.plugins.module_utils.uploads import as_root, params, send


@pytest.fixture
def catalog_with_backup(sources, tmp_path):
    done, _uploaded = send(tmp_path, sources["lifeboat"], label="first")
    return Catalog(str(tmp_path / "catalog")), done["backup"]


def test_download_resolves_id_label_and_latest(catalog_with_backup, tmp_path):
    _catalog, backup = catalog_with_backup
    for ref in (backup["id"], "first", "latest"):
        found = backup_download.download(params(tmp_path, backup=ref, dest="/x"))
        assert found["backup"]["id"] == backup["id"] and found["sha256"] == backup["sha256"]
        assert found["size"] == os.path.getsize(backup["path"]) and "export_path" not in found
    with pytest.raises(LifeboatError, match="has no backup 'nope'"):
        backup_download.download(params(tmp_path, backup="nope"))
    with pytest.raises(LifeboatError, match="has no backups"):
        backup_download.download(params(tmp_path, environment="other", backup="latest"))


def test_download_notices_a_damaged_archive(catalog_with_backup, tmp_path):
    _catalog, backup = catalog_with_backup
    with open(backup["path"], "ab") as handle:
        handle.write(b"more")
    with pytest.raises(LifeboatError, match="is damaged"):
        backup_download.download(params(tmp_path, backup="latest"))


def test_export_to_ourselves_hands_out_the_catalog_path(catalog_with_backup, tmp_path):
    _catalog, backup = catalog_with_backup
    (tmp_path / "ours").mkdir()
    assert backup_download.export(backup["path"], str(tmp_path / "ours")) == backup["path"]
    assert os.listdir(tmp_path / "ours") == []


@as_root
def test_export_gives_a_copy_to_the_connection_user(catalog_with_backup, tmp_path):
    _catalog, backup = catalog_with_backup
    nobody = pwd.getpwnam("nobody")
    remote_tmp = tmp_path / "remote-tmp-of-nobody"
    remote_tmp.mkdir(mode=0o700)
    os.chown(remote_tmp, nobody.pw_uid, nobody.pw_gid)
    before = os.stat(backup["path"])
    copy = backup_download.export(backup["path"], str(remote_tmp))
    info = os.stat(copy)
    assert os.path.dirname(copy) == str(remote_tmp) and info.st_ino != before.st_ino
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (nobody.pw_uid, nobody.pw_gid, 0o600)
    assert sha256_file(copy) == backup["sha256"]
    after = os.stat(backup["path"])
    assert (after.st_uid, after.st_mode) == (before.st_uid, before.st_mode), "the catalog's file is untouched"


@as_root
def test_export_does_not_follow_a_planted_link(catalog_with_backup, tmp_path):
    _catalog, backup = catalog_with_backup
    nobody = pwd.getpwnam("nobody")
    remote_tmp = tmp_path / "remote-tmp-of-nobody"
    remote_tmp.mkdir()
    os.chown(remote_tmp, nobody.pw_uid, nobody.pw_gid)
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    (remote_tmp / os.path.basename(backup["path"])).symlink_to(victim)
    with pytest.raises(LifeboatError, match="already exists"):
        backup_download.export(backup["path"], str(remote_tmp))
    assert victim.read_bytes() == b"keep me" and os.stat(victim).st_uid == 0
