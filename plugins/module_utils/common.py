# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers shared by every part of Lifeboat. Importable without Ansible."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile

CHUNK_SIZE = 1024 * 1024
# Environment and label names end up in file names and database names.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class LifeboatError(Exception):
    """An error whose message is fit for an operator (becomes the module's ``msg``)."""


def check_name(value, what):
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or ".." in value:
        raise LifeboatError("invalid %s %r: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter "
                            "or digit" % (what, value))
    return value


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


def read_json(path, default=None):
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return default
    except ValueError as exc:
        raise LifeboatError("%s is not valid JSON (%s); move it aside and run again" % (path, exc))


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
