# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of lifeboat.backup.backup_create: runs the module as any other, telling it the collection's
version for the archive's manifest (``tool_version``).

galaxy.yml is the one place that version is written; ``ansible-galaxy collection build`` copies it into the
MANIFEST.json of a built or installed collection. Only the controller has either file: the node gets the module
and its module_utils, so the version travels as the internal option ``_tool_version``.
"""

from __future__ import annotations

import json
import os

import yaml

from ansible.plugins.action.normal import ActionModule as NormalAction

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_version(root=COLLECTION_ROOT):
    """This collection's version: from MANIFEST.json where it was built or installed, else from galaxy.yml."""
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return json.load(handle)["collection_info"]["version"]
    except FileNotFoundError:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            return yaml.safe_load(handle)["version"]


class ActionModule(NormalAction):
    def run(self, tmp=None, task_vars=None):
        # Internal options are the plugin's to set; async, check mode and the rest work as for any module.
        self._task.args = dict(self._task.args, _tool_version=collection_version())
        return super().run(tmp, task_vars)
