# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog on a node: one directory per environment with archives, their entries, a lock and state.

Layout (see ``docs/internals.md``)::

    <catalog>/<environment>/<id>.tar[.gz][.age]   the archive (0600)
                            <id>.json             its entry (0600)
                            .lock                 flock target; names the holder while held
                            state.json, journal.json, .tmp/
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import time

from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    MAX_JSON_FILE,
    LifeboatError,
    atomic_write_json,
    check_name,
    is_valid_name,
    fsync_dir,
    isoformat,
    open_regular,
    parse_json_object,
    remove_path,
    sha256_file,
    utcnow,
)

DEFAULT_CATALOG = "/var/lib/lifeboat/backups"
# How an archive in the catalog may be named: ``<id><suffix>`` (archive.suffix_for names new ones).
SUFFIXES = (".tar", ".tar.gz", ".tar.age", ".tar.gz.age", ".backup", ".backup.age")
# What a module's result shows of a catalog entry.
RESULT_KEYS = ("id", "label", "comment", "path", "size", "sha256", "created_at", "databases", "files", "encryption",
               "projects", "duration")
LOCK_NAME = ".lock"
STATE_NAME = "state.json"
JOURNAL_NAME = "journal.json"
TMP_NAME = ".tmp"
_RESERVED = (STATE_NAME, JOURNAL_NAME)
# A lock is also held for an instant by lock_holder()'s probe, or by a taker that has not yet written
# its name: only a holder that names itself makes lock() give up at once.
_ANONYMOUS_GRACE = 2.0
_POLL = 0.1


class Catalog:
    def __init__(self, root=DEFAULT_CATALOG):
        self.root = os.path.abspath(root)
        self._trusted = set()  # directories found private

    # ------------------------------------------------------------------------------------ directories

    def env_dir(self, name, create=False):
        check_name(name, "environment")
        path = os.path.join(self.root, name)
        if create:
            _make_private_dirs(path)
        self._check_trusted(path)
        return path

    def _check_trusted(self, path):
        """Refuse a catalog that someone else could have written to (as OpenSSH's StrictModes does): its state and
        journal are acted on as root. Missing directories are fine; they are created private."""
        if path in self._trusted:
            return
        if not os.path.lexists(path):
            if os.path.lexists(self.root):
                self._check_root()
            return
        self._check_root()
        if path != self.root:
            _check_private(os.lstat(path), path, "directory")
        self._trusted.add(path)

    def _check_root(self):
        if self.root in self._trusted:
            return
        real = os.path.realpath(self.root)  # the catalog may be a symlink to another disk; its target counts
        _check_private(os.stat(real), real, "directory")
        # The path as given and the one it leads to: a symlink on the way must be as trusted as a directory.
        for path in [self.root] + _parents(self.root) + _parents(real):
            if os.path.islink(path):
                _check_owner(os.lstat(path), path, "symbolic link")
            if path != self.root:
                _check_ancestor(path)
        self._trusted.add(self.root)

    def environments(self):
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        self._check_root()
        return sorted(name for name in names if is_valid_name(name) and os.path.isdir(os.path.join(self.root, name)))

    def tmp_dir(self, name):
        path = os.path.join(self.env_dir(name, create=True), TMP_NAME)
        _make_private_dirs(path)
        _check_private(os.lstat(path), path, "directory")
        return path

    def clean_tmp(self, name):
        remove_path(os.path.join(self.env_dir(name), TMP_NAME))

    def journal_path(self, name):
        return os.path.join(self.env_dir(name), JOURNAL_NAME)

    def archive_path(self, entry):
        return os.path.join(self.env_dir(entry["environment"]), entry["file"])

    # ---------------------------------------------------------------------------------------- entries

    def entries(self, name):
        """The environment's entries, newest first, with the entry files skipped as damaged (see Entries)."""
        directory = self.env_dir(name)
        try:
            files = os.listdir(directory)
        except FileNotFoundError:
            return Entries(name, self.root, [], [])
        except OSError as exc:
            raise LifeboatError("cannot list %s: %s; run as the catalog's owner" % (directory, exc.strerror))
        found, skipped = [], []
        for file_name in files:
            if file_name.endswith(".json") and not file_name.startswith(".") and file_name not in _RESERVED:
                path = os.path.join(directory, file_name)
                try:
                    found.append(_load(name, path))
                except _Damaged as exc:
                    skipped.append({"id": file_name[: -len(".json")], "path": path, "warning": str(exc)})
        found.sort(key=lambda entry: (entry["created_at"], entry["id"]), reverse=True)
        return Entries(name, self.root, found, skipped)

    def check_archive(self, entry):
        """None when the archive still has the SHA-256 its entry recorded, else why not."""
        path = self.archive_path(entry)
        if not entry.get("sha256"):
            return "its catalog entry records no SHA-256"
        try:
            digest = sha256_file(path)
        except FileNotFoundError:
            return "the archive %s is missing" % path
        except OSError as exc:
            return "the archive %s cannot be read (%s)" % (path, exc.strerror)
        if digest != entry["sha256"]:
            return "the archive %s is damaged: its SHA-256 is %s, the catalog says %s" % (path, digest, entry["sha256"])
        return None

    def add(self, name, entry, tmp_path, suffix, sha256=None):
        """Store a finished archive from the environment's .tmp/ as ``<id><suffix>`` and write its entry.
        ``sha256``: the archive's digest when the caller has just checked it (it is not read again)."""
        backup_id = check_name(entry.get("id"), "backup id")
        if suffix not in SUFFIXES or not isinstance(entry.get("created_at"), str):
            raise ValueError("add() needs a known suffix (not %r) and an entry with created_at" % suffix)
        directory = self.env_dir(name, create=True)
        if os.path.dirname(os.path.realpath(tmp_path)) != os.path.realpath(os.path.join(directory, TMP_NAME)):
            raise ValueError("%s is not in the .tmp directory of environment %s" % (tmp_path, name))
        file_name = backup_id + suffix
        final = os.path.join(directory, file_name)
        entry_path = os.path.join(directory, backup_id + ".json")
        taken = [entry_path] + [os.path.join(directory, backup_id + other) for other in SUFFIXES]
        if any(os.path.lexists(path) for path in taken):
            raise LifeboatError("backup %s already exists in environment '%s'; use a new backup id" % (backup_id, name))
        os.chmod(tmp_path, 0o600)
        digest = sha256 or sha256_file(tmp_path)
        size = os.stat(tmp_path).st_size
        os.rename(tmp_path, final)
        fsync_dir(directory)
        stored = dict(entry, environment=name, file=file_name, path=final, size=size, sha256=digest)
        atomic_write_json(entry_path, stored, 0o600)
        return stored

    def remove(self, name, backup_id):
        """Remove a backup: the entry first (so it is never listed without its archive), then the archive."""
        check_name(backup_id, "backup id")
        directory = self.env_dir(name)
        entry_path = os.path.join(directory, backup_id + ".json")
        archives = [os.path.join(directory, backup_id + suffix) for suffix in SUFFIXES]
        if not os.path.lexists(entry_path) and not any(os.path.lexists(path) for path in archives):
            raise LifeboatError("environment '%s' has no backup %s in catalog %s" % (name, backup_id, self.root))
        remove_path(entry_path)
        fsync_dir(directory)
        for path in archives:
            remove_path(path)
        fsync_dir(directory)

    # ------------------------------------------------------------------------------------------ state

    def read_state(self, name):
        return read_private_json(os.path.join(self.env_dir(name), STATE_NAME), default={})

    def read_journal(self, name):
        """The swap journal of an interrupted restore, or None."""
        return read_private_json(self.journal_path(name))

    def write_state(self, name, value):
        atomic_write_json(os.path.join(self.env_dir(name, create=True), STATE_NAME), value, 0o600)

    # ------------------------------------------------------------------------------------------- lock

    @contextlib.contextmanager
    def lock(self, name, operation):
        """Hold the environment's lock for ``operation``; LifeboatError naming the holder when busy.

        The kernel releases an flock when its holder dies, so a crashed run never leaves it taken.
        """
        path = os.path.join(self.env_dir(name, create=True), LOCK_NAME)
        # No O_TRUNC: the content names the current holder until the lock is ours.
        fd = _open_lock(path, os.O_RDWR | os.O_CREAT)
        try:
            started = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _read_holder(fd)
                    waited = time.monotonic() - started
                    if holder is not None or waited >= _ANONYMOUS_GRACE:
                        raise LifeboatError(_busy_message(name, holder))
                    time.sleep(_POLL)
            holder = {
                "operation": operation,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started_at": isoformat(utcnow()),
            }
            data = json.dumps(holder, sort_keys=True).encode("utf-8")
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            try:
                yield holder
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock

    def lock_holder(self, name):
        """Who holds the environment's lock now, or None; stale content of a dead holder does not count."""
        try:
            fd = _open_lock(os.path.join(self.env_dir(name), LOCK_NAME), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(fd) or {"operation": None, "pid": None, "host": None, "started_at": None}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


class Entries(list):
    """An environment's catalog entries, newest first, and the entry files that listing them skipped as damaged.

    ``skipped`` has ``{"id", "path", "warning"}`` for each of those; ``warnings`` are the texts for the result of
    every module that lists, so that a damaged entry is never passed over in silence.
    """

    def __init__(self, name, root, entries, skipped):
        super().__init__(entries)
        self.name = name
        self.root = root
        self.skipped = skipped

    @property
    def warnings(self):
        return [item["warning"] for item in self.skipped]

    def get(self, backup_id):
        return next((entry for entry in self if entry["id"] == backup_id), None)

    def find_by_label(self, label):
        return next((entry for entry in self if entry.get("label") == label), None)

    def find_by_sha256(self, sha256):
        return next((entry for entry in self if entry.get("sha256") == sha256), None)

    def resolve(self, ref):
        """The entry named by ``ref``: a backup id, a label, or 'latest'."""
        if ref == "latest" and self:
            return self[0]
        entry = self.get(ref) or self.find_by_label(ref)
        if entry:
            return entry
        if not self:
            raise LifeboatError("environment '%s' has no backups in catalog %s" % (self.name, self.root))
        known = ", ".join(entry["id"] + (" (%s)" % entry["label"] if entry.get("label") else "") for entry in self[:5])
        raise LifeboatError("environment '%s' has no backup '%s' (catalog %s); newest known: %s"
                            % (self.name, ref, self.root, known))


class _Damaged(Exception):
    """An entry file that cannot be listed; its text is the warning."""


def _load(name, path):
    directory, file_name = os.path.split(path)
    backup_id = file_name[: -len(".json")]
    try:
        entry = read_private_json(path)
    except LifeboatError as exc:
        raise _Damaged("ignored a catalog entry: %s" % exc) from None
    if entry.get("id") != backup_id:
        raise _damaged(path, "names backup %r" % entry.get("id"))
    if not isinstance(entry.get("created_at"), str):
        raise _damaged(path, "has no created_at")
    archive = entry.get("file")
    if not isinstance(archive, str) or archive not in (backup_id + suffix for suffix in SUFFIXES):
        raise _damaged(path, "names the archive file %r" % archive)
    if not os.path.isfile(os.path.join(directory, archive)):
        raise _damaged(path, "belongs to the archive %s, which is missing" % archive)
    entry["environment"] = name
    entry["path"] = os.path.join(directory, archive)  # where it is now, should the catalog have moved
    return entry


def _damaged(path, problem):
    return _Damaged("ignored the catalog entry %s: it %s; repair or remove it" % (path, problem))


def entry_result(entry):
    """What a module's result shows of a catalog entry."""
    return {key: entry.get(key) for key in RESULT_KEYS}


def planned_result(**known):
    """What check mode shows of a backup it would add: the keys of entry_result, None where not known yet."""
    return dict(dict.fromkeys(RESULT_KEYS), **known)


def _make_private_dirs(path):
    """Create ``path`` and missing parents with mode 0700 (existing directories are left as they are)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise LifeboatError("%s exists but is not a directory; move it aside" % directory)
            continue
        except OSError as exc:
            raise LifeboatError(
                "cannot create %s: %s; check the catalog path and its permissions" % (directory, exc.strerror)
            )
        os.chmod(directory, 0o700)  # whatever the umask


def read_private_json(path, default=None):
    """JSON from a file of the private catalog: a regular file of ours that nobody else can write, of bounded size."""
    try:
        handle, info = open_regular(path)
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s; it must be a regular file of the catalog" % (path, exc.strerror))
    if handle is None:
        raise LifeboatError("%s is not a regular file; move it aside" % path)
    with handle:
        _check_private(info, path, "file")
        data = handle.read(MAX_JSON_FILE + 1)
    try:
        return parse_json_object(data, path, MAX_JSON_FILE)
    except LifeboatError as exc:
        raise LifeboatError("%s; move it aside and run again" % exc) from None


def _check_private(info, path, what):
    """A catalog directory or file must belong to the user running Lifeboat and be writable by nobody else."""
    if info.st_uid != os.geteuid():
        raise LifeboatError(
            "catalog %s %s belongs to uid %d, not to uid %d that runs Lifeboat: refusing to trust it (its state could "
            "have been planted); chown it to this user, or use another catalog"
            % (what, path, info.st_uid, os.geteuid()))
    if info.st_mode & 0o022:
        raise LifeboatError(
            "catalog %s %s is writable by group or others (mode %04o): refusing to trust it (its state could have "
            "been planted); run chmod go-w on it and check its content" % (what, path, stat.S_IMODE(info.st_mode)))


def _parents(path):
    parents = []
    while path != os.path.dirname(path):
        path = os.path.dirname(path)
        parents.append(path)
    return parents


def _check_owner(info, path, what):
    if info.st_uid not in (0, os.geteuid()):
        raise LifeboatError("catalog parent %s %s belongs to uid %d: another user could replace the catalog; put the "
                            "catalog below directories owned by root or by this user" % (what, path, info.st_uid))


def _check_ancestor(path):
    """A parent of the catalog may be shared (like /tmp) only with the sticky bit, which keeps others from renaming
    our directory; otherwise root or this user owns it and nobody else writes to it."""
    info = os.stat(path)
    _check_owner(info, path, "directory")
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise LifeboatError("catalog parent directory %s is writable by group or others (mode %04o) without the "
                            "sticky bit: another user could replace the catalog; run chmod go-w on it"
                            % (path, stat.S_IMODE(info.st_mode)))


def _open_lock(path, flags):
    try:
        return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LifeboatError("cannot open the lock file %s: %s; run as the catalog's owner" % (path, exc.strerror))


def _read_holder(fd):
    try:
        holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
    except ValueError:
        return None
    return holder if isinstance(holder, dict) and holder.get("pid") else None


def _busy_message(name, holder):
    if holder is None:
        return "environment '%s' is busy: another process holds its lock; wait for it or check that process" % name
    return "environment '%s' is busy: %s by pid %s on host %s since %s; wait for it or check that process" % (
        name,
        holder.get("operation"),
        holder.get("pid"),
        holder.get("host"),
        holder.get("started_at"),
    )
