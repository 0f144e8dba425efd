#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups in a node's catalog and prove that they can be restored
version_added: 0.1.0
description:
  - Lists the backups of one environment, or of every environment in the catalog, newest first, with the
    previous copies that restores kept and the backup each environment runs on.
  - Listing reads the catalog's entry files only. It needs no key, takes no lock and changes nothing.
  - O(verify=checksum) reads every archive again and reports those whose file is missing or whose SHA-256
    no longer matches the catalog.
  - O(verify=restore) does the same and then restores one backup (O(backup)) into a scratch copy beside the
    environment's database, C(<database>__lb_verify) on PostgreSQL or C(<path>.lb_verify) for SQLite, checks
    it and removes it again. This proves that the backup can really be restored. The file store's checksums
    are checked, it is not extracted. While it runs the environment is locked, so no restore or prune runs
    at the same time. If another run holds the lock, the module fails and names it.
  - A damaged backup is reported in RV(damaged); it does not fail the module. Failing is up to the play
    (see the examples).
author: Lifeboat maintainers (@lifeboat-maintainers)
requirements:
  - C(pg_restore) as for M(lifeboat.backup.backup_restore), for O(verify=restore) on PostgreSQL
  - cryptography >= 38, to verify an encrypted archive
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
  - lifeboat.backup.encryption
  - lifeboat.backup.restore_privilege
options:
  environment:
    description:
      - Name of the environment whose backups are listed.
      - Without it, every environment in the catalog.
      - Required with O(verify=restore).
    type: str
    required: false
  verify:
    description:
      - C(none) only lists.
      - C(checksum) also checks every listed archive against the SHA-256 in its catalog entry.
      - C(restore) also restores O(backup) into a scratch copy, checks it and removes it. It needs the
        environment's options (O(engine), O(database) or O(path), the connection options) and, for an
        encrypted backup, the key in O(encryption). In check mode only the checksums are checked.
    type: str
    default: none
    choices: [none, checksum, restore]
  backup:
    description:
      - The backup that O(verify=restore) restores, by id, by label, or C(latest).
    type: str
    default: latest
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Lists and checks checksums as usual; O(verify=restore) restores nothing in check mode.
  diff_mode:
    support: none
notes:
  - Supports C(check_mode).
  - O(engine), O(database), O(path), O(files_path) and the connection options are used only by
    O(verify=restore).
seealso:
  - module: lifeboat.backup.backup_create
  - module: lifeboat.backup.backup_restore
  - module: lifeboat.backup.backup_prune
"""

EXAMPLES = r"""
- name: List every backup on the node
  lifeboat.backup.backup_info:
  register: catalog

- name: Show the ids of the backups, newest first
  ansible.builtin.debug:
    msg: "{{ catalog.backups | map(attribute='id') }}"

- name: Prove that last night's backup of production can be restored
  lifeboat.backup.backup_info:
    environment: shop-production
    database: shop
    login_host: db.example.com
    login_user: lifeboat
    login_password: "{{ vault_lifeboat_password }}"
    encryption:
      identity_file: /etc/lifeboat/backup.key
    verify: restore
    backup: latest
  register: proof

- name: Fail when any backup is damaged
  ansible.builtin.assert:
    that: proof.damaged | length == 0
    fail_msg: "damaged backups: {{ proof.damaged }}"
"""

RETURN = r"""
environments:
  description: The environments listed.
  returned: always
  type: list
  elements: str
  sample: [shop-acceptance, shop-production]
backups:
  description: The backups, newest first.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: The backup's id, C(YYYYmmddTHHMMSSZ-xxxxxx).
      type: str
      sample: 20261122T130812Z-a1b2c3
    environment:
      description: The environment it belongs to.
      type: str
    label:
      description: Its label, if any.
      type: str
    comment:
      description: Its comment, if any.
      type: str
    created_at:
      description: When the backup was made (UTC, ISO 8601).
      type: str
      sample: "2026-11-22T13:08:12Z"
    path:
      description: Path of the archive on the node.
      type: str
    size:
      description: Size of the archive in bytes.
      type: int
    sha256:
      description: SHA-256 of the archive file, as recorded in the catalog.
      type: str
    encryption:
      description: How the archive is encrypted (C(none), C(passphrase), C(database_password), C(recipients)).
      type: str
    compression:
      description: C(none) or C(gzip).
      type: str
    engine:
      description: The database engine it was made from.
      type: str
    origin:
      description: C(created) by backup_create on this node, or C(uploaded) from elsewhere.
      type: str
    databases:
      description: The databases in the archive, each with C(name), C(database), C(size) and C(sha256).
      type: list
      elements: dict
    files:
      description: The file store in the archive (C(count), C(size)), or null.
      type: dict
    duration:
      description: Seconds the backup took.
      type: float
current:
  description:
    - For each listed environment, the backup it runs on since its last restore (C(id), C(label), C(src),
      C(sha256), C(restored_at)), or null when it was never restored.
  returned: always
  type: dict
  sample: {shop-acceptance: {id: 20261122T130812Z-a1b2c3, label: null, src: null, sha256: "9f...",
           restored_at: "2026-11-22T14:00:00Z"}}
previous:
  description: The previous copies that restores kept, newest first within each environment.
  returned: always
  type: list
  elements: dict
  contains:
    environment:
      description: The environment.
      type: str
    stamp:
      description: When the copy was set aside, C(YYYYmmddHHMMSS) (UTC).
      type: str
    backup:
      description: Id of the backup that data had been restored from, or null.
      type: str
    databases:
      description: Names (PostgreSQL) or paths (SQLite) of the kept databases.
      type: list
      elements: str
    files:
      description: Path of the kept file store, or null.
      type: str
damaged:
  description: The backups that failed verification.
  returned: when O(verify) is not C(none)
  type: list
  elements: dict
  contains:
    environment:
      description: The environment.
      type: str
    id:
      description: The backup's id.
      type: str
    reason:
      description: What is wrong (missing archive, SHA-256 mismatch, the restore's error).
      type: str
verified:
  description: What was verified.
  returned: when O(verify) is not C(none)
  type: dict
  contains:
    checksum:
      description: Ids of the backups whose checksums were checked.
      type: list
      elements: str
    restore:
      description:
        - The backup restored into a scratch copy and found sound (C(id), C(scratch), the scratch copy's name,
          and C(duration) in seconds).
        - Null when nothing was restored (check mode, O(verify=checksum), or the backup is damaged).
      type: dict
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_info import VERIFY_CHOICES, info
from ansible_collections.lifeboat.backup.plugins.module_utils.encryption import encryption_argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        encryption=encryption_argument_spec(),
        environment=dict(type="str"),
        verify=dict(type="str", default="none", choices=VERIFY_CHOICES),
        backup=dict(type="str", default="latest"),
    ), restore_privilege=True, required_if=[("verify", "restore", ("environment",))])
    run_module(module, info)


if __name__ == "__main__":
    main()
