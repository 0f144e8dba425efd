#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_create
short_description: Back up an environment's database and file store into the node's catalog
version_added: 0.1.0
description:
  - Snapshots an environment, its database and its file store, into one archive in the node's catalog.
  - The archive is laid out like a Mendix full snapshot (C(.metadata), C(db/db.backup) made by
    C(pg_dump -Fc -O -x), C(tree/)) plus a manifest with SHA-256 checksums (C(lifeboat.json)).
  - The archive is written under a temporary name, flushed to disk and renamed, so an interrupted backup
    never leaves a half archive in the catalog.
  - While the backup runs, the environment is locked against restores.
author: Lifeboat maintainers (@lifeboat-maintainers)
requirements:
  - C(pg_dump) of the server's major version or newer, when O(engine=postgresql)
  - cryptography >= 38, when O(encryption) is set
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
  - lifeboat.backup.encryption
options:
  label:
    description:
      - A name for the backup. If the environment already has a backup with this label, nothing is done
        and the module reports C(changed=false). Without a label every run creates a backup.
    type: str
  comment:
    description:
      - Free text stored with the backup.
    type: str
  compression:
    description:
      - C(gzip) writes a C(.tar.gz), the form Mendix tools expect. The database dump inside is already
        compressed, so the default is a plain C(.tar).
    type: str
    default: none
    choices: [none, gzip]
  layout:
    description:
      - V(archive) puts everything into one archive in the catalog.
      - V(per_project) writes one complete archive per database instead of a catalog entry, for tools that
        exchange one file per project. The main database (and the file store) goes to O(dest), each linked
        project to the same name with C(.<name>) before the extension (C(backup.bck), C(backup.crm.bck)).
    type: str
    default: archive
    choices: [archive, per_project]
  dest:
    description:
      - The main file of O(layout=per_project). Files already there are replaced atomically.
    type: path
  model_version:
    description:
      - The application's model version, recorded as C(modelVersion) in C(.metadata).
    type: str
  _tool_version:
    description:
      - Internal, set by the action plugin (the collection's version, for the archive's manifest). Do not set it.
    type: str
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Reports the backup it would create and writes nothing.
  diff_mode:
    support: none
notes:
  - Supports C(check_mode).
seealso:
  - module: lifeboat.backup.backup_restore
"""

EXAMPLES = r"""
- name: Back up the shop's production environment once a day
  lifeboat.backup.backup_create:
    environment: shop-production
    database: shop
    files_path: /srv/shop/files
    login_host: db.example.com
    login_user: lifeboat
    login_password: "{{ vault_lifeboat_password }}"
    label: "shop-production-{{ now(utc=true, fmt='%Y-%m-%d') }}"

- name: Back up an embedded SQLite environment as a Mendix-style .tar.gz
  lifeboat.backup.backup_create:
    environment: wiki
    engine: sqlite
    path: /srv/wiki/wiki.db
    files_path: /srv/wiki/uploads
    compression: gzip
  register: wiki_backup
"""

RETURN = r"""
backup:
  description: The backup created, or the existing one with the same label.
  returned: always
  type: dict
  contains:
    id:
      description: The backup's id, C(YYYYmmddTHHMMSSZ-xxxxxx). Null in check mode.
      type: str
      sample: 20261122T130812Z-a1b2c3
    label:
      description: The label given, if any.
      type: str
    comment:
      description: The comment given, if any.
      type: str
    path:
      description: Path of the archive on the node.
      type: str
      sample: /var/lib/lifeboat/backups/shop-production/20261122T130812Z-a1b2c3.tar
    size:
      description: Size of the archive in bytes.
      type: int
    sha256:
      description: SHA-256 of the archive file.
      type: str
    created_at:
      description: When the backup was started (UTC, ISO 8601).
      type: str
    databases:
      description: The databases in the archive.
      type: list
      elements: dict
      contains:
        name:
          description: Name in the archive (C(db) for the main database).
          type: str
        size:
          description: Size of the dump in bytes.
          type: int
        sha256:
          description: SHA-256 of the dump.
          type: str
    files:
      description: The file store in the archive (null without O(files_path)).
      type: dict
      contains:
        count:
          description: Number of files.
          type: int
        size:
          description: Their total size in bytes.
          type: int
    encryption:
      description: How the archive is encrypted (never a key or passphrase).
      type: dict
      contains:
        mode:
          description: The encryption mode.
          type: str
          sample: recipients
        recipients:
          description: The age public keys it is encrypted to (mode C(recipients)).
          type: list
          elements: str
    projects:
      description: With O(layout=per_project), the file written for each database.
      type: list
      elements: dict
      sample: [{name: db, path: /srv/exchange/backup.bck, size: 20480, sha256: 9f2c...}]
    duration:
      description: Seconds the backup took.
      type: float
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_create import create
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import REQUIRED_IF
from ansible_collections.lifeboat.backup.plugins.module_utils.encryption import encryption_argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        encryption=encryption_argument_spec(),
        label=dict(type="str"),
        comment=dict(type="str"),
        compression=dict(type="str", default="none", choices=["none", "gzip"]),
        model_version=dict(type="str"),
        layout=dict(type="str", default="archive", choices=["archive", "per_project"]),
        dest=dict(type="path"),
        # Set by the action plugin, not by users.
        _tool_version=dict(type="str"),
    ), required_if=REQUIRED_IF + [("layout", "per_project", ("dest",))])
    run_module(module, create)


if __name__ == "__main__":
    main()
