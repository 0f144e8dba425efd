#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_upload
short_description: Upload an archive from the controller into an environment's catalog, and restore it
version_added: 0.1.0
description:
  - Sends an archive from the controller to the node and registers it as a backup of O(environment) in the
    node's catalog, with C(origin=uploaded). Accepts Lifeboat archives (plain or age-encrypted), Mendix full
    snapshots (C(.tar.gz)) and bare PostgreSQL custom-format dumps (C(pg_dump -Fc)); the kind is recognised
    from the content, not from the name.
  - The SHA-256 of O(src) is computed on the controller first. When the environment's catalog already holds
    an archive with the same checksum, nothing is sent and nothing is registered again.
  - The file streams to the node with the connection's own file transfer (sftp or scp over SSH), never
    through memory. On the node it is checked before it is registered. Its SHA-256 must match the
    controller's. A Lifeboat archive or a Mendix snapshot must read to the end with every checksum of its
    manifest right. An encrypted archive needs at least a valid age header, and is decrypted and checked
    in full when a key is given.
  - A damaged, truncated or unsafe archive is rejected with a message saying why. Nothing is then registered
    or restored and the temporary files are removed.
  - A bare dump must read to its end with the C(pg_restore) chosen for the environment's PostgreSQL server,
    which must then be reachable even without O(restore); it is refused for an environment with O(engine=sqlite).
  - Of a Lifeboat manifest only the keys the format defines are kept, each checked; a manifest that gives one
    of them a value of the wrong type or size is refused.
  - A foreign archive (Mendix snapshot, bare dump) is kept byte for byte. Its catalog entry records what a
    Lifeboat manifest would (engine when known, databases and their sizes and checksums, file store size),
    plus its C(kind) and the name it had on the controller.
  - With O(restore=true) the registered backup is restored right away, exactly as
    M(lifeboat.backup.backup_restore) does it (staging, checks, atomic swap, previous copies). An
    application that still has sessions open makes it refuse unless O(terminate_sessions=true); the upload
    stays registered, so running the task again restores it without sending it again.
author: Lifeboat maintainers (@lifeboat-maintainers)
requirements:
  - C(pg_restore) as for M(lifeboat.backup.backup_restore), to check a bare PostgreSQL dump or with O(restore=true)
  - cryptography >= 38, to check or restore an encrypted archive with a key
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - lifeboat.backup.action_plugin
  - lifeboat.backup.action_plugin.transfer
  - lifeboat.backup.environment
  - lifeboat.backup.connection
  - lifeboat.backup.encryption
  - lifeboat.backup.restore_privilege
options:
  _sha256:
    description:
      - Internal, set by the action plugin (the SHA-256 it computed on the controller). Do not set it.
    type: str
  _size:
    description:
      - Internal, set by the action plugin (the size of O(src)). Do not set it.
    type: int
  _uploaded:
    description:
      - Internal, set by the action plugin (where the file landed on the node). Do not set it.
    type: str
  src:
    description:
      - The archive on the controller. A relative path is looked up like M(ansible.builtin.copy)'s C(src)
        (the role's or playbook's C(files/) directory first).
    type: str
    required: true
  label:
    description:
      - A name for the new backup. Refused when another backup of the environment already has this label.
    type: str
  comment:
    description:
      - Free text stored with the backup.
    type: str
  restore:
    description:
      - Restore the backup into the environment once it is registered (O(database) or O(path) is then
        required). Without it, only the catalog changes; the database options are then used only to read a
        bare dump through.
    type: bool
    default: false
  keep_previous:
    description:
      - With O(restore=true), how many previous copies of the environment's data to keep.
    type: int
    default: 1
  terminate_sessions:
    description:
      - With O(restore=true), end the sessions still connected to the database instead of refusing.
    type: bool
    default: false
  force:
    description:
      - With O(restore=true), restore even when the environment already runs on this backup.
    type: bool
    default: false
attributes:
  action:
    details: The controller half computes the checksum and sends the file; the module runs on the node.
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Says whether the archive would be sent, registered and restored; sends and writes nothing.
  diff_mode:
    support: full
    details: Shows the catalog entry added and, with O(restore=true), the backup the environment runs on.
notes:
  - Supports C(check_mode) and C(--diff).
  - With C(become), the file is sent as the connection user into its remote temporary directory and taken
    into the catalog by the become user.
  - An archive uploaded without its key can only be checked that far, see RV(verification).
seealso:
  - module: lifeboat.backup.backup_download
  - module: lifeboat.backup.backup_restore
"""

EXAMPLES = r"""
- name: Bring a Mendix Cloud snapshot into acceptance and restore it
  lifeboat.backup.backup_upload:
    src: downloads/shop-production-20261122.tar.gz
    environment: shop-acceptance
    database: shop
    files_path: /srv/shop/files
    label: prod-snapshot-2026-11-22
    restore: true
    terminate_sessions: true
  become: true

- name: Copy production's latest backup to acceptance (download, then upload)
  block:
    - name: Download from production
      lifeboat.backup.backup_download:
        environment: shop-production
        backup: latest
        dest: /var/tmp/lifeboat
      delegate_to: prod-db-1
      register: prod_backup

    - name: Upload to acceptance
      lifeboat.backup.backup_upload:
        src: "{{ prod_backup.dest }}"
        environment: shop-acceptance
        comment: copy of production {{ prod_backup.backup.id }}
      delegate_to: acc-db-1
  become: true

- name: Import a colleague's pg_dump into the catalog only
  lifeboat.backup.backup_upload:
    src: /home/me/export.backup
    environment: shop-test
"""

RETURN = r"""
backup:
  description: The registered backup (the existing one when the archive was already in the catalog).
  returned: always
  type: dict
  contains:
    id:
      description: The backup's id. Null in check mode when the archive would be new.
      type: str
      sample: 20261122T130812Z-a1b2c3
    label:
      description: Its label, if any.
      type: str
    comment:
      description: Its comment, if any.
      type: str
    path:
      description: Path of the archive on the node.
      type: str
      sample: /var/lib/lifeboat/backups/shop-acceptance/20261122T130812Z-a1b2c3.tar.gz
    size:
      description: Size of the archive in bytes.
      type: int
    sha256:
      description: SHA-256 of the archive file.
      type: str
    created_at:
      description: When it was registered (UTC, ISO 8601).
      type: str
    databases:
      description: The databases in the archive, as far as known (an encrypted archive uploaded without its
        key lists none).
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
      description: Number (C(count)) and total size (C(size)) of the files in the archive's file store, or null.
      type: dict
    duration:
      description: Seconds that taking in and checking the archive took.
      type: float
kind:
  description:
    - What the archive is, from its content. V(lifeboat), V(mendix) (a snapshot without manifest),
      V(pgdump) (a bare custom-format dump), or null for an encrypted archive uploaded without its key.
  returned: always
  type: str
  sample: mendix
verification:
  description:
    - How far the archive was checked before it was registered, beyond its SHA-256.
    - V(checksums), every member matched the manifest, or an encrypted dump authenticated in full.
    - V(structure), read completely without checksums to compare, a Mendix snapshot (tar and gzip intact), or
      a bare dump that the environment's C(pg_restore) read to its end.
    - V(header), only the header could be checked (an encrypted archive uploaded without its key).
    - Null when nothing new was registered.
  returned: always
  type: str
  sample: checksums
transferred:
  description: Whether the file was sent to the node. False when the catalog already had it and in check mode.
  returned: always
  type: bool
restored:
  description: The backup the environment runs on now (see M(lifeboat.backup.backup_restore)).
  returned: when O(restore=true)
  type: dict
  contains:
    id:
      description: Catalog id of the backup.
      type: str
    label:
      description: Its label, if any.
      type: str
    src:
      description: Always null here.
      type: str
previous:
  description: The copies of the replaced data that the restore kept.
  returned: when O(restore=true)
  type: dict
  contains:
    databases:
      description: Names (PostgreSQL) or paths (SQLite) of the kept previous databases.
      type: list
      elements: str
    files:
      description: Path of the kept previous file store, or null.
      type: str
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_upload import upload
from ansible_collections.lifeboat.backup.plugins.module_utils.encryption import encryption_argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        encryption=encryption_argument_spec(),
        src=dict(type="str", required=True),
        label=dict(type="str"),
        comment=dict(type="str"),
        restore=dict(type="bool", default=False),
        keep_previous=dict(type="int", default=1),
        terminate_sessions=dict(type="bool", default=False),
        force=dict(type="bool", default=False),
        # Set by the action plugin, not by users.
        _sha256=dict(type="str"),
        _size=dict(type="int"),
        _uploaded=dict(type="str"),
    ), restore_privilege=True, non_negative=["keep_previous"],
        # The database is only needed to restore; which one the engine needs is checked when it is opened.
        required_if=[("restore", True, ("database", "path"), True)])
    run_module(module, upload)


if __name__ == "__main__":
    main()
