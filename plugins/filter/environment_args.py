# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: environment_args
short_description: The module options of an environment from the inventory model
version_added: 0.1.0
author: Lifeboat maintainers (@lifeboat-maintainers)
description:
  - Turns one entry of C(lifeboat_environments) (see the collection's docs/inventory.md) into the options every
    Lifeboat module takes.
  - To run a module on an entry, use M(lifeboat.backup.environment_call), which expands the entry with this
    filter; passing the filter's result as a task's whole arguments makes ansible-core 2.19 and later warn
    that a templated dictionary of task arguments is unsafe.
  - The entry's C(connection) options are flattened; C(app), C(health), C(retention), C(protected),
    C(structure_update) and C(restore_privilege) are left out (they are not module options of every module).
options:
  _input:
    description: An entry of C(lifeboat_environments).
    type: dict
    required: true
  catalog:
    description: The catalog to use when the entry names none.
    type: str
"""

EXAMPLES = r"""
- name: Show the options a module gets for each environment
  ansible.builtin.debug:
    msg: "{{ item | lifeboat.backup.environment_args }}"
  loop: "{{ lifeboat_environments }}"
"""

RETURN = r"""
_value:
  description: Module options (environment, engine, database or path, files_path, catalog, linked_projects,
    encryption and the connection options that the entry sets).
  type: dict
"""

from ansible.errors import AnsibleFilterError

# Entry keys that are module options as they are; "name" becomes "environment".
_PASSED = ("engine", "database", "path", "files_path", "catalog", "linked_projects", "encryption")


def environment_args(entry, catalog=None):
    if not isinstance(entry, dict) or not entry.get("name"):
        raise AnsibleFilterError("environment_args needs an entry of lifeboat_environments with a name, got %r"
                                 % (entry,))
    args = {"environment": entry["name"]}
    args.update({key: entry[key] for key in _PASSED if entry.get(key) is not None})
    if "catalog" not in args and catalog:
        args["catalog"] = catalog
    args.update(entry.get("connection") or {})
    return args


class FilterModule:
    def filters(self):
        return {"environment_args": environment_args}
