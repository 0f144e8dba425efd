#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: structure_update
short_description: Bring a database's structure up to what the deployed application expects
version_added: 0.1.0
description:
  - A backup carries the database structure of the day it was taken. After a restore (and on any other day)
    this module brings the environment's database to the structure of the currently deployed project.
  - With O(migrations), applies versioned SQL files named C(V<version>__<description>.sql) (for example
    C(V3__add_invoice_table.sql)) that the database has not had yet, in version order, each in its own
    transaction together with its record in a history table. A migration that fails is rolled back entirely
    and the module fails naming the file; the migrations before it stay applied.
  - Refuses, applying nothing, when an applied migration's file has changed since or is gone, when a pending
    migration is older than the database's version (drift, see O(allow_drift)), or when the database is at a
    version newer than every migration of the project, for example restored from a newer release's backup
    (see O(allow_newer)).
  - With O(command), runs the application's own updater instead (for example C(alembic upgrade head)), with the
    connection to the database in its environment. The password reaches it only through a private C(0600)
    passfile (C(PGPASSFILE)), never through its command line.
  - Works on O(database) (PostgreSQL) or O(path) (SQLite). It does not use the catalog, so it can run on any
    database; O(files_path) and O(catalog) are ignored.
  - File names, the history table, the environment variables given to O(command) and the rules are described
    in C(docs/structure-update.md) of the collection.
author: Lifeboat maintainers (@lifeboat-maintainers)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
options:
  migrations:
    description:
      - Directory on the node holding the project's migration files, C(V<version>__<description>.sql) with an
        integer version. Files in subdirectories and hidden files are ignored, and so are files that neither
        end in C(.sql) nor start with C(V) and a digit (a C(README.md) may stay). Any other file name, such as
        C(V2_add.sql), C(v2__add.sql) or C(R__views.sql), is refused, and so are two files with one version.
      - Each file is plain SQL for the engine (no C(psql) meta-commands) and must not contain C(BEGIN),
        C(COMMIT) or C(ROLLBACK), nor statements that cannot run in a transaction (C(VACUUM),
        C(CREATE INDEX CONCURRENTLY)).
      - Mutually exclusive with O(command); one of them is required.
    type: path
  command:
    description:
      - The application's own structure updater, as a list of arguments or as a string that is split like a
        shell would split it. It runs without a shell; use C([sh, -c, '...']) for shell syntax.
      - It gets the connection in its environment, C(PGHOST), C(PGPORT), C(PGUSER), C(PGDATABASE),
        C(PGSSLMODE), C(PGPASSFILE), C(PGOPTIONS) (C(-c role=) O(role)) and C(DATABASE_URL) (without password)
        on PostgreSQL; C(LIFEBOAT_SQLITE_PATH) and C(DATABASE_URL) (C(sqlite:////path)) on SQLite; always
        C(LIFEBOAT_ENGINE) and C(LIFEBOAT_DATABASE).
      - The module reports C(changed) whenever the command ran (use C(changed_when) to refine that); a non-zero
        exit status fails the module with the end of the command's error output, the password masked. In check
        mode the command does not run.
    type: raw
  chdir:
    description:
      - Working directory of O(command), for example the directory of the application's C(alembic.ini).
    type: path
  allow_drift:
    description:
      - Go on when the project's migrations and the database's history disagree about the past, with a warning.
        Applied migrations whose file has changed or is gone are not run again and their records stay as they
        are; pending migrations older than the database's version are applied in version order.
    type: bool
    default: false
  allow_newer:
    description:
      - Go on, with a warning, when the database's version is newer than every migration of the project. The
        unknown newer migrations are left as they are.
    type: bool
    default: false
  role:
    description:
      - PostgreSQL role the migrations (and O(command)) run as, so that the objects they create belong to it
        rather than to O(login_user). By default the owner of the database. O(login_user) must be a superuser
        or a member of this role.
      - PostgreSQL only.
    type: str
  history_table:
    description:
      - Table that records the applied migrations. On PostgreSQL optionally with a schema (C(schema.table));
        without one it is in schema C(public).
    type: str
    default: lifeboat_schema_history
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Lists the pending migrations and applies none; with O(command) the command does not run and the
      module reports C(changed=true).
  diff_mode:
    support: full
    details: Shows the database's migration version before and after (not in check mode with O(command)).
notes:
  - Supports C(check_mode) and C(--diff).
  - Run it after M(lifeboat.backup.backup_restore), before the application starts again.
seealso:
  - module: lifeboat.backup.backup_restore
  - module: lifeboat.backup.backup_create
"""

EXAMPLES = r"""
- name: Bring the restored database to the release's structure
  lifeboat.backup.structure_update:
    environment: shop-acceptance
    database: shop
    migrations: /opt/shop/current/db/migrations

- name: Let the application update its own structure
  lifeboat.backup.structure_update:
    environment: shop-acceptance
    database: shop
    command: [/opt/shop/venv/bin/alembic, upgrade, head]
    chdir: /opt/shop/current

- name: A wiki on SQLite, restored from a newer release's backup
  lifeboat.backup.structure_update:
    environment: wiki
    engine: sqlite
    path: /srv/wiki/wiki.db
    migrations: /opt/wiki/migrations
    allow_newer: true
"""

RETURN = r"""
applied:
  description: Versions of the migrations this run applied, in order. With O(command), versions that appeared
    in the history table while the command ran.
  returned: always
  type: list
  elements: int
  sample: [2, 3]
pending:
  description: In check mode, the versions that would be applied; after a real run, an empty list.
  returned: always
  type: list
  elements: int
  sample: [2, 3]
version_before:
  description: Highest migration version recorded in the history table before the run; null without one.
  returned: always
  type: int
  sample: 1
version_after:
  description: Highest migration version recorded after the run (in check mode, after the pending migrations
    would be applied).
  returned: always
  type: int
  sample: 3
project_version:
  description: Highest version among the migration files of O(migrations); null with O(command) or when there
    are no files.
  returned: always
  type: int
  sample: 3
role:
  description: The PostgreSQL role the migrations ran as; null on SQLite.
  returned: always
  type: str
  sample: shop
projects:
  description: What happened to each linked project that has its own O(linked_projects[].migrations) directory.
  returned: always
  type: dict
  sample: {crm: {changed: true, applied: [2, 3], pending: [], version_before: 1, version_after: 3}}
command_result:
  description: What O(command) did; null in check mode and with O(migrations).
  returned: always
  type: dict
  contains:
    rc:
      description: Exit status of the command (always 0, a non-zero status fails the module).
      type: int
    stdout:
      description: The last lines of its standard output, the password masked.
      type: str
    stderr:
      description: The last lines of its error output, the password masked.
      type: str
    duration:
      description: Seconds the command ran.
      type: float
duration:
  description: Seconds the module took.
  returned: always
  type: float
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.environment import REQUIRED_IF
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import UPDATE_CONSTRAINTS, update_options
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module
from ansible_collections.lifeboat.backup.plugins.module_utils.structure_update import update_environment


def main():
    module = environment_module(update_options(), required_if=REQUIRED_IF, **UPDATE_CONSTRAINTS)
    run_module(module, update_environment)


if __name__ == "__main__":
    main()
