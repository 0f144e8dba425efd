# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # runner.environment_module, which builds every module that extends this fragment, gives them check mode.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
options:
  environment:
    description:
      - Name of the environment (for example C(shop-production)). Its backups live in their own directory
        of the catalog.
      - Letters, digits, C(_), C(.) and C(-); at most 63 characters.
    type: str
    required: true
  engine:
    description:
      - The environment's database engine.
      - C(sqlite) needs nothing but Python's standard library.
    type: str
    default: postgresql
    choices: [postgresql, sqlite]
  database:
    description:
      - The environment's PostgreSQL database. Required with O(engine=postgresql).
    type: str
  path:
    description:
      - Absolute path of the environment's SQLite database file. Required with O(engine=sqlite).
    type: path
  files_path:
    description:
      - The environment's file store, a directory. Backed up as C(tree/) in the archive and swapped in as a
        whole on restore.
    type: path
  linked_projects:
    description:
      - The environment's linked projects, each with a database of its own. They share the environment's
        connection options unless an entry overrides them, but must live on the same PostgreSQL server (all of an
        environment's databases are swapped in one transaction); another server is refused.
      - Backed up as C(db/<name>.backup) beside C(db/db.backup). On restore, a linked project whose dump is
        missing gets a new, empty database, with a warning.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The project's name, used in the archive (C(db/<name>.backup)) and in per-project file names.
        type: str
        required: true
      database:
        description: Its PostgreSQL database.
        type: str
      path:
        description: Its SQLite file.
        type: path
      migrations:
        description:
          - Its own migrations directory, used when M(lifeboat.backup.backup_restore) is given
            O(lifeboat.backup.backup_restore#module:structure_update). Without it the project is not updated.
        type: path
      login_host:
        description: Overrides O(login_host) (the server must stay the same).
        type: str
      login_port:
        description: Overrides O(login_port) (the server must stay the same).
        type: int
      login_user:
        description: Overrides O(login_user) for dumping, restoring and updating this project.
        type: str
      login_password:
        description: Overrides O(login_password).
        type: str
      login_unix_socket:
        description: Overrides O(login_unix_socket) (the server must stay the same).
        type: str
      login_db:
        description: Overrides O(login_db).
        type: str
      ssl_mode:
        description: Overrides O(ssl_mode).
        type: str
        choices: [allow, disable, prefer, require, verify-ca, verify-full]
      ca_cert:
        description: Overrides O(ca_cert).
        type: path
      pg_bin_dir:
        description: Overrides O(pg_bin_dir).
        type: path
  catalog:
    description:
      - The catalog directory on the node, with one subdirectory per environment holding its archives.
    type: path
    default: /var/lib/lifeboat/backups
"""
