#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_download
short_description: Download a backup archive from the node's catalog to the controller
version_added: 0.1.0
description:
  - Copies the archive of one backup of O(environment) from the node's catalog into the directory O(dest)
    on the controller, under its catalog name (C(<backup id><suffix>), for example
    C(20261122T130812Z-a1b2c3.tar.gz)). The archive is copied as it is; an encrypted one stays encrypted.
  - When O(dest) already holds a file of that name with the catalog's SHA-256, nothing is transferred and
    the module reports C(changed=false).
  - The file streams over the connection's own file transfer (sftp or scp over SSH) into a temporary name in
    O(dest). Its SHA-256 is checked against the catalog, and only then is it renamed into place. An
    interrupted or damaged transfer never leaves a partial file under the final name.
  - With C(become) (the catalog belongs to root and the connection user is someone else), the node puts a
    copy owned by the connection user into that user's remote temporary directory. The copy is fetched
    and then removed. The archive never passes through memory, unlike M(ansible.builtin.fetch) with
    C(become), which reads the whole file into memory.
  - The database and connection options are accepted, so that C(module_defaults) for the whole
    C(lifeboat.backup.all) group apply, but a download does not use them.
author: Lifeboat maintainers (@lifeboat-maintainers)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - lifeboat.backup.action_plugin
  - lifeboat.backup.action_plugin.transfer
  - lifeboat.backup.environment
  - lifeboat.backup.connection
  - lifeboat.backup.encryption
options:
  _export_dir:
    description:
      - Internal, set by the action plugin (where the node hands a copy to the connection user). Do not set it.
    type: str
  backup:
    description:
      - The backup to download, by id, by label, or V(latest).
    type: str
    default: latest
  dest:
    description:
      - A directory on the controller. It is created (mode 0700) when missing. A relative path is relative
        to the playbook's directory.
      - The downloaded file gets mode 0600.
    type: path
    required: true
attributes:
  action:
    details: The controller half fetches the file, checks it and renames it into place.
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Says whether the archive would be downloaded; transfers and writes nothing.
  diff_mode:
    support: full
    details: Shows the SHA-256 of the file at the destination before and after.
notes:
  - Supports C(check_mode) and C(--diff).
  - With C(become) to a user other than root, that user must be the connection user or own the catalog.
seealso:
  - module: lifeboat.backup.backup_upload
  - module: lifeboat.backup.backup_restore
"""

EXAMPLES = r"""
- name: Download production's latest backup to the controller
  lifeboat.backup.backup_download:
    environment: shop-production
    backup: latest
    dest: "{{ playbook_dir }}/backups"
  become: true
  register: downloaded

- name: Show where it went
  ansible.builtin.debug:
    msg: "{{ downloaded.dest }} ({{ downloaded.size }} bytes, sha256 {{ downloaded.sha256 }})"
"""

RETURN = r"""
dest:
  description: Path of the downloaded archive on the controller.
  returned: always
  type: str
  sample: /home/me/backups/20261122T130812Z-a1b2c3.tar.gz
size:
  description: Size of the archive in bytes.
  returned: always
  type: int
sha256:
  description: SHA-256 of the archive, as the catalog records it and as checked after the transfer.
  returned: always
  type: str
transferred:
  description: Whether the file was transferred. False when O(dest) already had it and in check mode.
  returned: always
  type: bool
backup:
  description: The backup downloaded.
  returned: always
  type: dict
  contains:
    id:
      description: The backup's id.
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
    size:
      description: Size of the archive in bytes.
      type: int
    sha256:
      description: SHA-256 of the archive file.
      type: str
    created_at:
      description: When the backup was made or registered (UTC, ISO 8601).
      type: str
    databases:
      description: The databases in the archive, each with C(name), C(size) and C(sha256).
      type: list
      elements: dict
    files:
      description: Number (C(count)) and total size (C(size)) of the files in the archive's file store, or null.
      type: dict
    duration:
      description: Seconds the backup took.
      type: float
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_download import download
from ansible_collections.lifeboat.backup.plugins.module_utils.encryption import encryption_argument_spec
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        encryption=encryption_argument_spec(),
        backup=dict(type="str", default="latest"),
        dest=dict(type="path", required=True),
        # Set by the action plugin, not by users.
        _export_dir=dict(type="str"),
    ))
    run_module(module, download)


if __name__ == "__main__":
    main()
