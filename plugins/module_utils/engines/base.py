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

from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    fsync_dir,
)

STAGE_SUFFIX = ".lb_stage"
PREVIOUS_SUFFIX = ".lb_prev_"
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
