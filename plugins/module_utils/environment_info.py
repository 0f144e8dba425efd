# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an environment looks like right now: sessions, lock holder, current backup and disk space.

Read-only: roles poll it to learn when an app has let go of its databases, whether a backup is being
written, and whether a restore fits on the disks.
"""

from __future__ import annotations

import os

from ansible_collections.lifeboat.backup.plugins.module_utils.common import nearest_existing, tree_size
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import Environment


def environment_info(params, check_mode=False):
    """The module's result; ``check_mode`` changes nothing because nothing is written anyway."""
    environment = Environment(params)
    try:
        return {
            "changed": False,
            "environment": environment.name,
            "sessions": sessions(environment),
            "lock": environment.catalog.lock_holder(environment.name),
            "current": environment.state().get("current"),
            "free_space": free_space(_space_paths(environment)),
            **_data(environment),
        }
    finally:
        environment.close()


def _data(environment):
    """``needed_space``: rough bytes a restore needs (the current databases plus the file store); ``has_data``: false
    on a replacement node (nothing to save before a restore, nothing to roll back to). Each target is looked up
    once."""
    present = [(environment.engines[name], target) for name, target in environment.targets.items()
               if environment.engines[name].exists(target)]
    files = environment.files_path if environment.files_path and os.path.isdir(environment.files_path) else None
    return {
        "needed_space": sum(engine.database_size(target) for engine, target in present)
        + (tree_size(files)[1] if files else 0),
        "has_data": bool(present) or bool(files and os.listdir(files)),
    }


def sessions(environment):
    """Database (name or SQLite path) -> sessions other than ours; SQLite: 1 while another process locks it."""
    return {target: environment.engines[name].session_count(target) for name, target in environment.targets.items()}


def _space_paths(environment):
    paths = [environment.catalog.root]
    if environment.files_path:
        paths.append(os.path.dirname(environment.files_path.rstrip("/")) or "/")
    return paths + environment.engine.space_paths(list(environment.targets.values()))


def free_space(paths):
    """Path -> bytes free for this user on its file system; a missing path counts its nearest parent."""
    result = {}
    for path in paths:
        try:
            stats = os.statvfs(nearest_existing(path))
        except OSError:
            continue
        result[path] = stats.f_bavail * stats.f_frsize
    return result
