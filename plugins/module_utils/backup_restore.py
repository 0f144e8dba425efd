# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_restore: put a backup, or the newest previous copy, in place of an environment's data.

The restore itself is restoring.py's (staging) and swap.py's (the journal, previous copies); this module adds
structure_update's part: the archive's structure version checked, each staging copy updated before the swap.
"""

from __future__ import annotations

from ansible_collections.lifeboat.backup.plugins.module_utils import migrations, restoring, swap
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import Environment


def restore(params, check_mode=False):
    environment = Environment(params)
    try:
        if params.get("rollback"):
            return swap.rollback(environment, params, check_mode)
        update = params.get("structure_update")
        updater = _StructureUpdate(environment, update, params["force"]) if update else None
        return restoring.restore(environment, params, check_mode, updater)
    finally:
        environment.close()


class _StructureUpdate:
    """structure_update's part of a restore (see restoring.stage): on the staging copies, so that a migration that fails
    leaves the environment untouched."""

    def __init__(self, environment, update, force):
        self.environment = environment
        self.update_options = update
        self.force = force

    def check(self, manifest):
        _check_structure_version(manifest, self.update_options, self.force)

    def update(self, name, staging, warnings):
        """Update staging copy ``name``; what was applied, or None for a database without migrations."""
        options = _update_options(self.environment, name, self.update_options, self.force)
        if not options:
            return None
        updated = migrations.update(self.environment.engines[name], staging, **options)
        warnings.extend(updated.pop("warnings", []))
        return {key: updated.get(key) for key in ("applied", "version_before", "version_after")}


def _update_options(environment, name, update, force):
    """structure_update's options for one database: linked projects bring their own migrations, or none."""
    options = environment.update_options(name, {key: update.get(key) for key in migrations.UPDATE_KEYS})
    if options is None:
        return None
    # force already said yes to a backup from a newer release.
    options["allow_newer"] = options["allow_newer"] or force
    return options


def _check_structure_version(manifest, update, force):
    """A backup from a newer release would break the app that runs now: refuse it unless forced."""
    backup_version = manifest.get("structure_version")
    if backup_version is not None and (not isinstance(backup_version, int) or isinstance(backup_version, bool)):
        raise LifeboatError("the archive's manifest gives structure_version as %.60r, not an integer: the archive was "
                            "altered or made by another tool; nothing was changed" % (backup_version,))
    project = migrations.project_version(update["migrations"]) if update.get("migrations") else None
    if backup_version is not None and project is not None and backup_version > project and not force:
        raise LifeboatError(
            "backup %s has structure version %d, newer than the project's migrations (%d): restoring it would "
            "break the running app; deploy the newer release first, or set force: true to restore anyway"
            % (manifest.get("backup_id"), backup_version, project))
