#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: environment_call
short_description: Run a Lifeboat module on an entry of lifeboat_environments
version_added: 0.1.0
description:
  - Turns one entry of C(lifeboat_environments) (the inventory model, see the collection's docs/inventory.md)
    into the options of the module named in O(module), adds O(options), and runs that module.
  - The entry's C(name) becomes C(environment); C(engine), C(database), C(path), C(files_path), C(catalog),
    C(linked_projects) and C(encryption) pass as they are and the C(connection) options are flattened. C(app),
    C(health), C(retention), C(protected), C(structure_update) and C(restore_privilege) are not module options;
    pass what a call needs of them in O(options).
  - An entry without C(catalog) gets the host variable C(lifeboat_catalog) when it is set, else the modules'
    default.
  - C(module_defaults) for the module (or for C(group/lifeboat.backup.all)) fill the options that neither the
    entry nor O(options) give. M(lifeboat.backup.environment_call) itself is not in that group, as it takes no
    module options of its own.
  - The task's arguments stay a plain dictionary, so ansible-core does not warn about a templated dictionary
    of task arguments, and the modules' C(no_log) options are masked as in a direct call.
author: Lifeboat maintainers (@lifeboat-maintainers)
options:
  entry:
    description: An entry of C(lifeboat_environments).
    type: dict
    required: true
  module:
    description: The module to run, by its short name.
    type: str
    required: true
    choices: [backup_create, backup_download, backup_info, backup_prune, backup_restore, backup_upload,
              environment_info, structure_update]
  options:
    description: The module's own options; they win over what the entry gives.
    type: dict
    default: {}
requirements:
  - Those of the module named in O(module) (psycopg, C(pg_dump) or C(pg_restore), cryptography); nothing of its
    own.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - lifeboat.backup.action_plugin
attributes:
  check_mode:
    support: full
    details: As the module that runs.
  diff_mode:
    support: full
    details: As the module that runs.
  platform:
    platforms: posix
    support: full
seealso:
  - module: lifeboat.backup.backup_create
  - module: lifeboat.backup.backup_restore
"""

EXAMPLES = r"""
- name: Back up every environment of the host
  lifeboat.backup.environment_call:
    entry: "{{ item }}"
    module: backup_create
    options:
      label: nightly
  loop: "{{ lifeboat_environments }}"
  loop_control:
    label: "{{ item.name }}"

- name: Restore one environment to a labelled backup
  lifeboat.backup.environment_call:
    entry: "{{ lifeboat_environments | selectattr('name', '==', 'shop') | first }}"
    module: backup_restore
    options:
      backup: prod-2026-11-22
      terminate_sessions: true
"""

RETURN = r"""
# Everything the module in O(module) returns, and:
elapsed:
  description: Seconds the call took as the controller saw it, transfers included.
  returned: always
  type: float
  sample: 0.42
"""
