# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
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
  catalog:
    description:
      - The catalog directory on the node, with one subdirectory per environment holding its archives.
    type: path
    default: /var/lib/lifeboat/backups
"""
