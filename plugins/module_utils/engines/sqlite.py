# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The embedded engine: SQLite files, with the standard library only."""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import quote

from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    copy_owner_mode,
    check_free_space,
    fsync_dir,
    fsync_file,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.base import (
    Engine,
    previous_path,
    rename_op,
    staging_path,
    swap_path_ops,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite_migrator import SqliteMigrator

# Files SQLite keeps beside a database; a stale one next to a swapped-in file would corrupt it.
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")
SQLITE_MAGIC = b"SQLite format 3\x00"
VERIFY_SUFFIX = ".lb_verify"
# How long to wait for the application's locks before calling the database "in use".
BUSY_TIMEOUT = 2.0
_PAGES_PER_STEP = 1024


def server_version():
    return sqlite3.sqlite_version


def is_sqlite_file(path):
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def connect_existing(path, timeout=BUSY_TIMEOUT):
    """Open an existing database; sqlite3.connect would silently create a missing one."""
    if not os.path.isfile(path):
        raise LifeboatError("SQLite database %s does not exist" % path)
    try:
        return sqlite3.connect("file:%s?mode=rw" % _uri_path(path), uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise LifeboatError("cannot open SQLite database %s: %s" % (path, exc))


def _uri_path(path):
    return quote(os.path.abspath(path))


def backup_to(path, dest):
    """Copy a live database to ``dest`` with the online backup API (consistent while the app writes)."""
    source = connect_existing(path)
    try:
        target = sqlite3.connect(dest, isolation_level=None)
        try:
            source.backup(target, pages=_PAGES_PER_STEP)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise LifeboatError("backup of SQLite database %s failed: %s" % (path, exc))
    finally:
        source.close()
    fsync_file(dest)
    return os.path.getsize(dest)


def integrity_check(path):
    connection = connect_existing(path)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise LifeboatError("SQLite database %s is not usable: %s" % (path, exc))
    finally:
        connection.close()
    result = [row[0] for row in rows]
    if result != ["ok"]:
        raise LifeboatError("SQLite integrity check of %s failed: %s" % (path, "; ".join(result[:5])))


def restore_to(dump_path, staging):
    """Build ``staging`` from a backed-up database file and prove it is sound."""
    if not is_sqlite_file(dump_path):
        raise LifeboatError("the archive's database is not an SQLite file (wrong engine for this environment?)")
    for name in (staging,) + tuple(staging + suffix for suffix in SIDECAR_SUFFIXES):
        if os.path.exists(name):
            os.unlink(name)
    check_free_space(staging, os.path.getsize(dump_path), "the staging copy of SQLite database %s" % staging)
    backup_to(dump_path, staging)
    integrity_check(staging)
    # The copy must be a single self-contained file before it is renamed into place.
    leftovers = [staging + suffix for suffix in SIDECAR_SUFFIXES if os.path.exists(staging + suffix)]
    for name in leftovers:
        os.unlink(name)
    fsync_dir(os.path.dirname(os.path.abspath(staging)))


def create_empty(path):
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # Writes the header, so the file is a valid database and not a zero-byte one.
        connection.execute("PRAGMA user_version = 0")
        connection.execute("VACUUM")
    finally:
        connection.close()
    fsync_file(path)


def in_use(path, timeout=BUSY_TIMEOUT):
    """True when another process holds a lock on the database (the app is writing or reading).

    SQLite has no sessions to count; failing to take an exclusive lock within ``timeout`` is the sign.
    Taking the lock also rolls back a hot journal and, on close, checkpoints a WAL file.
    """
    if not os.path.exists(path):
        return False
    connection = connect_existing(path, timeout=timeout)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")
        return False
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return True
        raise LifeboatError("cannot lock SQLite database %s: %s" % (path, exc))
    except sqlite3.DatabaseError as exc:
        raise LifeboatError("SQLite database %s is not usable: %s" % (path, exc))
    finally:
        connection.close()


class SqliteEngine(Engine):
    """SQLite files are renamed one by one; the swap journal covers the gaps."""

    name = "sqlite"
    target_option = "path"
    dump_magic = SQLITE_MAGIC
    companion_suffixes = SIDECAR_SUFFIXES

    def server_version(self):
        return server_version()

    def check_target(self, target):
        if not os.path.isabs(target):
            raise LifeboatError("SQLite path %s must be absolute" % target)

    def exists(self, target):
        return os.path.exists(target)

    def check_copy_place(self, target):
        directory = os.path.dirname(target)
        if not os.path.isdir(directory):
            raise LifeboatError("directory %s of SQLite database %s does not exist; copies of it are made there"
                                % (directory, target))

    def dump(self, target, dest):
        return backup_to(target, dest)

    def database_size(self, target):
        return os.path.getsize(target)

    def session_count(self, target):
        return 1 if in_use(target) else 0

    def terminate_sessions(self, target):
        raise LifeboatError(
            "SQLite database %s is in use and Lifeboat cannot end another program's access to a file; "
            "stop the application first" % target
        )

    def staging_name(self, target):
        return staging_path(target)

    def previous_name(self, target, stamp):
        return previous_path(target, stamp)

    def scratch_name(self, target):
        return target + VERIFY_SUFFIX

    def stage(self, target, dump_path, staging, owner=None):
        self.check_copy_place(target)
        restore_to(dump_path, staging)
        if os.path.exists(target):
            copy_owner_mode(target, staging)

    def stage_empty(self, target, staging, owner=None):
        """A new, empty database for a linked project whose dump is missing."""
        self.drop(staging)
        create_empty(staging)
        if os.path.exists(target):
            copy_owner_mode(target, staging)

    def drop(self, name):
        for path in [name] + [name + suffix for suffix in SIDECAR_SUFFIXES]:
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
                ops.extend(rename_op(target + s, previous + s, optional=True) for s in SIDECAR_SUFFIXES)
            ops.append(commit)
            ops.extend(rename_op(staging + s, target + s, optional=True) for s in SIDECAR_SUFFIXES)
        return ops

    def space_paths(self, targets):
        return [os.path.dirname(target) for target in targets]

    def migrator(self, target, history_table=None, role=None):
        """structure_update on ``target``; SQLite has no roles."""
        if role:
            raise LifeboatError("option role applies to PostgreSQL only; remove it for SQLite database %s" % target)
        self.check_target(target)
        return SqliteMigrator(target, history_table, connect_existing)

    def read_through(self, dump_path):
        raise LifeboatError("it is a PostgreSQL custom-format dump, but environment %s has engine sqlite; upload it to "
                            "an environment with engine postgresql" % self.params["environment"])
