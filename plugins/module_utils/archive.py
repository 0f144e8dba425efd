# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing and reading backup archives: Lifeboat archives, Mendix snapshots and bare dumps.

The layout and the safety rules are described in ``docs/archive-format.md``. Everything here works on
streams read or written once, so an archive can pass through an age encryptor or decryptor.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import stat
import tarfile
import time
import zlib

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    CHUNK_SIZE,
    LifeboatError,
    check_free_space,
    check_name,
    format_size,
    fsync_dir,
    nearest_existing,
    open_regular,
    parse_json_object,
    remove_path,
    sync_tree,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import PGDMP_MAGIC

MANIFEST_NAME = "lifeboat.json"
METADATA_NAME = ".metadata"
FORMAT_NAME = "lifeboat-archive"
FORMAT_VERSION = 1
MAIN_DATABASE = "db"
COMPRESSIONS = ("none", "gzip")

GZIP_MAGIC = b"\x1f\x8b"

_BLOCK = tarfile.BLOCKSIZE
# Members read into memory. .metadata holds five short strings, about 150 bytes.
_MAX_METADATA = 64 * 1024
# lifeboat.json holds an entry per file, about 190 bytes in Mendix's layout (42-character path, SHA-256, size):
# 512 MiB is 2.8 million files. Parsed JSON can take 25 times its size in memory, so a manifest may moreover be no
# longer than the members before it need: _MANIFEST_BASE for the other keys plus, per member, _MANIFEST_PER_MEMBER
# and its name as JSON. A small archive cannot carry a large manifest.
_MAX_MANIFEST = 512 * 1024 * 1024
_MANIFEST_BASE = 4 * 1024 * 1024
_MANIFEST_PER_MEMBER = 256
# The same for the number of values: a file's entry has four ({path, sha256, size} and the comma before it).
_MANIFEST_VALUES_BASE = 4096
_MANIFEST_VALUES_PER_MEMBER = 8
# A file store may grow between the moment .metadata is written (first) and the moment its files are read: an
# archive may write what .metadata declares plus this share and _GROWTH_FIXED before it counts as lying.
_GROWTH_SHARE = 100
_GROWTH_FIXED = 16 * 1024 * 1024
# What is extracted, by category: its name in messages and the key of .metadata that declares its size.
_CATEGORIES = {"db": ("database dumps", "dumpSize"), "tree": ("file store", "filesSize")}
# Free space is checked before the first write to a directory and again whenever this much was written since; the
# margin kept free (common.free_space_margin) is larger. A file takes at least a block.
_SPACE_SLICE = 16 * 1024 * 1024
_FILE_BLOCK = 4096
# Modes restored by default: no write for group and others, no setuid, setgid or sticky bit, whatever the archive
# says. keep_unsafe_modes restores the archived bits, except setuid and setgid on files (they belong to root).
_SAFE_MODE_BITS = 0o755
_FILE_MODE_BITS = 0o777
_DIR_MODE_BITS = 0o3777
# What tarfile makes of a GNU sparse member (type S or pax GNU.sparse.*): its holes would be written out as zeros.
_SPARSE_PAX = "GNU.sparse."
# Long names (GNU L/K) and pax records (x, g, Solaris X): a path is at most 4 KiB; real headers are far below this.
_EXTENDED_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                     tarfile.SOLARIS_XHDTYPE)
_MAX_EXTENDED_HEADER = 64 * 1024
_NOT_RECOGNISED = "%s is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL custom-format dump"
# What a damaged tar or gzip stream raises while it is read.
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class _Corrupt(Exception):
    """An integrity problem; turned into "archive X is truncated or corrupt: ..." where the name is known."""


@dataclasses.dataclass
class ArchiveContents:
    kind: str  # 'lifeboat', 'mendix' or 'pgdump'
    manifest: dict | None
    metadata: dict | None
    databases: dict  # name -> path of the extracted dump
    tree: str | None  # the extracted file store
    files: tuple  # (count, size) of the file store's regular files


def per_project_path(path, name):
    """The file of linked project ``name`` beside a per-project backup ``path``: backup.bck -> backup.<name>.bck."""
    root, extension = os.path.splitext(path)
    return "%s.%s%s" % (root, name, extension)


def suffix_for(compression, encrypted):
    _check_compression(compression)
    return (".tar.gz" if compression == "gzip" else ".tar") + (".age" if encrypted else "")


def mendix_metadata(duration_s, dump_size, model_version, database_size, files_size):
    """The ``.metadata`` Mendix tools read: every value a string, sizes in bytes, duration in seconds."""
    return {
        "duration": str(int(round(duration_s))),
        "dumpSize": str(int(dump_size)),
        "modelVersion": str(model_version or ""),
        "databaseSize": str(int(database_size)),
        "filesSize": str(int(files_size)),
    }


def database_member(name):
    return "db/%s.backup" % name


# ---------------------------------------------------------------------------------------------- writing


def write_archive(fileobj, *, manifest, metadata, databases, files_path, compression="none"):
    """Stream an archive into ``fileobj``; return the full manifest and warnings (skipped files).

    ``databases`` are (name, dump path); "db" is the main one. The manifest gets the computed keys
    (format, databases, files, metadata_sha256) added to what the caller passes.
    """
    _check_compression(compression)
    names = [name for name, _path in databases]
    if MAIN_DATABASE not in names or len(set(names)) != len(names):
        raise ValueError("databases must name 'db' once and every other database once: %r" % names)
    for name in names:
        check_name(name, "database name")
    # The main dump first, as in a Mendix snapshot; the others in a stable order.
    ordered = sorted(databases, key=lambda item: (item[0] != MAIN_DATABASE, item[0]))
    warnings = []
    metadata_bytes = json.dumps(metadata, indent=4).encode("utf-8") + b"\n"
    now = int(time.time())

    out = fileobj
    if compression == "gzip":
        out = gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=fileobj, mtime=0)
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, METADATA_NAME, metadata_bytes, now)
            _add_dir(tar, "db", 0o700, now)
            listed = []
            for name, path in ordered:
                size, digest = _add_file(tar, database_member(name), path)
                listed.append({"name": name, "member": database_member(name), "size": size, "sha256": digest})
            files = None if files_path is None else _add_tree(tar, files_path, warnings)
            result = dict(manifest)
            result.update(
                format=FORMAT_NAME,
                format_version=FORMAT_VERSION,
                databases=listed,
                files=files,
                metadata_sha256=hashlib.sha256(metadata_bytes).hexdigest(),
            )
            manifest_bytes = json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
            _add_bytes(tar, MANIFEST_NAME, manifest_bytes, now)
    finally:
        if out is not fileobj:
            out.close()
    return result, warnings


def _check_compression(compression):
    if compression not in COMPRESSIONS:
        raise LifeboatError("unknown compression %r: use one of %s" % (compression, ", ".join(COMPRESSIONS)))


def _tarinfo(name, kind, mode, mtime, size=0):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(mode)
    info.mtime = int(mtime)  # a float would add a PAX header to every member
    info.size = size
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar, name, data, mtime):
    tar.addfile(_tarinfo(name, tarfile.REGTYPE, 0o600, mtime, len(data)), io.BytesIO(data))
    tar.members.clear()  # tarfile keeps every member otherwise; a file store can have millions


def _add_dir(tar, name, mode, mtime):
    tar.addfile(_tarinfo(name, tarfile.DIRTYPE, mode, mtime))
    tar.members.clear()


def _add_file(tar, name, path):
    """Add regular file ``path`` as member ``name``, reading it once; return (size, sha256)."""
    try:
        handle, info = open_regular(path)
    except FileNotFoundError:
        raise LifeboatError("%s vanished while it was being archived; run the backup again" % path)
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s; check that it is a readable regular file" % (path, exc.strerror))
    if handle is None:
        raise LifeboatError("%s is no longer a regular file; run the backup again" % path)
    with handle:
        reader = _HashingReader(handle, info.st_size, path)
        tar.addfile(_tarinfo(name, tarfile.REGTYPE, info.st_mode, info.st_mtime, info.st_size), reader)
        tar.members.clear()
        if handle.read(1):
            raise LifeboatError("%s grew while it was being archived; run the backup again" % path)
    return info.st_size, reader.digest.hexdigest()


def _add_tree(tar, root, warnings):
    """Add the file store below ``tree/``: directories and regular files, in sorted order."""
    try:
        info = os.stat(root)  # the store itself may be reached through a symlink
    except OSError as exc:
        raise LifeboatError("cannot read the file store %s: %s; check files_path" % (root, exc.strerror))
    if not stat.S_ISDIR(info.st_mode):
        raise LifeboatError("the file store %s is not a directory; check files_path" % root)
    _add_dir(tar, "tree", info.st_mode, info.st_mtime)
    entries = []
    directories = []
    pending = [""]
    while pending:
        rel = pending.pop()
        subdirs = []
        for name, info in _list_dir(os.path.join(root, rel) if rel else root):
            child = "%s/%s" % (rel, name) if rel else name
            path = os.path.join(root, child)
            if stat.S_ISDIR(info.st_mode):
                _add_dir(tar, "tree/" + child, info.st_mode, info.st_mtime)
                directories.append(child)
                subdirs.append(child)
            elif stat.S_ISREG(info.st_mode):
                size, digest = _add_file(tar, "tree/" + child, path)
                entries.append({"path": child, "size": size, "sha256": digest})
            else:
                warnings.append(
                    "skipped %s: %s; only regular files and directories are backed up" % (path, _kind_of(info.st_mode))
                )
        pending.extend(reversed(subdirs))
    return {
        "count": len(entries),
        "size": sum(entry["size"] for entry in entries),
        "entries": entries,
        "directories": directories,
    }


def _list_dir(path):
    try:
        with os.scandir(path) as iterator:
            found = sorted(iterator, key=lambda entry: entry.name)
        listed = []
        for entry in found:
            name = entry.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise LifeboatError(
                    "the name of %r is not valid UTF-8 and cannot be stored in the archive; rename it"
                    % os.path.join(path, name)
                )
            listed.append((name, entry.stat(follow_symlinks=False)))
        return listed
    except FileNotFoundError as exc:
        raise LifeboatError("%s vanished while it was being archived; run the backup again" % (exc.filename or path))
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s; check its permissions" % (exc.filename or path, exc.strerror))


_FILE_KINDS = {stat.S_IFLNK: "symbolic link", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket",
               stat.S_IFCHR: "character device", stat.S_IFBLK: "block device"}


def _kind_of(mode):
    return _FILE_KINDS.get(stat.S_IFMT(mode), "special file")


class _HashingReader:
    """Hands a file's bytes to tarfile and hashes them; a file that shrinks meanwhile is an error."""

    def __init__(self, handle, size, path):
        self._handle = handle
        self._size = size
        self._path = path
        self._done = 0
        self.digest = hashlib.sha256()

    def read(self, size):
        data = self._handle.read(size)
        self._done += len(data)
        if len(data) < size and self._done < self._size:
            raise LifeboatError("%s shrank while it was being archived; run the backup again" % self._path)
        self.digest.update(data)
        return data


# ---------------------------------------------------------------------------------------------- reading


def detect_kind(path):
    """'lifeboat', 'mendix', 'pgdump' or 'age', judged by content; LifeboatError for anything else."""
    try:
        with open(path, "rb") as handle:
            head = _read_upto(handle, _BLOCK)
            if head.startswith(PGDMP_MAGIC):
                return "pgdump"
            if age.is_age(head):
                return "age"
            if head.startswith(GZIP_MAGIC):
                source = _TarInput(head, handle)
                tar_args = {"fileobj": source, "mode": "r|"}
            else:
                # Random access: tarfile seeks over member data, so only the headers are read.
                source = None
                handle.seek(0)
                tar_args = {"fileobj": handle, "mode": "r:"}
            seen = set()
            try:
                with tarfile.open(tarinfo=_TarInfo, **tar_args) as tar:
                    for member in _iter_members(tar):
                        seen.add(_normalise(member.name))
                if source is not None:
                    source.drain()
            except _DAMAGE + (_Corrupt,) as exc:
                raise _failure(path, exc, seen, source.first_block if source else head)
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s" % (path, exc.strerror))
    if MANIFEST_NAME in seen:
        return "lifeboat"
    if database_member(MAIN_DATABASE) in seen:
        return "mendix"
    raise LifeboatError(_NOT_RECOGNISED % path)


def read_archive(fileobj, *, db_dir, tree_dir, name=None, keep_unsafe_modes=False):
    """Read a stream once: dumps to ``db_dir/<name>.backup``, the file store into ``tree_dir``.

    ``tree_dir`` must be absent or empty; None skips the file store (its checksums are still checked).
    A bare PostgreSQL custom-format dump becomes ``db_dir/db.backup``. Every member is checked against
    the manifest when there is one. Nothing is written beyond what free space allows (with a margin), nor
    beyond what a leading ``.metadata`` declares. Files and directories get no write bits for group and
    others and no setuid, setgid or sticky bit, unless ``keep_unsafe_modes``. Everything is durable when
    this returns. On any error what was extracted is removed and LifeboatError raised.
    """
    if name is None:
        name = fileobj.name if isinstance(getattr(fileobj, "name", None), str) else "stream"
    reader = _Reader(name, db_dir, tree_dir, keep_unsafe_modes)
    try:
        return reader.run(fileobj)
    except BaseException:
        reader.cleanup()
        raise


def _read_upto(stream, size):
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _failure(name, exc, seen, first_block):
    """The error for a tar that could not be read: not a tar at all, or a damaged one (gzip errors: damaged)."""
    if isinstance(exc, tarfile.TarError) and not seen and first_block[257:262] != b"ustar":
        return LifeboatError(_NOT_RECOGNISED % name)
    return LifeboatError(
        "archive %s is truncated or corrupt: %s; use another copy of the backup"
        % (name, str(exc) or type(exc).__name__)
    )


def _normalise(name):
    """Member name without leading './' (``tar -C dir .`` writes them); '' for the top directory."""
    while name.startswith("./"):
        name = name[2:]
    return "" if name == "." else name


class _TarInfo(tarfile.TarInfo):
    """Notes when the end-of-archive block is read: tarfile quietly stops at a truncation otherwise. A header that
    makes tarfile raise ValueError is damaged."""

    @classmethod
    def fromtarfile(cls, tar):  # pylint: disable=arguments-renamed  # "tarfile" is the module here
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar.lifeboat_end_seen = True
            raise
        except ValueError as exc:  # tarfile reads the sparse maps of pax headers with a bare int()
            raise tarfile.ReadError("a member header is damaged (%s)" % exc)

    def _proc_member(self, tar):  # pylint: disable=arguments-renamed  # "tarfile" is the module here
        # tarfile reads a long name or a pax header into memory whole, before any member is seen: bound it.
        if self.type in _EXTENDED_HEADERS and self.size > _MAX_EXTENDED_HEADER:
            raise tarfile.ReadError("an extended header (a long name or pax records) has %d bytes, more than the %d "
                                    "a real one needs" % (self.size, _MAX_EXTENDED_HEADER))
        return super()._proc_member(tar)


def _iter_members(tar):
    while True:
        member = tar.next()
        if member is None:
            break
        tar.members.clear()  # not kept: a file store can have millions of members
        yield member
    if not getattr(tar, "lifeboat_end_seen", False):
        raise _Corrupt("it ends before the end-of-archive marker")


class _Prefixed:
    """A stream whose first bytes were already read to recognise the format."""

    def __init__(self, head, raw):
        self._head = head
        self._raw = raw

    def read(self, size=-1):
        if not self._head:
            return self._raw.read(size)
        if 0 <= size <= len(self._head):
            data, self._head = self._head[:size], self._head[size:]
            return data
        data, self._head = self._head, b""
        return data + self._raw.read(-1 if size < 0 else size - len(data))


class _TarInput:
    """The tar bytes of a stream whose first bytes are ``head``, gunzipped when needed.

    gzip checks its CRC and length at the end of the stream, which ``drain`` reaches.
    """

    def __init__(self, head, raw):
        self._stream = _Prefixed(head, raw)
        if head.startswith(GZIP_MAGIC):
            self._stream = gzip.GzipFile(fileobj=self._stream, mode="rb")
        self.first_block = b""

    def read(self, size):
        data = self._stream.read(size)
        if len(self.first_block) < _BLOCK:
            self.first_block += data[: _BLOCK - len(self.first_block)]
        return data

    def drain(self):
        """Read to the end: checks gzip's trailer, and lets a decryptor authenticate the last chunk."""
        while self._stream.read(CHUNK_SIZE):
            pass


_MEMBER_TYPES = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link",
                 tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a fifo"}


def _member_type(member):
    return _MEMBER_TYPES.get(member.type, "of tar type %r" % member.type)


def _values_in(data):
    """An upper bound of the JSON values, objects and arrays in ``data``: each but the first follows a comma or opens
    a container."""
    return data.count(b",") + data.count(b"[") + data.count(b"{") + 1


def _parse_json(data, what):
    try:
        return parse_json_object(data, what)
    except LifeboatError as exc:
        raise _Corrupt(str(exc))


def _size_of(value):
    """A size in .metadata (a string of digits, as Mendix writes it), or None."""
    return int(value) if isinstance(value, str) and re.fullmatch(r"[0-9]{1,20}", value) else None


def _listed(manifest):
    """From a manifest: {member: (size, sha256)} of the dumps and files, and the set of directory members."""
    databases = manifest.get("databases")
    if not isinstance(databases, list) or not all(isinstance(item, dict) for item in databases):
        raise _Corrupt("its manifest has no valid list of databases")
    listed = {}
    for item in databases:
        name = item.get("name")
        if not isinstance(name, str) or item.get("member") != database_member(name):
            raise _Corrupt("its manifest lists database %r as member %r" % (name, item.get("member")))
        listed[database_member(name)] = (item.get("size"), item.get("sha256"))
    if database_member(MAIN_DATABASE) not in listed:
        raise _Corrupt("its manifest lists no main database (%s)" % database_member(MAIN_DATABASE))
    files = manifest.get("files")
    if files is None:
        return listed, set()
    entries = files.get("entries") if isinstance(files, dict) else None
    directories = files.get("directories") if isinstance(files, dict) else None
    if (
        not isinstance(entries, list)
        or not isinstance(directories, list)
        or not all(isinstance(entry, dict) and isinstance(entry.get("path"), str) for entry in entries)
        or not all(isinstance(directory, str) for directory in directories)
    ):
        raise _Corrupt("its manifest has no valid list of files")
    for entry in entries:
        listed["tree/" + entry["path"]] = (entry.get("size"), entry.get("sha256"))
    return listed, {"tree/" + directory for directory in directories}


def _compare(listed, observed):
    """Raise _Corrupt when a member is in only one of the manifest and the archive (dicts or sets of names)."""
    missing = sorted(set(listed) - set(observed))
    if missing:
        raise _Corrupt("member %s is listed in the manifest but not in the archive" % missing[0])
    unlisted = sorted(set(observed) - set(listed))
    if unlisted:
        raise _Corrupt("member %s is in the archive but not in the manifest" % unlisted[0])


class _Reader:
    """One pass over an archive stream: extract, hash, then check against the manifest."""

    def __init__(self, name, db_dir, tree_dir, keep_unsafe_modes):
        self.name = name
        self.db_dir = db_dir
        self.tree_dir = tree_dir
        self.file_mode_bits = _FILE_MODE_BITS if keep_unsafe_modes else _SAFE_MODE_BITS
        self.dir_mode_bits = _DIR_MODE_BITS if keep_unsafe_modes else _SAFE_MODE_BITS
        self.seen = set()  # normalised names of the members read so far
        self.created = []  # dump files written, removed on error
        self.databases = {}  # database name -> extracted path
        self.observed = {}  # member -> (size, sha256) of dumps and files
        self.directories = {}  # directory below tree/ ('' for tree/ itself) -> (mode, mtime)
        self.made_dirs = set()  # directories created below tree_dir ('' for tree_dir)
        self.tree_created = False
        self.metadata = None  # raw bytes of .metadata
        self.parsed_metadata = None
        self.manifest = None  # raw bytes of lifeboat.json
        self.manifest_room = _MANIFEST_BASE  # the longest lifeboat.json that the members so far can need
        self.manifest_values = _MANIFEST_VALUES_BASE  # and the most values (see _values_in) it can hold
        self.limits = {}  # 'db' or 'tree' -> bytes of dumps or files that a leading .metadata allows
        self.written = {"db": 0, "tree": 0}  # bytes of dumps and files so far
        self.room = {"db": 0, "tree": 0}  # bytes that may still be written before free space is checked again

    def run(self, fileobj):
        try:
            self._check_targets()
            head = _read_upto(fileobj, _BLOCK)
            if head.startswith(PGDMP_MAGIC):
                return self._copy_dump(head, fileobj)
            if age.is_age(head):
                raise LifeboatError(
                    "%s is encrypted with age: decrypt it (give its identity) before reading it" % self.name
                )
            return self._read_tar(_TarInput(head, fileobj))
        except OSError as exc:
            raise LifeboatError(
                "reading archive %s failed: %s (%s); check free space and permissions"
                % (self.name, exc.strerror, exc.filename or "")
            )

    def _read_tar(self, source):
        try:
            # Names that are not UTF-8 keep their bytes as surrogates, for _check_safe to refuse.
            with tarfile.open(
                fileobj=source, mode="r|", tarinfo=_TarInfo, encoding="utf-8", errors="surrogateescape"
            ) as tar:
                for member in _iter_members(tar):
                    self._member(tar, member)
            source.drain()
            return self._finish()
        except _DAMAGE + (_Corrupt,) as exc:
            raise _failure(self.name, exc, self.seen, source.first_block)

    def _check_targets(self):
        tree_dir = self.tree_dir
        if tree_dir is not None and os.path.lexists(tree_dir):
            if os.path.islink(tree_dir) or not os.path.isdir(tree_dir) or os.listdir(tree_dir):
                raise LifeboatError(
                    "%s must be an empty directory or not exist, to receive the file store; remove it" % tree_dir
                )
        os.makedirs(self.db_dir, mode=0o700, exist_ok=True)

    def _member(self, tar, member):
        name = _normalise(member.name)
        if self.manifest is not None:
            raise _Corrupt("member %r follows %s, which must be the last member" % (member.name, MANIFEST_NAME))
        if name == "" and member.isdir():
            return
        self._check_safe(member, name)
        if name in self.seen:
            raise _Corrupt("member %r appears twice" % member.name)
        first = not self.seen
        self.seen.add(name)
        quoted = json.dumps(name, ensure_ascii=False).encode("utf-8")
        self.manifest_room += _MANIFEST_PER_MEMBER + len(quoted)
        self.manifest_values += _MANIFEST_VALUES_PER_MEMBER + _values_in(quoted)
        if name == METADATA_NAME:
            self.metadata = self._small(tar, member, _MAX_METADATA)
            self.parsed_metadata = _parse_json(self.metadata, METADATA_NAME)
            if first:
                self._declared()
        elif name == MANIFEST_NAME:
            if member.size > self.manifest_room:
                raise _Corrupt(
                    "member %s has %d bytes, more than a manifest of its %d members can need (%d)"
                    % (member.name, member.size, len(self.seen), self.manifest_room)
                )
            self.manifest = self._small(tar, member, _MAX_MANIFEST)
        elif name == "tree":
            self.directories[""] = (member.mode, member.mtime)
            if self.tree_dir is not None:
                self._make_dirs([])
        elif name.startswith("db/"):
            database = name[len("db/") : -len(".backup")]
            path = os.path.join(self.db_dir, database + ".backup")
            self._take("db", member)
            out = self._new_file(path)
            self.created.append(path)
            self.databases[database] = path
            self.observed[name] = self._extract(tar, member, out, 0o600, sync=True)
        elif name.startswith("tree/"):
            self._tree_member(tar, member, name[len("tree/") :])

    def _declared(self):
        """.metadata came first and declares the sizes of dumps and files (Lifeboat archives, Mendix snapshots):
        hold the archive to them, and check now, before writing anything, that they fit; directories on one
        filesystem count once, with the sum."""
        needs = {}  # device -> [directory, bytes, what]
        for category, directory in (("db", self.db_dir), ("tree", self.tree_dir)):
            label, key = _CATEGORIES[category]
            declared = _size_of(self.parsed_metadata.get(key))
            if declared is None:
                continue
            self.limits[category] = declared + declared // _GROWTH_SHARE + _GROWTH_FIXED
            if directory is not None:
                need = needs.setdefault(os.stat(nearest_existing(directory)).st_dev, [directory, 0, []])
                need[1] += self.limits[category]
                need[2].append(label)
        for directory, size, labels in needs.values():
            what = "the %s of archive %s (what its .metadata declares, with room for growth)"
            check_free_space(directory, size, what % (" and ".join(labels), self.name))

    def _take(self, category, member):
        """Before a dump or file is extracted: it must fit in what a leading .metadata declared and, when it is
        written, in the free space."""
        self.written[category] += member.size
        limit = self.limits.get(category)
        if limit is not None and self.written[category] > limit:
            label, key = _CATEGORIES[category]
            raise _Corrupt(
                "member %s brings the %s to %s, more than its .metadata declares (%s %s, accepted up to %s for data "
                "that grew while it was archived)"
                % (member.name, label, format_size(self.written[category]), key, self.parsed_metadata[key],
                   format_size(limit))
            )
        if category == "db" or self.tree_dir is not None:
            self._make_room(category, member.size + _FILE_BLOCK, "member %s of archive %s" % (member.name, self.name))

    def _make_room(self, category, size, what):
        """Check free space before ``size`` more bytes go to ``category``'s directory: before the first write, then
        again once _SPACE_SLICE bytes were written since the last check."""
        if self.room[category] < size:
            needed = max(size, _SPACE_SLICE)
            # A file or directory takes a block and an inode: a slice of empty files must fit in inodes too.
            check_free_space(self.db_dir if category == "db" else self.tree_dir, needed, what,
                             inodes=1 if category == "db" else needed // _FILE_BLOCK)
            self.room[category] = needed
        self.room[category] -= size

    def _check_safe(self, member, name):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise LifeboatError(
                "archive %s contains the member %r, whose name is not valid UTF-8: refusing to read it, since the "
                "next backup of the restored files would fail on it; rename the file where the archive was made"
                % (self.name, member.name)
            )
        parts = name.split("/")
        if any(part in ("", ".", "..") for part in parts):
            problem = "its path leaves the archive's directories"
        elif "\0" in name:
            problem = "its name contains a NUL byte"
        elif member.issparse() or any(key.startswith(_SPARSE_PAX) for key in member.pax_headers):
            problem = "it is a GNU sparse file, whose holes would be written out in full"
        elif not (member.isreg() or member.isdir()):
            problem = "it is %s" % _member_type(member)
        elif member.isreg() and (
            name in (METADATA_NAME, MANIFEST_NAME)
            or (parts[0] == "tree" and len(parts) > 1)
            or (parts[0] == "db" and len(parts) == 2 and _is_dump_name(parts[1]))
        ):
            return
        elif member.isdir() and (name in ("db", "tree") or parts[0] == "tree"):
            return
        else:
            problem = "it has no place in a Lifeboat archive or a Mendix snapshot"
        raise LifeboatError(
            "archive %s contains the unsafe member %r (%s): refusing to read it; "
            "it was not written by Lifeboat or Mendix tools" % (self.name, member.name, problem)
        )

    def _small(self, tar, member, limit):
        if member.size > limit:
            raise _Corrupt("member %s has %d bytes, more than the %d allowed" % (member.name, member.size, limit))
        return tar.extractfile(member).read()

    def _tree_member(self, tar, member, rel):
        parts = rel.split("/")
        if member.isdir():
            self.directories[rel] = (member.mode, member.mtime)
            if self.tree_dir is not None:
                self._make_room("tree", _FILE_BLOCK, "member %s of archive %s" % (member.name, self.name))
                self._make_dirs(parts)
            return
        self._take("tree", member)
        out = None
        if self.tree_dir is not None:
            out = self._new_file(os.path.join(self._make_dirs(parts[:-1]), parts[-1]))
        self.observed["tree/" + rel] = self._extract(tar, member, out, member.mode & self.file_mode_bits)

    def _make_dirs(self, parts):
        """Create tree_dir/<parts> step by step, never through anything but a directory we made."""
        path = self.tree_dir
        if "" not in self.made_dirs:
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
                self.tree_created = True
            self.made_dirs.add("")
        for index, part in enumerate(parts):
            path = os.path.join(path, part)
            rel = "/".join(parts[: index + 1])
            if rel in self.made_dirs:
                continue
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise _Corrupt("member tree/%s is both a file and a directory" % rel)
            self.made_dirs.add(rel)
        return path

    def _new_file(self, path):
        if os.path.lexists(path):
            raise LifeboatError("%s already exists; remove it (a leftover of an earlier run) and try again" % path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "wb")

    @staticmethod
    def _extract(tar, member, out, mode, sync=False):
        """Copy a member's data to the new file ``out`` (None: only hash it) and close it; return (size, sha256).

        ``sync``: fsync it now (dumps); the file store is synced once, at the end (_settle_tree).
        """
        source = tar.extractfile(member)
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in iter(lambda: source.read(CHUNK_SIZE), b""):
                digest.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
            if out is not None:
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.utime(out.fileno(), (member.mtime, member.mtime))
                if sync:
                    os.fsync(out.fileno())
        finally:
            if out is not None:
                out.close()
        return size, digest.hexdigest()

    def _copy_dump(self, head, fileobj):
        path = os.path.join(self.db_dir, "db.backup")
        out = self._new_file(path)
        self.created.append(path)
        with out:
            chunk = head
            while chunk:
                self._make_room("db", len(chunk), "the dump %s" % self.name)
                out.write(chunk)
                chunk = fileobj.read(CHUNK_SIZE)
            out.flush()
            os.fsync(out.fileno())
        fsync_dir(self.db_dir)
        return ArchiveContents("pgdump", None, None, {MAIN_DATABASE: path}, None, (0, 0))

    def _finish(self):
        if self.manifest is None:
            if MAIN_DATABASE not in self.databases:
                raise LifeboatError(_NOT_RECOGNISED % self.name)
            kind, manifest = "mendix", None
        else:
            kind, manifest = "lifeboat", self._verify()
        metadata = self.parsed_metadata
        self._settle_tree()
        fsync_dir(self.db_dir)
        files = [size for member, (size, _digest) in self.observed.items() if member.startswith("tree/")]
        return ArchiveContents(
            kind=kind,
            manifest=manifest,
            metadata=metadata,
            databases=dict(self.databases),
            tree=self.tree_dir if "" in self.made_dirs else None,
            files=(len(files), sum(files)),
        )

    def _verify(self):
        values = _values_in(self.manifest)
        if values > self.manifest_values:
            # Parsed, each value is a Python object: 40 MB of "[]," would take gigabytes.
            raise _Corrupt("%s holds %d values, more than a manifest of %d members can need (%d)"
                           % (MANIFEST_NAME, values, len(self.seen), self.manifest_values))
        manifest = _parse_json(self.manifest, MANIFEST_NAME)
        if manifest.get("format") != FORMAT_NAME:
            raise _Corrupt("%s has format %r, not %r" % (MANIFEST_NAME, manifest.get("format"), FORMAT_NAME))
        version = manifest.get("format_version")
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise LifeboatError(
                "archive %s has format version %d, newer than this Lifeboat reads (%d); upgrade lifeboat.backup"
                % (self.name, version, FORMAT_VERSION)
            )
        if version != FORMAT_VERSION:
            raise _Corrupt("%s has an unknown format_version %r" % (MANIFEST_NAME, version))
        if self.metadata is None or manifest.get("metadata_sha256") != hashlib.sha256(self.metadata).hexdigest():
            raise _Corrupt("member %s is missing or does not match the manifest" % METADATA_NAME)
        listed, directories = _listed(manifest)
        _compare(listed, self.observed)
        for member, expected in sorted(listed.items()):
            if self.observed[member] != expected:
                raise _Corrupt(
                    "member %s has %d bytes and SHA-256 %s, the manifest says %r bytes and SHA-256 %r"
                    % ((member,) + self.observed[member] + expected)
                )
        _compare(directories, {"tree/" + rel for rel in self.directories if rel})
        if manifest.get("files") is None and "tree" in self.seen:
            raise _Corrupt("member tree is in the archive but the manifest lists no file store")
        return manifest

    def _settle_tree(self):
        """Give directories their modes and times (deepest first, after their contents); make the tree durable."""
        if "" not in self.made_dirs:
            return
        for rel in sorted(self.directories, key=lambda rel: rel.count("/") + bool(rel), reverse=True):
            mode, mtime = self.directories[rel]
            path = os.path.join(self.tree_dir, rel) if rel else self.tree_dir
            os.chmod(path, mode & self.dir_mode_bits)
            os.utime(path, (mtime, mtime))
        sync_tree(self.tree_dir)

    def cleanup(self):
        for path in self.created:
            remove_path(path)
        if "" in self.made_dirs:
            if self.tree_created:
                remove_path(self.tree_dir)
            else:
                for child in os.listdir(self.tree_dir):
                    remove_path(os.path.join(self.tree_dir, child))


def _is_dump_name(name):
    try:
        return name.endswith(".backup") and bool(check_name(name[: -len(".backup")], "database name"))
    except LifeboatError:
        return False
