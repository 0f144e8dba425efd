# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers shared by every part of Lifeboat. Importable without Ansible."""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile

CHUNK_SIZE = 1024 * 1024
# Environment and label names end up in file names and database names. Used with fullmatch: "$" would also match
# before a final newline and let "shop\n" through.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# Left free on a filesystem beside what Lifeboat writes there: 5% of the writes for what sizes do not show (blocks
# of small files, directories, filesystem metadata) and 64 MiB so that the node's services and logs still have room.
_MARGIN_SHARE = 20
_MARGIN_FIXED = 64 * 1024 * 1024
_INODE_MARGIN = 1000
# The state, journal and entry files Lifeboat writes are a few KB.
MAX_JSON_FILE = 4 * 1024 * 1024
# Cheap test for a JSON object, before parsing anything.
_JSON_OBJECT_START = re.compile(rb"[ \t\n\r]*\{")
# Lifeboat's own documents nest a few levels; parsers differ in how deep they go before RecursionError.
MAX_JSON_DEPTH = 64


class LifeboatError(Exception):
    """An error whose message is fit for an operator (becomes the module's ``msg``)."""


class SetupError(LifeboatError):
    """The node or the options refuse the operation, whatever the archive holds (say a superuser as the owner):
    backup_info's restore verification fails with it instead of calling the backup damaged."""


def check_name(value, what):
    if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value) or ".." in value:
        raise LifeboatError("invalid %s %r: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter "
                            "or digit" % (what, value))
    return value


def is_valid_name(value):
    """Whether check_name would take ``value``."""
    try:
        check_name(value, "name")
    except LifeboatError:
        return False
    return True


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def isoformat(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_isoformat(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def new_backup_id(moment=None):
    """Sortable and unique: UTC time of creation plus random hex."""
    moment = moment or utcnow()
    return "%s-%s" % (moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(3))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_regular(path):
    """``(handle, fstat)`` of file ``path`` opened for reading without following a symbolic link, or ``(None, fstat)``
    when it is no regular file (O_NONBLOCK: a fifo put in its place must not hang us). OSError as os.open raises it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        return handle, info
    handle.close()
    return None, info


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(path):
    """Make everything written below directory ``path`` durable at once: one syncfs(2) of its filesystem on Linux
    (which since Linux 5.8 also reports a failed write-back), one fsync per file and directory elsewhere. Much
    cheaper than an fsync per file while writing millions of small ones."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        syncfs = _syncfs()
        if syncfs is not None:
            if syncfs(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), path)
            return
        os.fsync(fd)
    finally:
        os.close(fd)
    for root, dirs, files in os.walk(path):
        for name in files:
            fsync_file(os.path.join(root, name))
        for name in dirs:
            fsync_dir(os.path.join(root, name))


def _syncfs():
    """libc's syncfs, or None where there is none."""
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


def free_space_margin(needed):
    return needed // _MARGIN_SHARE + _MARGIN_FIXED


def check_free_space(path, needed, what, inodes=1):
    """Raise LifeboatError unless the filesystem of ``path`` (or of its nearest existing parent) has room for
    ``needed`` more bytes and ``inodes`` more files of ``what``, each plus its margin; return the free bytes.
    Counts what processes other than root may use: root's reserve is left to the system."""
    existing = nearest_existing(path)
    info = os.statvfs(existing)
    free = info.f_bavail * info.f_frsize
    margin = free_space_margin(needed)
    if free < needed + margin:
        raise LifeboatError(
            "not enough free space for %s on the filesystem mounted at %s: it needs %s (%s plus a margin of %s), "
            "only %s are free; free up space there or give it a larger filesystem"
            % (what, mount_point(existing), format_size(needed + margin), format_size(needed), format_size(margin),
               format_size(free))
        )
    # Filesystems that make inodes as needed (btrfs, ...) report none at all.
    inode_margin = inodes // _MARGIN_SHARE + _INODE_MARGIN
    if info.f_files and info.f_favail < inodes + inode_margin:
        raise LifeboatError(
            "not enough free inodes for %s on the filesystem mounted at %s: it needs %d (%d plus a margin of %d), "
            "only %d are free; remove files there or give it a filesystem with more inodes"
            % (what, mount_point(existing), inodes + inode_margin, inodes, inode_margin, info.f_favail)
        )
    return free


def nearest_existing(path):
    """``path``, or its nearest parent that exists (where a directory about to be made will live)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    return path


def mount_point(path):
    """The mount point of the filesystem holding ``path``: the highest parent on the same device."""
    path = os.path.realpath(path)
    device = os.stat(path).st_dev
    while path != os.path.dirname(path) and os.stat(os.path.dirname(path)).st_dev == device:
        path = os.path.dirname(path)
    return path


def format_size(size):
    """``size`` bytes for a message: "512 bytes", "1.03 GiB", "200.50 MiB"."""
    if size < 1024:
        return "%d bytes" % size
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024.0
        if size < 1024 or unit == "TiB":
            return "%.2f %s" % (size, unit)


def atomic_write_bytes(path, data, mode=0o600):
    """Write ``data`` to ``path`` so that readers see the old or the new content, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def atomic_write_json(path, value, mode=0o600):
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8"), mode)


def parse_json_object(data, what, limit=None):
    """The JSON object in ``data`` (bytes, UTF-8) or LifeboatError naming ``what``; the caller adds what to do.

    Memory stays bounded: ``data`` longer than ``limit`` is refused unparsed, so is anything but an object, and
    nesting deeper than MAX_JSON_DEPTH is an error like any other, whatever depth this Python's parser copes with.
    """
    if limit is not None and len(data) > limit:
        raise LifeboatError("%s has more than %d bytes, more than a valid one ever has" % (what, limit))
    if not _JSON_OBJECT_START.match(data):
        raise LifeboatError("%s is not a JSON object" % what)
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise LifeboatError("%s is not valid JSON (it nests too deeply)" % what)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise LifeboatError("%s is not valid JSON (%s)" % (what, exc))
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise LifeboatError("%s is not valid JSON (it nests too deeply)" % what)
    return value


def _deeper_than(value, limit):
    """True when objects and arrays in ``value`` nest more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def remove_path(path):
    """Remove a file or a directory tree if it exists (leftovers of an interrupted run)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def tree_size(path):
    """Number of regular files and their total size below ``path``."""
    count = size = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            if os.path.isfile(full) and not os.path.islink(full):
                count += 1
                size += os.lstat(full).st_size
    return count, size


def copy_owner_mode(reference, path, recursive=False):
    """Give ``path`` (and with ``recursive`` everything below it) the owner of ``reference``, so the app can
    still write restored data; the top gets ``reference``'s mode too."""
    info = os.stat(reference)
    os.chmod(path, info.st_mode & 0o7777)
    if os.geteuid() != 0:
        return
    os.chown(path, info.st_uid, info.st_gid)
    if recursive:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), info.st_uid, info.st_gid)
