#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_prune
short_description: Remove old backups from a node's catalog by retention rules, and old previous copies
version_added: 0.1.0
description:
  - Applies retention rules to an environment's backups in the catalog and removes every backup that no rule
    keeps. A backup is kept if any rule keeps it.
  - Without any rule (neither a C(keep_*) option nor O(preset)) every backup is kept and nothing changes, so
    a forgotten option never deletes anything.
  - Always kept, whatever the rules say, are the newest backup; the newest intact backup (the newest ones
    are checked against their SHA-256 until an intact one is found, so a damaged newest backup cannot
    take the last good one with it); and the backup the environment runs on since its last restore
    (C(current) in the catalog's state, matched by id, or by SHA-256 when it was restored from a file).
  - Periods are UTC and taken from each backup's creation time. Bucket rules count only periods that have
    backups, and each rule counts on its own. A backup that one rule keeps still fills a period of
    another rule.
  - With O(keep_previous_copies) it also removes the previous copies that restores kept (databases and
    file stores), oldest first. This needs the environment's options (O(engine), O(database) or O(path),
    the connection options).
  - The environment is locked while pruning, so no restore reads a backup that is being removed. If another
    run holds the lock, the module fails and names it.
author: Lifeboat maintainers (@lifeboat-maintainers)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - lifeboat.backup.environment
  - lifeboat.backup.connection
options:
  keep_last:
    description:
      - Keep the N newest backups. C(0) is allowed; the newest backup is kept anyway.
    type: int
  keep_hourly:
    description:
      - For each of the N most recent hours that have backups, keep the newest backup of that hour.
    type: int
  keep_daily:
    description:
      - For each of the N most recent days that have backups, keep the newest backup of that day.
    type: int
  keep_weekly:
    description:
      - For each of the N most recent ISO weeks (Monday to Sunday, week 53 included) that have backups,
        keep the newest backup of that week.
    type: int
  keep_monthly:
    description:
      - For each of the N most recent calendar months that have backups, keep the newest backup of that month.
    type: int
  keep_yearly:
    description:
      - For each of the N most recent years that have backups, keep the newest backup of that year.
    type: int
  keep_within:
    description:
      - Keep every backup made within this time before now, for example C(36h), C(30d), C(2w), C(6m), C(1y)
        or combined C(1y6m).
      - Units are C(h) hours, C(d) days, C(w) weeks, C(m) calendar months and C(y) calendar years. Months and
        years count back on the calendar (C(1m) on 31 March reaches back to 28 or 29 February, same time of
        day); hours, days and weeks are fixed lengths.
    type: str
  prune_labelled:
    description:
      - Labelled backups are kept unless this is C(true); then they follow the rules like any other.
    type: bool
    default: false
  automatic_labels:
    description:
      - Shell-style patterns (C(*), C(?), C([0-9])) of the labels that a tool gives every backup by itself, such
        as the role lifeboat.backup.backup's C(<environment>-<UTC date>). A labelled backup is kept because an
        operator named it on purpose; a backup whose label matches one of these follows the rules like any other.
      - The role lifeboat.backup.backup passes the pattern of its own labels.
    type: list
    elements: str
    default: []
  preset:
    description:
      - A ready schedule. C(mendix) is the one Mendix Cloud applies, O(keep_daily=14), O(keep_weekly=13) and
        O(keep_monthly=12).
      - Combines with the other rules; an option given explicitly replaces the preset's value.
    type: str
    choices: [mendix]
  keep_previous_copies:
    description:
      - Keep only the N most recent previous copies that restores kept; drop the older ones (databases are
        dropped, file stores removed). C(0) drops all of them, after which a restore can no longer be rolled
        back.
      - Without this option previous copies are left alone.
    type: int
attributes:
  platform:
    platforms: posix
    support: full
  check_mode:
    details: Reports what would be removed and removes nothing.
  diff_mode:
    support: full
    details: Shows the backups and previous copies before and after.
notes:
  - Supports C(check_mode) and C(--diff).
  - O(engine), O(database), O(path), O(files_path) and the connection options are used only by
    O(keep_previous_copies); pruning backups needs O(environment) and O(catalog) alone.
seealso:
  - module: lifeboat.backup.backup_info
  - module: lifeboat.backup.backup_create
"""

EXAMPLES = r"""
- name: Keep what Mendix Cloud would keep, and the last three backups
  lifeboat.backup.backup_prune:
    environment: shop-production
    preset: mendix
    keep_last: 3

- name: Keep a week of nightly backups, and only one copy of data replaced by restores
  lifeboat.backup.backup_prune:
    environment: shop-acceptance
    database: shop
    keep_daily: 7
    keep_previous_copies: 1

- name: Keep everything of the last 30 days and one backup per month for a year, labelled ones too
  lifeboat.backup.backup_prune:
    environment: wiki
    keep_within: 30d
    keep_monthly: 12
    prune_labelled: true
"""

RETURN = r"""
kept:
  description: Ids of the backups kept, newest first.
  returned: always
  type: list
  elements: str
  sample: [20261122T130812Z-a1b2c3, 20261121T020000Z-0d9e8f]
removed:
  description: Ids of the backups removed (in check mode, that would be removed), newest first.
  returned: always
  type: list
  elements: str
reasons:
  description:
    - For each kept backup, why it is kept (C(newest), C(newest intact), C(current), C(last 2),
      C(daily 2026-11-21), C(weekly 2026-W47), C(monthly 2026-11), C(within 30d), C(labelled <label>),
      C(no retention rule), ...).
  returned: always
  type: dict
  sample: {20261122T130812Z-a1b2c3: [newest, daily 2026-11-22]}
removed_previous:
  description: Names (PostgreSQL) or paths (SQLite, file stores) of the previous copies removed (in check
    mode, that would be removed).
  returned: always
  type: list
  elements: str
  sample: [shop__lb_prev_20261101020000, /srv/shop/files.lb_prev_20261101020000]
damaged:
  description: The newest backups whose archive failed its checksum while the newest intact one was sought
    (C(id), C(reason)); they are reported as warnings too.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.lifeboat.backup.plugins.module_utils.backup_prune import PRESETS, prune
from ansible_collections.lifeboat.backup.plugins.module_utils.runner import environment_module, run_module


def main():
    module = environment_module(dict(
        keep_last=dict(type="int"),
        keep_hourly=dict(type="int"),
        keep_daily=dict(type="int"),
        keep_weekly=dict(type="int"),
        keep_monthly=dict(type="int"),
        keep_yearly=dict(type="int"),
        keep_within=dict(type="str"),
        prune_labelled=dict(type="bool", default=False),
        automatic_labels=dict(type="list", elements="str", default=[]),
        preset=dict(type="str", choices=sorted(PRESETS)),
        keep_previous_copies=dict(type="int"),
    ))
    run_module(module, prune)


if __name__ == "__main__":
    main()
