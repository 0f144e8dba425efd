#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: environment_info
short_description: Tell who uses an environment now, whether it is locked, and how much disk a restore needs
version_added: 0.1.0
description:
  - Reports, for one environment, the sessions that other programs hold on its databases, the run that holds
    the environment's lock in the catalog, the backup the environment runs on, the free space on the file
    systems a restore writes to, and roughly how much space a restore needs.
  - Roles poll it to learn when a stopped app has let go of its databases (RV(sessions)), and to wait while a
    backup is being written (RV(lock)).
  - It changes nothing, takes no lock and needs no key.
author: Lifeboat maintainers (@lifeboat-maintainers)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Reads the same as without check mode.
  diff_mode:
    support: none
notes:
  - Supports C(check_mode).
  - SQLite has no sessions to count; a database file counts as one session while another process holds a
    lock on it.
seealso:
  - module: lifeboat.backup.backup_info
  - module: lifeboat.backup.backup_restore
"""

EXAMPLES = r"""
- name: Wait until the stopped app has closed its sessions
  lifeboat.backup.environment_info:
    environment: shop-production
    database: shop
    login_user: lifeboat
    login_password: "{{ vault_lifeboat_password }}"
  register: shop
  until: shop.sessions.values() | sum == 0
  retries: 30
  delay: 2

- name: Refuse a restore that does not fit
  ansible.builtin.assert:
    that: shop.free_space.values() | min > shop.needed_space
    fail_msg: "a restore needs about {{ shop.needed_space }} bytes; free: {{ shop.free_space }}"
"""

RETURN = r"""
environment:
  description: The environment's name.
  returned: always
  type: str
  sample: shop-production
sessions:
  description:
    - Each database of the environment (PostgreSQL name, or SQLite path) and the number of sessions on it other
      than this module's own.
    - For SQLite, 1 while another process holds a lock on the file, else 0.
  returned: always
  type: dict
  sample: {shop: 3, shop_crm: 0}
lock:
  description:
    - The run that holds the environment's lock in the catalog now (C(operation), such as C(backup) or
      C(restore), C(pid), C(host), C(started_at)), or null when nobody holds it or the catalog has no
      directory for the environment.
  returned: always
  type: dict
  sample: {operation: backup, pid: 4242, host: shop1, started_at: "2026-11-22T13:08:12Z"}
current:
  description:
    - The backup the environment runs on since its last restore (C(id), C(label), C(src), C(sha256),
      C(restored_at)), or null when it was never restored.
  returned: always
  type: dict
free_space:
  description:
    - Bytes free (for this user) on the file systems of the catalog, of the file store's parent directory, of
      the SQLite files' directories and, when the server is on this node and its setting is readable, of the
      PostgreSQL data directory. Keys are those paths.
  returned: always
  type: dict
  sample: {/var/lib/lifeboat/backups: 52428800000, /srv/shop: 52428800000}
needed_space:
  description: Rough bytes a restore needs, the size of the current databases plus the file store.
  returned: always
  type: int
  sample: 734003200
has_data:
  description:
    - Whether any database of the environment exists or its file store holds anything. False on a
      replacement node that has no data yet, where a restore has nothing to save first and nothing to roll
      back to.
  returned: always
  type: bool
  sample: true
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.environment import REQUIRED_IF
from ansible_collections.lifeboat.backup.plugins.module_utils.environment_info import environment_info
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    run_module(environment_module({}, required_if=REQUIRED_IF), environment_info)


if __name__ == "__main__":
    main()
