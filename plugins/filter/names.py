# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: names
short_description: A list of names as an operator types it
version_added: 0.1.0
author: Lifeboat maintainers (@lifeboat-maintainers)
description:
  - Turns a list of names given as a list, or as one comma-separated string (C(-e backup_environments=shop,wiki)
    on the command line, an AWX survey answer), into a list of names without surrounding blanks or empty items.
  - The roles read their list variables through it, so that a string is never taken for a list of its characters.
options:
  _input:
    description: A list of names, a comma-separated string of names, or null.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Show the environments asked for
  ansible.builtin.debug:
    msg: "{{ backup_environments | lifeboat.backup.names }}"
"""

RETURN = r"""
_value:
  description: The names, in the order given.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError


def names(value):
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise AnsibleFilterError("expected a list of names or a comma-separated string of names, got %r" % (value,))
    return [item.strip() for item in value if item.strip()]


class FilterModule:
    def filters(self):
        return {"names": names}
