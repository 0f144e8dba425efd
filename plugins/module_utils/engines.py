# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One interface over both engines, as backup and restore need it.

A *target* is one of the environment's databases: a database name on PostgreSQL, a file path on SQLite.
Restores build a *staging* copy next to each target and swap it in; the replaced data becomes a
*previous* copy. Swaps are described as journal operations (plain dicts) so that an interrupted swap
can be finished by a later run.
"""

from __future__ import annotations

import ctypes
import os
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import sqlite
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    SetupError,
    copy_owner_mode,
    fsync_dir,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.postgres import PgTools, PostgresServer, derived_name

STAGE_SUFFIX = ".lb_stage"
PREVIOUS_SUFFIX = ".lb_prev_"
PG_STAGE_SUFFIX = "__lb_stage"
PG_PREVIOUS_SUFFIX = "__lb_prev_"
# How long ended PostgreSQL sessions may take to go away before the swap gives up.
SESSION_DRAIN_SECONDS = 10
_LIBC = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def rename_op(src, dst, optional=False):
    """Move ``src`` to ``dst``, which must not exist yet."""
    return {"kind": "rename", "src": src, "dst": dst, "optional": optional}


def link_op(src, dst):
    """Keep the file ``src`` also as ``dst`` (a hard link), so replacing ``src`` later loses nothing."""
    return {"kind": "link", "src": src, "dst": dst}


def replace_op(src, dst):
    """Put ``src`` in place of ``dst`` in one atomic step: the commit point of a file or a directory.

    A file is renamed over the old one; a directory is exchanged with it (``renameat2(RENAME_EXCHANGE)``),
    so the old directory ends up at ``src``. The inode of ``src`` tells afterwards whether it happened.
    """
    return {"kind": "replace", "src": src, "dst": dst, "inode": os.lstat(src).st_ino}


def swap_path_ops(staging, target, previous):
    """Journal operations that put ``staging`` in place of ``target`` and keep the old one at ``previous``."""
    if not previous:
        return [rename_op(staging, target)]
    if os.path.isdir(target):
        return [replace_op(staging, target), rename_op(staging, previous)]
    return [link_op(target, previous), replace_op(staging, target)]


def op_done(op):
    if op["kind"] == "replace":
        return os.path.lexists(op["dst"]) and os.lstat(op["dst"]).st_ino == op["inode"]
    if op["kind"] == "link":
        return os.path.lexists(op["dst"])
    return os.path.lexists(op["dst"]) and not os.path.lexists(op["src"])


def apply_op(op):
    """Carry out one path operation of a swap journal; doing it again once done is a no-op."""
    if op_done(op):
        return
    if not os.path.lexists(op["src"]):
        if op.get("optional"):
            return
        raise LifeboatError("cannot finish the swap: %s is missing (needed for %s)" % (op["src"], op["dst"]))
    if op["kind"] == "rename" and os.path.lexists(op["dst"]):
        raise LifeboatError("cannot finish the swap: both %s and %s exist; move one aside by hand"
                            % (op["src"], op["dst"]))
    if op["kind"] == "link":
        os.link(op["src"], op["dst"])
    elif op["kind"] == "replace" and os.path.isdir(op["dst"]):
        exchange(op["src"], op["dst"])
    else:
        os.rename(op["src"], op["dst"])
    fsync_dir(os.path.dirname(os.path.abspath(op["dst"])))


def exchange(first, second):
    """Swap two paths atomically (Linux renameat2 with RENAME_EXCHANGE)."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        raise LifeboatError("this system cannot swap directories atomically (no renameat2); cannot swap %s" % second)
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise LifeboatError("cannot swap %s and %s atomically: %s (the file store must be on a local file "
                            "system such as ext4, xfs, btrfs or tmpfs)" % (first, second, os.strerror(error)))


class SqliteEngine:
    name = "sqlite"
    # SQLite files are renamed one by one; the swap journal covers the gaps.
    atomic_swap = False
    # Files that belong to a database file and carry its name plus a suffix.
    companion_suffixes = sqlite.SIDECAR_SUFFIXES

    def __init__(self, params):
        self.params = params

    def server_version(self):
        return sqlite.server_version()

    def check_target(self, target):
        if not os.path.isabs(target):
            raise LifeboatError("SQLite path %s must be absolute" % target)

    def exists(self, target):
        return os.path.exists(target)

    def dump(self, target, dest):
        return sqlite.backup_to(target, dest)

    def database_size(self, target):
        return os.path.getsize(target)

    def session_count(self, target):
        return 1 if sqlite.in_use(target) else 0

    def terminate_sessions(self, target):
        raise LifeboatError(
            "SQLite database %s is in use and Lifeboat cannot end another program's access to a file; "
            "stop the application first" % target
        )

    def staging_name(self, target):
        return target + STAGE_SUFFIX

    def previous_name(self, target, stamp):
        return target + PREVIOUS_SUFFIX + stamp

    def leftover_staging(self, target):
        staging = self.staging_name(target)
        return [path for path in [staging] + [staging + s for s in sqlite.SIDECAR_SUFFIXES] if os.path.lexists(path)]

    def stage(self, target, dump_path, staging, owner=None):
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise LifeboatError("directory %s of SQLite database %s does not exist" % (directory, target))
        sqlite.restore_to(dump_path, staging)
        if os.path.exists(target):
            copy_owner_mode(target, staging)

    def stage_empty(self, target, staging, owner=None):
        """A new, empty database for a linked project whose dump is missing."""
        self.drop(staging)
        sqlite.create_empty(staging)
        if os.path.exists(target):
            copy_owner_mode(target, staging)

    def drop(self, name):
        for path in [name] + [name + suffix for suffix in sqlite.SIDECAR_SUFFIXES]:
            if os.path.lexists(path):
                os.unlink(path)

    def swap_ops(self, pairs):
        """Journal operations that swap each (target, staging, previous) triple."""
        ops = []
        for target, staging, previous in pairs:
            *keep, commit = swap_path_ops(staging, target, previous)
            # Sidecars belong to the file they were written for: they go with the previous copy, and a
            # previous copy swapped back in (rollback) brings its own along.
            ops.extend(keep)
            if previous:
                ops.extend(rename_op(target + s, previous + s, optional=True) for s in sqlite.SIDECAR_SUFFIXES)
            ops.append(commit)
            ops.extend(rename_op(staging + s, target + s, optional=True) for s in sqlite.SIDECAR_SUFFIXES)
        return ops

    def after_swap(self, targets, previous):
        pass

    def read_through(self, dump_path):
        raise LifeboatError("it is a PostgreSQL custom-format dump, but environment %s has engine sqlite; upload it to "
                            "an environment with engine postgresql" % self.params["environment"])

    def close(self):
        pass


class PostgresEngine:
    name = "postgresql"
    # All databases of an environment are renamed in one transaction.
    atomic_swap = True
    companion_suffixes = ()

    def __init__(self, params, tmp_dir=None):
        self.params = params
        self.server = PostgresServer(params)
        self.tools = PgTools(self.server, params, tmp_dir)

    def server_version(self):
        return self.server.server_version()[1]

    def check_target(self, target):
        if target == self.params.get("login_db"):
            raise LifeboatError(
                "database %s is the maintenance database (login_db); choose another login_db to back up or "
                "restore it" % target
            )

    def exists(self, target):
        return self.server.database_exists(target)

    def read_through(self, dump_path):
        """Read a custom-format dump to its end with the pg_restore a restore would use."""
        self.tools.read_through(dump_path)

    def dump(self, target, dest):
        self.tools.dump(target, dest)
        return os.path.getsize(dest)

    def database_size(self, target):
        return self.server.database_size(target)

    def session_count(self, target):
        return self.server.session_count(target) if self.exists(target) else 0

    def terminate_sessions(self, target):
        return self.server.terminate_sessions(target)

    def staging_name(self, target):
        return derived_name(target, PG_STAGE_SUFFIX)

    def previous_name(self, target, stamp):
        return derived_name(target, PG_PREVIOUS_SUFFIX + stamp)

    def leftover_staging(self, target):
        name = self.staging_name(target)
        return [name] if self.server.database_exists(name) else []

    def stage_empty(self, target, staging, owner=None):
        """A new, empty database (like the one it replaces) for a linked project whose dump is missing."""
        if self.server.database_exists(target):
            self.server.create_database(staging, owner=owner, like=target)
        else:
            self.server.create_database(staging, owner=owner or self.params.get("login_user"))

    def stage(self, target, dump_path, staging, owner=None):
        owner = owner or self.params.get("owner")
        if not owner and not self.server.database_exists(target):
            # login_user would own it, and the archive's SQL runs as the owner.
            raise SetupError("database %s does not exist yet: set owner to the ordinary role (the application's "
                             "own, not a superuser) that is to own it" % target)
        self.stage_empty(target, staging, owner)
        role = self.server.database_properties(staging)["owner"]
        self.tools.restore(dump_path, staging, role)
        self.tools.check_database(staging)

    def drop(self, name):
        if self.server.database_exists(name):
            self.server.drop_database(name)

    def swap_ops(self, pairs):
        return [{"kind": "pg_swap", "pairs": [list(pair) for pair in pairs]}]

    def swap_done(self, op):
        return all(self.server.database_exists(target) and not self.server.database_exists(staging)
                   for target, staging, _previous in op["pairs"])

    def apply_swap(self, op, terminate):
        """Block new connections, end (or refuse) the remaining ones, then rename everything at once."""
        current = [target for target, _staging, previous in op["pairs"] if previous]
        for target in current:
            self.server.set_allow_connections(target, False)
        try:
            self._drain(current, terminate)
            renames = []
            for target, staging, previous in op["pairs"]:
                if previous:
                    renames.append((target, previous))
                renames.append((staging, target))
            self.server.rename_databases(renames)
        except BaseException:
            for target in current:
                if self.server.database_exists(target):
                    self.server.set_allow_connections(target, True)
            raise

    def _drain(self, targets, terminate):
        deadline = time.monotonic() + SESSION_DRAIN_SECONDS
        for target in targets:
            while True:
                count = self.server.session_count(target)
                if count == 0:
                    break
                if not terminate:
                    raise LifeboatError(
                        "database %s has %d session(s) connected (is the app still running?); stop the app "
                        "or set terminate_sessions: true" % (target, count)
                    )
                if time.monotonic() > deadline:
                    raise LifeboatError("sessions on database %s did not end within %d seconds"
                                        % (target, SESSION_DRAIN_SECONDS))
                self.server.terminate_sessions(target)
                time.sleep(0.1)

    def after_swap(self, targets, previous):
        # The new data takes connections; kept previous copies stay closed so no app writes into them.
        for target in targets:
            self.server.set_allow_connections(target, True)
        for name in previous:
            if self.server.database_exists(name):
                self.server.set_allow_connections(name, False)

    def close(self):
        self.server.close()


def open_engine(params, tmp_dir=None):
    """``tmp_dir``: a function returning the environment's private directory for temporary files."""
    if params["engine"] == "sqlite":
        return SqliteEngine(params)
    return PostgresEngine(params, tmp_dir)
