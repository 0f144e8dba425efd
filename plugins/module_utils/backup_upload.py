# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_upload on the node: take in, check and register uploaded archives.

The controller half is the action plugin ``plugins/action/backup_upload.py``. It moves the bytes with the
connection's own file transfer and tells the module what it knows through internal options: ``_sha256`` and
``_size`` of the archive on the controller, ``_uploaded`` (where the archive landed on the node).
"""

from __future__ import annotations

import os
import re
import reprlib
import shutil
import stat
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive, encryption
from ansible_collections.lifeboat.backup.plugins.module_utils import restoring
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import (
    SUFFIXES,
    Catalog,
    entry_result,
    planned_result,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    CHUNK_SIZE,
    LifeboatError,
    check_name,
    is_valid_name,
    fsync_dir,
    isoformat,
    new_backup_id,
    remove_path,
    sha256_file,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.registry import ENGINES, dump_engine, open_engine
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import MAX_VERSION

ORIGIN = "uploaded"
# A bare custom-format dump is no tar: it keeps the suffix pg_dump users know (listed in catalog.SUFFIXES).
DUMP_SUFFIX = ".backup"
# An encrypted upload whose content is unknown (no key given): Lifeboat and Mendix archives are tars.
ENCRYPTED_DEFAULT_SUFFIX = ".tar.age"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MIB = 1024 * 1024
# Bounds for what an uploaded archive may put into its catalog entry: generous for anything Lifeboat writes.
_MAX_TEXT = 1024
_MAX_ITEMS = 1000


# ---------------------------------------------------------------------------------------------- upload


def upload(params, check_mode=False):
    """One run of backup_upload on the node.

    Without ``_uploaded`` it is the probe the action plugin runs first: when the environment's catalog has
    an archive with the same SHA-256 nothing needs to be sent (and ``restore`` is done at once); otherwise
    the result says ``upload_needed``. With ``_uploaded`` the archive has arrived: it is checked and
    registered, then restored if asked.
    """
    name = check_name(params["environment"], "environment")
    sha256 = params.get("_sha256")
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise LifeboatError("backup_upload runs through its action plugin, which gives the archive's SHA-256; "
                            "call it as lifeboat.backup.backup_upload in a task")
    catalog = Catalog(params["catalog"])
    label = params.get("label")
    uploaded = params.get("_uploaded")
    entries = catalog.entries(name)
    found = entries.find_by_sha256(sha256)
    if found is None and uploaded is None:
        _check_label_free(entries, label)
        current = _current(catalog, name)
        if params["restore"]:
            _check_environment(params)
        if check_mode:
            return _planned(params, sha256, current, entries.warnings)
        _check_space(catalog.root, params.get("_size") or 0)
        return {"changed": False, "upload_needed": True}

    warnings = []
    listed = entries.warnings
    created = False
    if found is None:
        entry, created, verification, listed = _import(catalog, name, params, uploaded, sha256)
    else:
        entry, verification = found, None
        if uploaded is not None:  # another run registered the same archive meanwhile
            _discard(uploaded)
        if label and found.get("label") != label:
            warnings.append("the archive is already backup %s of environment %s (label %r); it was not registered "
                            "again, so label %r was not applied" % (found["id"], name, found.get("label"), label))
    result = {
        "changed": created,
        "backup": entry_result(entry),
        "kind": entry.get("kind"),
        "verification": verification,
        "warnings": warnings + listed,
        "diff": {"before": {"uploaded": None if created else entry["id"]},
                 "after": {"uploaded": entry["id"]}},
    }
    if params["restore"]:
        done = _restore(params, name, entry, created, check_mode)
        result["changed"] = created or done["changed"]
        result["warnings"].extend(done["warnings"])
        result["restored"] = done["restored"]
        result["previous"] = done["previous"]
        result["diff"]["before"]["current"] = done["diff"]["before"]["backup"]
        result["diff"]["after"]["current"] = done["diff"]["after"]["backup"]
    return result


def _check_environment(params):
    """Wrong environment or connection options fail before anything is sent, not after."""
    environment = Environment(params)
    try:
        environment.engine.exists(environment.targets[MAIN])
    finally:
        environment.close()


def _check_label_free(entries, label):
    if not label:
        return
    taken = entries.find_by_label(label)
    if taken is not None:
        raise LifeboatError("environment %s already has backup %s labelled %r, with other content; give the upload "
                            "another label" % (entries.name, taken["id"], label))


def _current(catalog, name):
    """Which backup the environment runs on, as --diff names it."""
    if not os.path.isdir(catalog.env_dir(name)):
        return None
    current = (catalog.read_state(name) or {}).get("current")
    return (current.get("id") or current.get("src")) if current else None


def _planned(params, sha256, current, warnings):
    """What check mode reports: the upload would be registered (and restored); nothing is sent."""
    planned = planned_result(label=params.get("label"), comment=params.get("comment"), size=params.get("_size"),
                             sha256=sha256)
    result = {"changed": True, "backup": planned, "kind": None, "verification": None, "warnings": warnings,
              "diff": {"before": {"uploaded": None}, "after": {"uploaded": "(new) %s" % _original_name(params)}}}
    if params["restore"]:
        result["restored"] = {"id": None, "label": params.get("label"), "src": None}
        result["previous"] = {"databases": [], "files": None}
        result["diff"]["before"]["current"] = current
        result["diff"]["after"]["current"] = "(new) %s" % _original_name(params)
    return result


def _check_space(root, size):
    """Refuse before sending when the catalog's file system cannot take the archive."""
    path = root
    while not os.path.isdir(path):
        path = os.path.dirname(path)
    free = shutil.disk_usage(path).free
    if size > free:
        raise LifeboatError("the catalog %s has %d MiB free, the archive needs %d MiB; free some space (nothing was "
                            "sent)" % (root, free // _MIB, -(-size // _MIB)))


def _original_name(params):
    return os.path.basename(params.get("src") or "") or "upload"


def _restore(params, name, entry, created, check_mode):
    """Restore the registered archive with all of backup_restore's guarantees."""
    try:
        return _restore_entry(dict(params, backup=entry["id"], src=None), check_mode)
    except LifeboatError as exc:
        if not created:
            raise
        raise LifeboatError("%s (the upload itself succeeded: the archive is backup %s of environment %s; once this "
                            "is fixed, run the task again, which restores it without sending it again)"
                            % (exc, entry["id"], name))


def _restore_entry(options, check_mode):
    environment = Environment(options)
    try:
        return restoring.restore(environment, options, check_mode)
    finally:
        environment.close()


def _import(catalog, name, params, uploaded, sha256):
    """Move the uploaded file into the catalog's .tmp, check it, register it: (entry, created, verification, and
    the warnings of listing the catalog)."""
    started = time.monotonic()
    original = _original_name(params)
    try:
        with catalog.lock(name, "upload"):
            entries = catalog.entries(name)
            found = entries.find_by_sha256(sha256)
            if found is not None:
                return found, False, None, entries.warnings
            _check_label_free(entries, params.get("label"))
            catalog.clean_tmp(name)
            tmp = catalog.tmp_dir(name)
            created = utcnow()
            backup_id = new_backup_id(created)
            part = os.path.join(tmp, backup_id + ".part")
            scratch = tempfile.mkdtemp(prefix="upload-", dir=tmp)
            try:
                _move_in(uploaded, part)
                _check_received(part, sha256, params.get("_size"))
                try:
                    facts, suffix, verification = inspect_archive(part, params, scratch, original, sha256)
                except LifeboatError as exc:
                    raise LifeboatError("rejected the upload of %s: %s; nothing was registered"
                                        % (original, str(exc).replace(part, original)))
                entry = dict(facts)
                entry.update(
                    verification=verification,
                    id=backup_id,
                    label=params.get("label"),
                    comment=params.get("comment"),
                    created_at=isoformat(created),
                    environment=name,
                    origin=ORIGIN,
                    original_name=original,
                    duration=round(time.monotonic() - started, 3),
                )
                # _check_received has just compared the part with the controller's SHA-256.
                return catalog.add(name, entry, part, suffix, sha256), True, verification, entries.warnings
            finally:
                remove_path(part)
                remove_path(scratch)
    finally:
        _discard(uploaded)


def _discard(path):
    # The action plugin removes its tmp dir too; a file we may not delete stays for it.
    try:
        remove_path(path)
    except OSError:
        pass


def _move_in(src, dst):
    """Take the uploaded file into the catalog: renamed where possible, else copied; owned by us, mode 0600.

    The file lies in the connection user's tmp dir, so it is opened without following links and must be a
    regular file with one name, or a hostile user could have it swapped for something else.
    """
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LifeboatError("cannot open the uploaded file %s: %s; run the task again" % (src, exc.strerror))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise LifeboatError("the uploaded file %s is not a plain file any more; run the task again" % src)
        if info.st_uid == os.geteuid() or os.geteuid() == 0:
            try:
                os.rename(src, dst)
            except OSError:
                pass  # another file system, or a directory we may not change: copy below
            else:
                moved = os.lstat(dst)
                if (moved.st_dev, moved.st_ino) != (info.st_dev, info.st_ino):
                    raise LifeboatError("the uploaded file %s was replaced while it was taken in; run the task "
                                        "again" % src)
                os.fchown(fd, os.geteuid(), os.getegid())
                os.fchmod(fd, 0o600)
                os.fsync(fd)
                fsync_dir(os.path.dirname(dst))
                return
        _copy_fd(fd, dst)
    finally:
        os.close(fd)
    _discard(src)  # frees its space at once, for an archive the size of the free space


def _copy_fd(fd, dst):
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        for chunk in iter(lambda: os.read(fd, CHUNK_SIZE), b""):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
        os.fsync(out)
    finally:
        os.close(out)
    fsync_dir(os.path.dirname(dst))


def _check_received(path, sha256, size):
    actual = os.stat(path).st_size
    if size is not None and actual != size:
        raise LifeboatError("the archive arrived with %d of its %d bytes: the transfer was cut off; nothing was "
                            "registered, run the task again" % (actual, size))
    if sha256_file(path) != sha256:
        raise LifeboatError("the archive arrived with another SHA-256 than it has on the controller: it was damaged "
                            "in transfer; nothing was registered, run the task again")


# ------------------------------------------------------------------------------------ checking an archive


def inspect_archive(path, params, scratch, name=None, sha256=None):
    """Check that the archive at ``path`` opens and say what it holds: (facts for the entry, suffix, verification).

    Lifeboat archives and Mendix snapshots are read through once (decrypted with the key in ``params`` when
    encrypted), their dumps extracted below ``scratch`` and every checksum checked; a bare dump is read to its
    end by pg_restore. ``verification`` says how far the check could go: ``checksums`` (every member against
    the manifest, or an encrypted dump whose every chunk authenticated), ``structure`` (a Mendix snapshot:
    complete tar and gzip, no checksums to check; a bare dump that pg_restore read to its end), ``header`` (an
    encrypted archive uploaded without its key: only the header could be read). ``sha256`` is the file's, when
    the caller already knows it.
    """
    shown = name or path
    kind = archive.detect_kind(path)
    sealed = None
    if kind == "age":
        with open(path, "rb") as handle:
            sealed = age.read_header(handle)
        # Restoring needs the key anyway: without one the upload is refused now, not after it was registered.
        if not (params.get("restore") or encryption.key_given(params)):
            facts = _facts(None, sealed)
            return facts, _encrypted_suffix(name), "header"
    if kind == "pgdump":
        _read_through(path, params, shown)
        facts = _facts("pgdump", None, engine=dump_engine(path),
                       databases=[{"name": MAIN, "size": os.path.getsize(path), "sha256": sha256 or sha256_file(path)}])
        return facts, DUMP_SUFFIX, "structure"
    with encryption.open_source(path, params) as stream:
        head = _Head(stream)
        contents = archive.read_archive(head, db_dir=os.path.join(scratch, "db"), tree_dir=None, name=path)
    if len(contents.databases) > _MAX_ITEMS:
        raise LifeboatError("it holds %d databases; Lifeboat takes at most %d from one archive"
                            % (len(contents.databases), _MAX_ITEMS))
    compressed = head.first.startswith(archive.GZIP_MAGIC)
    if contents.kind == "pgdump":
        database = contents.databases[MAIN]
        _read_through(database, params, "%s (decrypted)" % shown)
        facts = _facts("pgdump", sealed, engine=dump_engine(database),
                       databases=[{"name": MAIN, "size": os.path.getsize(database), "sha256": sha256_file(database)}])
        return facts, DUMP_SUFFIX + ".age", "checksums"
    suffix = archive.suffix_for("gzip" if compressed else "none", encrypted=sealed is not None)
    facts = _facts(contents.kind, sealed, compression="gzip" if compressed else "none")
    files = {"count": contents.files[0], "size": contents.files[1]}
    manifest = contents.manifest
    if manifest is not None:
        # Only what the format defines, checked (see _CARRIED); each database once, with the size read and the
        # checksum the reader compared.
        source = _checked(manifest, _SOURCE, "its manifest")
        facts.update(_checked(manifest, _CARRIED, "its manifest"))
        listed = {d["name"]: d["sha256"] for d in manifest["databases"]}
        facts.update(
            databases=[{"name": name, "size": os.path.getsize(contents.databases[name]), "sha256": digest}
                       for name, digest in listed.items()],
            files=files if manifest.get("files") is not None else None,
            source={key: source.get(key) for key in _SOURCE},
        )
        return facts, suffix, "checksums"
    databases = sorted(contents.databases.items())
    facts.update(
        engine=dump_engine(contents.databases[MAIN]),
        databases=[{"name": db, "size": os.path.getsize(p), "sha256": sha256_file(p)} for db, p in databases],
        files=files if contents.files[0] else None,
        model_version=_checked(contents.metadata or {}, _METADATA, "its .metadata").get("modelVersion") or None,
    )
    return facts, suffix, "structure"


def _read_through(dump, params, shown):
    """Have the pg_restore that would restore a bare dump read it to its end, so that a truncated or damaged one
    is refused now and not at restore. pg_restore is chosen for the environment's server, as for a restore."""
    engine = open_engine(params)
    try:
        engine.read_through(dump)
    except LifeboatError as exc:
        raise LifeboatError(str(exc).replace(dump, shown)) from None
    finally:
        engine.close()


def _checked(document, schema, what):
    """The keys of ``schema`` that ``document`` has, each value checked: a wrong one refuses the archive, since
    no Lifeboat writes it and a restore would read the same document."""
    kept = {}
    for key, (valid, expected) in schema.items():
        if key in document:
            if not valid(document[key]):
                raise LifeboatError("%s gives %s as %s, which should be %s; the archive was altered or made by "
                                    "another tool" % (what, key, _short.repr(document[key]), expected))
            kept[key] = document[key]
    return kept


def _is_text(value):
    return isinstance(value, str) and len(value) <= _MAX_TEXT


def _is_version(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_VERSION


def _is_versions(value):
    return isinstance(value, dict) and len(value) <= _MAX_ITEMS and all(
        is_valid_name(name) and _is_version(version) for name, version in value.items())


_TEXT = (_is_text, "a string of at most %d characters" % _MAX_TEXT)
_OPTIONAL_TEXT = (lambda value: value is None or _is_text(value), "null or " + _TEXT[1])
# What an uploaded manifest may tell the catalog entry (docs/archive-format.md), so that the entry has the shape
# of one that backup_create writes; other keys stay in the archive, which readers of the format ignore.
_CARRIED = {
    "engine": (lambda value: value in ENGINES, " or ".join(ENGINES)),
    "server_version": _OPTIONAL_TEXT,
    "tool_version": _OPTIONAL_TEXT,
    "structure_version": (_is_version, "an integer from 0 to %d" % MAX_VERSION),
    "linked_structure_versions": (_is_versions, "an object of at most %d project names with such integers"
                                  % _MAX_ITEMS),
    "project": (is_valid_name, "a project name"),
}
# What it says about the backup it was: kept as the entry's ``source``.
_SOURCE = {"backup_id": _TEXT, "environment": _TEXT, "created_at": _TEXT, "label": _OPTIONAL_TEXT}
_METADATA = {"modelVersion": _TEXT}
# Shows a wrong value in a message at a bounded length, however large it is.
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def _facts(kind, sealed, engine=None, databases=None, compression=None):
    if sealed is None:
        protection = {"mode": "none", "recipients": []}
    else:
        # The public keys are not in an age header, only the kinds of its stanzas.
        protection = {"mode": "passphrase" if sealed["passphrase"] else "recipients", "recipients": [],
                      "stanzas": sealed["stanzas"]}
    return {
        "kind": kind,
        "engine": engine,
        "databases": databases or [],
        "files": None,
        "compression": compression if kind != "pgdump" else "none",
        "encryption": protection,
    }


def _encrypted_suffix(name):
    """An encrypted archive whose content could not be read keeps the suffix its name has, if it is one of ours."""
    candidates = sorted((s for s in SUFFIXES if s.endswith(".age")), key=len, reverse=True)
    return next((s for s in candidates if name and name.endswith(s)), ENCRYPTED_DEFAULT_SUFFIX)


class _Head:
    """Passes a stream through and keeps its first bytes (gzip or not, once decrypted)."""

    def __init__(self, stream):
        self._stream = stream
        self.first = b""

    def read(self, size=-1):
        data = self._stream.read(size)
        if len(self.first) < 2:
            self.first += data[: 2 - len(self.first)]
        return data
