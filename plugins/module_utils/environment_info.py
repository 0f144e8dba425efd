# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an environment looks like right now: sessions, lock holder, current backup and disk space.

Read-only: roles poll it to learn when an app has let go of its databases, whether a backup is being
written, and whether a restore fits on the disks.
"""

from __future__ import annotations

import os

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, tree_size
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import Environment


def environment_info(params, check_mode=False):
    """The module's result; ``check_mode`` changes nothing because nothing is written anyway."""
    env = Environment(params)
    try:
        return {
            "changed": False,
            "environment": env.name,
            "sessions": sessions(env),
            "lock": env.catalog.lock_holder(env.name),
            "current": env.state().get("current"),
            "free_space": free_space(_space_paths(env)),
            "needed_space": needed_space(env),
        }
    finally:
        env.close()


def sessions(env):
    """Database (name or SQLite path) -> sessions other than ours; SQLite: 1 while another process locks it."""
    return {target: env.engines[name].session_count(target) for name, target in env.targets.items()}


def needed_space(env):
    """Rough bytes a restore needs: the current databases plus the file store."""
    total = 0
    for name, target in env.targets.items():
        if env.engines[name].exists(target):
            total += env.engines[name].database_size(target)
    if env.files_path and os.path.isdir(env.files_path):
        total += tree_size(env.files_path)[1]
    return total


def _space_paths(env):
    paths = [env.catalog.root]
    if env.files_path:
        paths.append(os.path.dirname(env.files_path.rstrip("/")) or "/")
    if env.engine.name == "sqlite":
        paths.extend(os.path.dirname(target) for target in env.targets.values())
    else:
        data_directory = _data_directory(env)
        if data_directory:
            paths.append(data_directory)
    return paths


def _data_directory(env):
    """The PostgreSQL data directory when this user may read the setting and the directory is on this node."""
    try:
        rows = env.engine.server._rows("SHOW data_directory", action="reading data_directory")
    except LifeboatError:
        return None
    path = rows[0][0] if rows else None
    return path if path and os.path.isdir(path) else None


def free_space(paths):
    """Path -> bytes free for this user on its file system; a missing path counts its nearest parent."""
    result = {}
    for path in paths:
        probe = os.path.abspath(path)
        while not os.path.exists(probe) and probe != os.path.dirname(probe):
            probe = os.path.dirname(probe)
        try:
            stats = os.statvfs(probe)
        except OSError:
            continue
        result[path] = stats.f_bavail * stats.f_frsize
    return result
