# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""structure_update: bring an environment's databases to the structure the deployed project expects.

The update of one database is module_utils/migrations.py; see docs/structure-update.md.
"""

from __future__ import annotations

from ansible_collections.lifeboat.backup.plugins.module_utils import migrations
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment

_PROJECT_KEYS = ("changed", "applied", "pending", "version_before", "version_after")


def update_environment(params, check_mode=False):
    """The module's operation: ``migrations.update`` on the environment's database, then on each linked project
    that has its own migrations directory (reported under ``projects``)."""
    environment = Environment(params)
    try:
        options = {key: params.get(key) for key in migrations.UPDATE_KEYS}
        result = migrations.update(environment.engine, environment.targets[MAIN], check_mode=check_mode, **options)
        result["projects"] = {}
        for name in environment.migrations:
            done = migrations.update(environment.engines[name], environment.targets[name], check_mode=check_mode,
                                     **environment.update_options(name, options))
            result["changed"] = result["changed"] or done["changed"]
            result["warnings"] = result.get("warnings", []) + done.get("warnings", [])
            result["projects"][name] = {key: done.get(key) for key in _PROJECT_KEYS}
        return result
    finally:
        environment.close()
