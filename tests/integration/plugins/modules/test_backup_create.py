# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create's controller half through real ansible-playbook runs: the archive's manifest names the version
of the collection that wrote it (galaxy.yml's), in a plain task and in an async one."""

from __future__ import annotations

import json
import pathlib
import tarfile

import yaml

from ansible_collections.lifeboat.backup.tests.databases import sqlite_db
from playbook import run_tasks

from ansible_collections.lifeboat.backup.plugins.module_utils import archive

COLLECTION_ROOT = pathlib.Path(archive.__file__).resolve().parents[2]


def test_the_manifest_names_the_collection_version(tmp_path):
    env = {"environment": "prod", "engine": "sqlite", "path": sqlite_db(tmp_path / "app.db"),
           "catalog": str(tmp_path / "catalog")}
    results = run_tasks([
        {"lifeboat.backup.backup_create": env},
        {"lifeboat.backup.backup_create": env, "async": 120, "poll": 1},
    ])
    version = yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text())["version"]
    for result in results:
        assert result["changed"] is True and not result.get("failed"), result
        with tarfile.open(result["backup"]["path"]) as tar:
            manifest = json.load(tar.extractfile("lifeboat.json"))
        assert manifest["tool_version"] == version, manifest
