# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every engine offers backup and restore (``Engine``), and the path operations of a swap journal.

A *target* is one of the environment's databases: a database name on PostgreSQL, a file path on SQLite.
Restores build a *staging* copy next to each target and swap it in; the replaced data becomes a
*previous* copy. Swaps are described as journal operations (plain dicts with a ``kind``) so that an
interrupted swap can be finished, or undone, by a later run that knows nothing of the engine: it asks the
engine whether an operation is ``done``, to ``apply`` it, to ``undo`` one that was never done, and which
names it ``touches`` (checked before anything is acted on). Path operations (``rename``, ``link``,
``replace``) are understood by every engine; the file store is swapped with them too (``FileStore``).
"""

from __future__ import annotations

import ctypes
import os

from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    fsync_dir,
)

STAGE_SUFFIX = ".lb_stage"
PREVIOUS_SUFFIX = ".lb_prev_"
PATH_OPS = ("rename", "link", "replace")
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


def path_op_names(op):
    """The paths a path operation acts on, or None when it is not a well-formed one."""
    if op.get("kind") not in PATH_OPS or op["kind"] == "replace" and not isinstance(op.get("inode"), int):
        return None
    return [op.get("src"), op.get("dst")]


def path_op_done(op):
    if op["kind"] == "replace":
        return os.path.lexists(op["dst"]) and os.lstat(op["dst"]).st_ino == op["inode"]
    if op["kind"] == "link":
        return os.path.lexists(op["dst"])
    return os.path.lexists(op["dst"]) and not os.path.lexists(op["src"])


def apply_path_op(op):
    """Carry out one path operation of a swap journal; doing it again once done is a no-op."""
    if path_op_done(op):
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


def staging_path(path):
    """Where the staging copy of a file or directory is built: beside it, on the same file system."""
    return path + STAGE_SUFFIX


def previous_path(path, stamp):
    return path + PREVIOUS_SUFFIX + stamp


class FileStore:
    """The environment's file store (files_path): the names of its copies and the operations that swap one in."""

    def __init__(self, path):
        self.path = path
        self.staging = staging_path(path)

    def previous_name(self, stamp):
        return previous_path(self.path, stamp)

    def swap_ops(self, copy, previous):
        """Put ``copy`` (the staging copy, or a previous copy for a rollback) in place of the store."""
        return swap_path_ops(copy, self.path, previous)


class Engine:
    """The interface of an engine: what backup, restore and the swap journal need of it.

    Class attributes tell the modules what they need before an engine is opened: ``name`` (the ``engine``
    option's value, recorded in manifests and journals), ``target_option`` (the option naming a target),
    ``dump_magic`` (how a bare dump of this engine starts), ``companion_suffixes`` (files that belong to a
    target and carry its name plus a suffix) and ``sessions_end_at_swap`` (sessions to be ended are ended by the
    swap itself, not before staging). Methods without a body here are each engine's own.
    """

    name = None
    target_option = None
    dump_magic = None
    companion_suffixes = ()
    sessions_end_at_swap = False

    def __init__(self, params, tmp_dir=None):
        """``tmp_dir``: a function returning the environment's private directory for temporary files."""
        self.params = params
        self.tmp_dir = tmp_dir

    @staticmethod
    def missing_library():
        """``(library, import traceback)`` when a Python library the engine needs is not installed, else None."""
        return None

    @classmethod
    def is_dump(cls, head):
        """Whether ``head`` (the first bytes of a file) starts a bare dump of this engine."""
        return head.startswith(cls.dump_magic)

    # --- names: the engine derives every name it creates, and a journal may name only those ---

    def staging_name(self, target):
        raise NotImplementedError

    def previous_name(self, target, stamp):
        raise NotImplementedError

    def scratch_name(self, target):
        """The copy that backup_info's ``verify: restore`` builds and drops again."""
        raise NotImplementedError

    # --- sessions ---

    def session_count(self, target):
        """Sessions on ``target`` other than ours (SQLite: 1 while another process locks it)."""
        raise NotImplementedError

    def terminate_sessions(self, target):
        raise NotImplementedError

    def check_sessions(self, targets, terminate):
        """Before anything is staged: a target in use is refused, or (``terminate``) its sessions are ended."""
        for target in targets:
            count = self.session_count(target)
            if count and not terminate:
                raise self.in_use(target, count)
            if count and not self.sessions_end_at_swap:
                self.terminate_sessions(target)

    @staticmethod
    def in_use(target, count):
        return LifeboatError("database %s is in use, %d session(s) connected (is the app still running?); stop the "
                             "app or set terminate_sessions: true" % (target, count))

    # --- data ---

    def check_target(self, target):
        """Refuse a target the engine must not back up or restore."""
        raise NotImplementedError

    def check_link(self, name, overrides):
        """Refuse linked project ``name`` when its connection ``overrides`` put it where this engine cannot swap it
        together with the environment's other databases."""

    def exists(self, target):
        raise NotImplementedError

    def check_copy_place(self, target):
        """Fail, as the operator's problem and not the backup's, when no copy of ``target`` can be built now."""
        raise NotImplementedError

    def server_version(self):
        raise NotImplementedError

    def dump(self, target, dest):
        """Write a backup of ``target`` to ``dest``; returns its size."""
        raise NotImplementedError

    def database_size(self, target):
        raise NotImplementedError

    def read_through(self, dump_path):
        """Read a bare PostgreSQL dump to its end, so that a damaged one is refused before it is kept."""
        raise NotImplementedError

    def stage(self, target, dump_path, staging, owner=None):
        """Build ``staging`` from a dump, like ``target``, and prove it sound. Touches nothing else."""
        raise NotImplementedError

    def stage_empty(self, target, staging, owner=None):
        """Build ``staging`` as a new, empty database (a linked project the backup has no dump of)."""
        raise NotImplementedError

    def drop(self, name):
        """Remove a copy if it exists (with what belongs to it), nothing if it does not."""
        raise NotImplementedError

    def space_paths(self, targets):
        """Directories on this node whose free space a restore of ``targets`` uses."""
        raise NotImplementedError

    def migrator(self, target, history_table=None, role=None):
        """What structure_update runs migrations on ``target`` with (engines/*_migrator.py)."""
        raise NotImplementedError

    # --- the swap: operations this engine emits, and how to check, apply and undo each of them ---

    def swap_ops(self, pairs):
        """Journal operations that put each ``(target, staging, previous)``'s staging copy in place of its target
        and keep the target as ``previous`` (None: keep nothing)."""
        raise NotImplementedError

    def touches(self, op):
        """The names a journal operation acts on, as ``(name, target)`` pairs: ``target`` None means the name must
        be one of the environment's own; else it must be a staging or previous copy of that target. None for an
        operation the engine does not know or that is not well formed."""
        names = path_op_names(op)
        return None if names is None else [(name, None) for name in names]

    def done(self, op):
        return path_op_done(op)

    def apply(self, op, terminate):
        """Carry out one journal operation; ``terminate``: end sessions in the way rather than refuse."""
        apply_path_op(op)

    def undo(self, op):
        """Settle an operation that was journalled but never done: the environment runs as it did before."""

    def after_swap(self, targets, previous):
        """After the commit point: ``targets`` hold the new data, ``previous`` the copies kept of the old."""

    def close(self):
        """End the engine's connections."""
