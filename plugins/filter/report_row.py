# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: report_row
short_description: Append one row to the run report's rows
version_added: 0.1.0
author: Lifeboat maintainers (@lifeboat-maintainers)
description:
  - The one place that builds a row of the run report (the host fact C(lifeboat_report_rows)), so every role
    fills every field the same way; see the collection's docs/roles.md.
  - Returns the input list with the new row appended (an undefined or null input counts as an empty list).
options:
  _input:
    description: The rows so far.
    type: list
    elements: dict
    required: true
  host:
    description: The inventory host.
    type: str
    required: true
  environment:
    description: The environment's name.
    type: str
    required: true
  action:
    description: What was done.
    type: str
    choices: [backup, restore, rollback, none]
    required: true
  result:
    description: How it ended.
    type: str
    choices: [ok, changed, failed, rolled_back, skipped]
    required: true
  backup:
    description: The backup as asked for (a label, an id, C(latest), or an archive path).
    type: str
  backup_id:
    description: The catalog id of the backup acted on; empty when none was found.
    type: str
  duration:
    description: Seconds spent on the environment.
    type: float
  size:
    description: Bytes of the backup's archive; 0 when none was found.
    type: int
  message:
    description: What the operator should know.
    type: str
"""

EXAMPLES = r"""
- name: Report the backup
  ansible.builtin.set_fact:
    lifeboat_report_rows: "{{ lifeboat_report_rows | default([]) | lifeboat.backup.report_row(host=inventory_hostname,
      environment='shop', action='backup', result='changed', backup='nightly', backup_id=created.backup.id,
      duration=created.elapsed, size=created.backup.size) }}"
"""

RETURN = r"""
_value:
  description: The rows with the new one, C({host, environment, action, backup, backup_id, result, duration, size,
    message}); C(duration) in seconds (one decimal), C(size) in bytes, every other field a string.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

ACTIONS = ("backup", "restore", "rollback", "none")
RESULTS = ("ok", "changed", "failed", "rolled_back", "skipped")


def _text(value):
    return "" if value is None else str(value)


def report_row(rows, host, environment, action, result, backup=None, backup_id=None, duration=None, size=None,
               message=None):
    if action not in ACTIONS or result not in RESULTS:
        raise AnsibleFilterError("report_row: action must be one of %s and result one of %s, got %r and %r"
                                 % (", ".join(ACTIONS), ", ".join(RESULTS), action, result))
    row = {"host": _text(host), "environment": _text(environment), "action": action, "backup": _text(backup),
           "backup_id": _text(backup_id), "result": result, "duration": round(float(duration or 0), 1),
           "size": int(size or 0), "message": " ".join(_text(message).split())}
    return list(rows or []) + [row]


class FilterModule:
    def filters(self):
        return {"report_row": report_row}
