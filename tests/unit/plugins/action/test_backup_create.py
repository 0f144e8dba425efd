# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's version reaches the archive's manifest from galaxy.yml, or from the MANIFEST.json that
ansible-galaxy makes of it."""

from __future__ import annotations

import json
import re

import yaml

from ansible_collections.lifeboat.backup.plugins.action.backup_create import collection_version


def test_a_source_tree_gives_the_version_of_its_galaxy_yml(tmp_path):
    (tmp_path / "galaxy.yml").write_text(yaml.safe_dump({"namespace": "lifeboat", "version": "1.2.3"}))
    assert collection_version(str(tmp_path)) == "1.2.3"


def test_a_built_collection_gives_the_version_of_its_manifest(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"collection_info": {"version": "2.0.0"}}))
    (tmp_path / "galaxy.yml").write_text(yaml.safe_dump({"version": "0.0.1"}))  # a stale copy does not count
    assert collection_version(str(tmp_path)) == "2.0.0"


def test_this_collection_has_a_version():
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+\S*", collection_version())
