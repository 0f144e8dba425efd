#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore
short_description: Restore a backup into an environment without losing the data it replaces
version_added: 0.1.0
description:
  - Restores an archive from the node's catalog (O(backup)) or from a path on the node (O(src)) into an
    environment, that is into its database and its file store.
  - Nothing is lost. Every database is restored into a staging copy created with the same owner, encoding,
    locale, connection limit, settings and privileges as the database it replaces, checked, and only then
    swapped in. PostgreSQL databases are renamed in one transaction after new connections are blocked and
    the remaining sessions ended. The replaced data is kept as a previous copy (O(keep_previous)).
  - A swap journal in the catalog lets the next run finish or undo a swap that was interrupted. If anything
    fails before the swap, the environment is exactly as it was; leftovers are removed by the next run.
  - Accepts Lifeboat archives, Mendix full snapshots (C(.tar.gz)) and bare PostgreSQL custom-format dumps,
    recognised by their content.
  - The environment records which backup it runs on; restoring that backup again changes nothing unless
    O(force=true).
author: Lifeboat maintainers (@lifeboat-maintainers)
requirements:
  - C(pg_restore) of the major version of the C(pg_dump) that made the archive or newer, when O(engine=postgresql)
  - cryptography >= 38, to restore an encrypted archive
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
  - lifeboat.backup.encryption
  - lifeboat.backup.restore_privilege
options:
  backup:
    description:
      - The backup to restore from the catalog, by id, by label, or C(latest).
      - Defaults to C(latest) when neither O(src) nor O(rollback) is given.
    type: str
  src:
    description:
      - Path of an archive on the node to restore instead of a catalog backup.
      - A linked project whose dump is not in it is looked for in its per-project file beside it, named as
        M(lifeboat.backup.backup_create) names them with O(lifeboat.backup.backup_create#module:layout=per_project)
        (C(backup.bck) -> C(backup.<name>.bck)).
    type: path
  keep_previous:
    description:
      - How many previous copies of the environment's data to keep. C(0) drops the replaced data once the
        restore has succeeded.
    type: int
    default: 1
  terminate_sessions:
    description:
      - End the sessions still connected to the database (the app is still running). Without it the module
        refuses while such sessions exist. SQLite files in use cannot be released this way.
    type: bool
    default: false
  force:
    description:
      - Restore even when the environment already runs on this backup.
    type: bool
    default: false
  keep_unsafe_modes:
    description:
      - Restore the file store's files and directories with the modes the archive gives them. By default they
        lose group and other write permission and the setuid, setgid and sticky bits, which an archive from
        elsewhere could use to open the file store to every user of the node.
    type: bool
    default: false
  structure_update:
    description:
      - Bring the restored databases to the structure the deployed application expects, on the staging copies
        before the swap, so a migration that fails leaves the environment untouched. The same options as
        M(lifeboat.backup.structure_update).
      - A backup whose recorded structure version is newer than the newest migration is refused (restoring it
        would break the running app) unless O(force=true).
    type: dict
    suboptions:
      migrations:
        description: Directory of C(V<version>__<description>.sql) migrations on the node.
        type: path
      command:
        description: The application's own updater (argv list or string); connection settings reach it in its
          environment, never in its arguments.
        type: raw
      chdir:
        description: Directory to run O(structure_update.command) in.
        type: path
      allow_drift:
        description: Go on although an applied migration's file has changed since.
        type: bool
        default: false
      allow_newer:
        description: Go on although the database's version is newer than every migration.
        type: bool
        default: false
      role:
        description: Role the migrations run as (default the database owner).
        type: str
      history_table:
        description: Table that records applied migrations.
        type: str
        default: lifeboat_schema_history
  rollback:
    description:
      - Swap the most recent previous copy back in, the same safe way. The current data becomes the previous
        copy, so a rollback can itself be undone.
    type: bool
    default: false
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Says what would be restored (and checks the archive's checksum) and touches nothing.
  diff_mode:
    support: full
    details: Shows the backup the environment runs on before and after.
notes:
  - Supports C(check_mode) and C(--diff).
seealso:
  - module: lifeboat.backup.backup_create
"""

EXAMPLES = r"""
- name: Restore the latest backup, ending the app's sessions
  lifeboat.backup.backup_restore:
    environment: shop-acceptance
    database: shop
    files_path: /srv/shop/files
    backup: latest
    terminate_sessions: true

- name: Restore a Mendix snapshot copied to the node
  lifeboat.backup.backup_restore:
    environment: shop-test
    database: shop
    src: /tmp/shop-snapshot.tar.gz
    owner: shop

- name: Undo the last restore
  lifeboat.backup.backup_restore:
    environment: shop-acceptance
    database: shop
    files_path: /srv/shop/files
    rollback: true
"""

RETURN = r"""
restored:
  description: The backup the environment runs on now.
  returned: always
  type: dict
  contains:
    id:
      description: Catalog id of the backup (null when restored from O(src)).
      type: str
    label:
      description: Its label, if any.
      type: str
    src:
      description: The archive path, when restored from O(src).
      type: str
previous:
  description: The copies of the replaced data that this run kept.
  returned: always
  type: dict
  contains:
    databases:
      description: Names (PostgreSQL) or paths (SQLite) of the kept previous databases.
      type: list
      elements: str
      sample: [shop__lb_prev_20261122130812]
    files:
      description: Path of the kept previous file store, or null.
      type: str
created_empty:
  description: Linked projects whose dump was missing and that got a new, empty database instead.
  returned: when a restore ran
  type: list
  elements: str
structure:
  description: What the structure update did to each database (C(db) is the main one), when O(structure_update)
    was given and the restore ran.
  returned: when a restore ran
  type: dict
  sample: {db: {applied: [2, 3], version_before: 1, version_after: 3}}
duration:
  description: Seconds the restore took.
  returned: always
  type: float
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_restore import restore
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import REQUIRED_IF
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import UPDATE_CONSTRAINTS, update_options
from ansible_collections.lifeboat.backup.plugins.module_utils.encryption import encryption_argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        encryption=encryption_argument_spec(),
        backup=dict(type="str"),
        src=dict(type="path"),
        keep_previous=dict(type="int", default=1),
        terminate_sessions=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        keep_unsafe_modes=dict(type="bool", default=False),
        rollback=dict(type="bool", default=False),
        structure_update=dict(type="dict", options=update_options(), **UPDATE_CONSTRAINTS),
    ), restore_privilege=True, non_negative=["keep_previous"], required_if=REQUIRED_IF,
        mutually_exclusive=[("backup", "src", "rollback")])
    run_module(module, restore)


if __name__ == "__main__":
    main()
