# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mutated archives for the fuzzing tests, and the budget one read of them may spend.

A case is a known backup (written with ``archive.write_archive``) changed by a random generator seeded
with the seed and the case's index alone: ``mutate(base, index)`` gives the same bytes on every machine
and in any order, so a failing case is rebuilt from its number.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import random
import resource
import signal
import tarfile
import threading
import traceback
import tracemalloc

from ansible_collections.lifeboat.backup.plugins.module_utils import archive

SEED = 20260109
BLOCK = tarfile.BLOCKSIZE
MIB = 1024 * 1024
MANIFEST = {
    "backup_id": "20260109T000000Z-f022ed",
    "label": "fuzz",
    "comment": "",
    "created_at": "2026-01-09T00:00:00Z",
    "environment": "fuzz",
    "engine": "sqlite",
}
# Names a hostile or broken archive might carry: traversal, absolute, odd spellings, non-UTF-8 (surrogate
# escapes stand for raw bytes), overlong, collisions with the members Lifeboat itself writes.
NAMES = (
    "tree/new.txt", "tree/a/new", "tree/readme.txt", "tree", "tree/", "db", "db/", "db/db.backup",
    "db/other.backup", "db/extra.backup", "db/../db.backup", "db/x y.backup", "db/.backup", "db/db.dump",
    "lifeboat.json", ".metadata", "./lifeboat.json", "./tree/readme.txt", "./db/db.backup", ".", "./", "..",
    "../escaped", "tree/../../escaped", "tree/a/../../..", "/etc/lifeboat-fuzz", "//tmp/lifeboat-fuzz",
    "tree//double", "tree/./dot", "tree/a/..", "tree/" + "d/" * 60 + "deep", "tree/" + "n" * 300,
    "tree/\udcff\udcfe.bin", "tree/caf\udce9", "db/\udcff.backup", "tree/\u00fcn\u00ef.txt", "tree/new\n",
    "tree/a\\..\\..\\x", "other/x", "C:/x", "", "tree/a/b/c.bin/under-a-file",
)
LINK_TARGETS = ("/etc/passwd", "../../escaped", "db/db.backup", "tree/readme.txt", "tree/a", ".", "")
TYPES = (
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
    tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
    tarfile.GNUTYPE_SPARSE, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, b"V", b"M", b"N", b"Z",
)
# (offset, length) of the ustar header fields that header edits change.
FIELDS = {
    "name": (0, 100), "mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12), "mtime": (136, 12),
    "type": (156, 1), "linkname": (157, 100), "magic": (257, 8), "uname": (265, 32), "devmajor": (329, 8),
    "devminor": (337, 8), "prefix": (345, 155),
}
JSON_VALUES = (
    None, True, False, 0, -1, 1.5, 2 ** 64, "", "x", "../../escaped", "/etc/passwd", "\udcff", [], [None], {},
    {"path": "../x"}, float("nan"),
)
MTIME = 1767916800  # 2026-01-09, in every member of the known backup and every added one
RESIGNED = "re-signed: "  # starts the step of a change that the manifest was made to match
SPARSE_SIZE = 1 << 30  # what a sparse member declares: far beyond any bound, for a few bytes of archive


@dataclasses.dataclass(frozen=True)
class Base:
    """The known backup: its archive and what a good read of it gives."""

    tar: bytes
    dumps: dict  # database name -> bytes
    files: dict  # path below the file store -> bytes
    directories: frozenset  # directories below the file store, parents of files included

    @property
    def size(self):
        """Bytes of dumps and files: what reading the known backup writes."""
        return sum(map(len, self.dumps.values())) + sum(map(len, self.files.values()))

    @functools.cached_property
    def members(self):
        """[(TarInfo, data or None)] of the archive, in order."""
        with tarfile.open(fileobj=io.BytesIO(self.tar), mode="r:") as tar:
            return [(info, tar.extractfile(info).read() if info.isreg() else None) for info in tar.getmembers()]


@dataclasses.dataclass(frozen=True)
class Case:
    seed: int
    index: int
    steps: tuple  # what was done, in words
    data: bytes
    carried: int  # bytes of tar the case carries (after gunzip): what a reader could need to write

    @property
    def resigned(self):
        """Whether a dump or file was changed with the manifest to match: a valid archive of other data."""
        return any(step.startswith(RESIGNED) for step in self.steps)

    def __str__(self):
        return "seed %d case %d (%s)" % (self.seed, self.index, "; ".join(self.steps) or "unchanged")


def write_base(workdir, dumps, files, directories=()):
    """Write the known backup with ``archive.write_archive``: ``dumps`` {database: bytes} (``db`` first) and a
    file store of ``files`` {relative path: bytes} plus the empty ``directories``."""
    store = os.path.join(workdir, "store")
    os.makedirs(store)
    for rel in directories:
        os.makedirs(os.path.join(store, rel), exist_ok=True)
    for rel, content in files.items():
        path = os.path.join(store, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
        os.chmod(path, 0o644)  # not the umask's: the same bytes on every machine
    for directory, dirs, _files in os.walk(store):
        os.chmod(directory, 0o755)
    databases = []
    for name, content in dumps.items():
        path = os.path.join(workdir, name + ".backup")
        with open(path, "wb") as handle:
            handle.write(content)
        os.chmod(path, 0o600)
        databases.append((name, path))
    buffer = io.BytesIO()
    size = sum(map(len, files.values()))
    metadata = archive.mendix_metadata(1, len(dumps["db"]), "1.0.0.1", len(dumps["db"]), size)
    archive.write_archive(buffer, manifest=MANIFEST, metadata=metadata, databases=databases, files_path=store)
    tar = _pinned(buffer.getvalue())
    parents = {os.path.dirname(rel) for rel in files} | set(directories)
    every = {"/".join(rel.split("/")[: depth + 1]) for rel in parents if rel for depth in range(rel.count("/") + 1)}
    return Base(tar, dict(dumps), dict(files), frozenset(every))


def _pinned(data):
    """``data`` with one fixed time in every member's header: write_archive stamps members with the time of the
    run, and a case must be the same bytes on every run."""
    pinned = bytearray(data)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            block = pinned[info.offset_data - BLOCK:info.offset_data]
            block[136:148] = b"%011o\0" % MTIME
            _fix_checksum(block)
            pinned[info.offset_data - BLOCK:info.offset_data] = block
    return bytes(pinned)


Carried = collections.namedtuple("Carried", "manifest dumps files directories tree")


def carried(data):
    """What the members of archive ``data`` (tar or tar.gz) carry, read by tarfile itself: whether it has a
    manifest, its dumps {database: bytes}, its file store's files {path: bytes} and directories, and whether it has
    a file store at all. A read that found no manifest could check nothing, and must give exactly this."""
    manifest, tree = False, False
    dumps, files, directories = {}, {}, set()
    with tarfile.open(fileobj=io.BytesIO(gunzip(data)), mode="r|") as tar:
        for info in tar:
            name = info.name
            while name.startswith("./"):
                name = name[2:]
            parts = name.split("/")
            manifest = manifest or name == archive.MANIFEST_NAME
            tree = tree or parts[0] == "tree"
            if parts[0] == "tree" and len(parts) > 1:
                directories.update("/".join(parts[1:depth]) for depth in range(2, len(parts)))
                if info.isdir():
                    directories.add("/".join(parts[1:]))
                elif info.isreg():
                    files["/".join(parts[1:])] = tar.extractfile(info).read()
            elif parts[0] == "db" and len(parts) == 2 and info.isreg():
                dumps[parts[1][: -len(".backup")]] = tar.extractfile(info).read()
    return Carried(manifest, dumps, files, directories, tree)


def gunzip(data):
    """The tar inside ``data``: gunzipped once when it starts as gzip, as the reader does."""
    if not data.startswith(archive.GZIP_MAGIC):
        return data
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        return stream.read()


def innermost(exc):
    """An exception with the two innermost frames of its traceback, indented for a failure list."""
    return "".join(traceback.format_exception(exc)[-3:]).rstrip().replace("\n", "\n    ")


# ---------------------------------------------------------------------------------------------- cases


def mutate(base, index, seed=SEED):
    """Case ``index``: a change to the members (types, names, sizes, manifest...), to the bytes, or both;
    gzip-wrapped a third of the time, and then perhaps damaged again."""
    rng = random.Random("%d:%d" % (seed, index))
    steps = []
    entries = [(_clone(info), data) for info, data in base.members]
    plan = rng.random()
    if plan < 0.6:
        operation = rng.choice(_STRUCTURE)
        entries = operation(rng, entries, base, steps)
    if isinstance(entries, tuple):  # an operation that had to write the stream itself: (bytes, tar bytes carried)
        return Case(seed, index, tuple(steps), *entries)
    data, headers = serialise(entries)
    if 0.45 <= plan < 0.97:  # the rest: only gzip, or the known backup itself
        for dummy in range(rng.choice((1, 1, 1, 2, 3))):
            if data:
                data = rng.choice(_BYTES)(rng, bytearray(data), headers, steps)
    carried = len(data)
    if rng.random() < 0.35:
        data = _gzip(rng, data, steps)
        if rng.random() < 0.5 and data:
            data = rng.choice(_GZIP_DAMAGE)(rng, bytearray(data), steps)
    return Case(seed, index, tuple(steps), bytes(data), carried)


def serialise(entries):
    """Tar bytes of ``entries`` ((TarInfo, data or None), or raw bytes) and the offsets of their header blocks.

    Each member's header declares ``info.size`` whatever the length of its data: sizes may lie.
    """
    out = bytearray()
    headers = []
    for entry in entries:
        if isinstance(entry, bytes):
            headers.append(len(out))
            out += entry
            continue
        info, data = entry
        buf = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        headers.extend(range(len(out), len(out) + len(buf), BLOCK) if len(buf) > BLOCK else [len(out)])
        out += buf
        if data:
            out += data + bytes(-len(data) % BLOCK)
    out += bytes(2 * BLOCK)
    return bytes(out), headers


def _clone(info):
    clone = copy.copy(info)
    clone.pax_headers = dict(info.pax_headers)
    return clone


def _name(rng, entries):
    """A name from the hostile list, an existing member's name, or one with a byte changed."""
    choice = rng.random()
    if choice < 0.6:
        return rng.choice(NAMES)
    existing = rng.choice([info.name for info, _data in _members(entries)])
    if choice < 0.8 or not existing:
        return existing
    position = rng.randrange(len(existing))
    return existing[:position] + chr(rng.choice((0x2F, 0x2E, 0x00, 0x0A, 0x5C, 0xDC00 + rng.randrange(0x80, 0x100)))) \
        + existing[position + 1:]


def _members(entries):
    return [entry for entry in entries if not isinstance(entry, bytes)]


def _pick(rng, entries):
    """The position of a random member."""
    return rng.choice([i for i, entry in enumerate(entries) if not isinstance(entry, bytes)])


def _find(entries, name):
    return next(i for i, entry in enumerate(entries) if not isinstance(entry, bytes) and entry[0].name == name)


# --- changes to the members -----------------------------------------------------------------------


def _add(rng, entries, base, steps):
    kind = rng.choice(TYPES)
    info = tarfile.TarInfo(_name(rng, entries))
    info.type = kind
    info.mode = rng.choice((0o644, 0o755, 0o7777, 0o4755, 0))
    info.mtime = MTIME
    data = None
    if kind in (tarfile.LNKTYPE, tarfile.SYMTYPE):
        info.linkname = rng.choice(LINK_TARGETS)
    elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    elif kind != tarfile.DIRTYPE and kind != tarfile.FIFOTYPE:
        data = rng.choice((b"", b"hello\n", rng.randbytes(rng.randrange(1, 3000)), b"path=../x\n" * 3))
        info.size = len(data)
    entries.insert(rng.randrange(len(entries) + 1), (info, data))
    steps.append("add %s member %r (%d bytes)" % (kind, info.name, info.size))
    return entries


def _rename(rng, entries, base, steps):
    position = _pick(rng, entries)
    info = entries[position][0]
    old, info.name = info.name, _name(rng, entries)
    info.pax_headers.pop("path", None)
    steps.append("rename %r to %r" % (old, info.name))
    return entries


def _retype(rng, entries, base, steps):
    info = entries[_pick(rng, entries)][0]
    old, info.type = info.type, rng.choice(TYPES)
    if info.type in (tarfile.LNKTYPE, tarfile.SYMTYPE):
        info.linkname = rng.choice(LINK_TARGETS)
    steps.append("retype %r from %s to %s" % (info.name, old, info.type))
    return entries


def _duplicate(rng, entries, base, steps):
    info, data = entries[_pick(rng, entries)]
    other = bool(data) and rng.random() < 0.5
    entries.insert(rng.randrange(len(entries) + 1), (_clone(info), data[::-1] if other else data))
    steps.append("duplicate %r%s" % (info.name, " with other content" if other else ""))
    return entries


def _drop(rng, entries, base, steps):
    info, _data = entries.pop(_pick(rng, entries))
    steps.append("drop %r" % info.name)
    return entries


def _move(rng, entries, base, steps):
    entry = entries.pop(_pick(rng, entries))
    entries.insert(rng.randrange(len(entries) + 1), entry)
    steps.append("move %r" % entry[0].name)
    return entries


def _resize(rng, entries, base, steps):
    """Declare another size than the data has: huge, negative-looking, or off by a little."""
    info = entries[_pick(rng, entries)][0]
    old = info.size
    info.size = rng.choice((0, 1, old + 1, max(old - 1, 0), old + BLOCK, 1 << 33, 1 << 40, 8 ** 11 - 1))
    steps.append("declare %r as %d bytes (has %d)" % (info.name, info.size, old))
    return entries


def _modes(rng, entries, base, steps):
    """Owner, mode and time fields that a careful reader must not take over."""
    info = entries[_pick(rng, entries)][0]
    info.mode = rng.choice((0o7777, 0o6755, 0o1777, 0o777, 0, 0o400))
    info.uid = info.gid = rng.choice((0, 65534, 2 ** 21 - 1, 2 ** 40))
    info.mtime = rng.choice((0, -1, 2 ** 33, 1.5))
    steps.append("mode %o, owner %d, mtime %r on %r" % (info.mode, info.uid, info.mtime, info.name))
    return entries


def _sparse(rng, entries, base, steps):
    """A sparse member declaring SPARSE_SIZE bytes, as old GNU, pax 0.1 or pax 1.0 sparse; sometimes with a
    map that does not parse."""
    name = rng.choice(("tree/holes.bin", "tree/readme.txt", "db/db.backup", "lifeboat.json", "tree/a/holes"))
    style = rng.choice(("gnu", "pax-0.1", "pax-1.0"))
    broken = rng.random() < 0.3
    data = b"x" * 10
    if style == "gnu":
        entry = _gnu_sparse(name, data, "x" if broken else None)
    else:
        info = tarfile.TarInfo(name)
        info.mode = 0o644
        if style == "pax-0.1":
            info.pax_headers = {"GNU.sparse.size": str(SPARSE_SIZE), "GNU.sparse.map": "0,10" if not broken else "0,x",
                                "GNU.sparse.name": name}
        else:
            info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                                "GNU.sparse.realsize": str(SPARSE_SIZE)}
            data = (b"1\n0\n10\n" if not broken else b"1\nzero\n10\n").ljust(BLOCK, b"\0") + data
        info.size = len(data)
        entry = (info, data)
    entries.insert(rng.randrange(len(entries) + 1), entry)
    steps.append("add %s sparse member %r declaring %d bytes%s" % (style, name, SPARSE_SIZE,
                                                                   " with a broken map" if broken else ""))
    return entries


def _gnu_sparse(name, data, broken_offset):
    """Raw old-GNU sparse header ('S'): one data extent of ``data`` at offset 0, real size SPARSE_SIZE."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = len(data)
    info.mode = 0o644
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT)[-BLOCK:])
    block[386:398] = b"%011o\0" % 0 if broken_offset is None else broken_offset.encode().ljust(12, b"\0")
    block[398:410] = b"%011o\0" % len(data)
    block[483:495] = b"%011o\0" % SPARSE_SIZE
    _fix_checksum(block)
    return bytes(block) + data + bytes(-len(data) % BLOCK)


def _manifest(rng, entries, base, steps):
    """Change lifeboat.json: a value, a key, its text, its size or its depth."""
    position = _find(entries, archive.MANIFEST_NAME)
    info, data = entries[position]
    change = rng.choices(*zip(*_MANIFEST_CHANGES))[0]
    text = change(rng, json.loads(data), data, steps)
    if isinstance(text, list):  # a padded manifest: written as gzip members, see _padded
        return _padded(entries, position, text, steps)
    info.size = len(text)
    entries[position] = (info, text)
    return entries


def _set_value(rng, manifest, raw, steps):
    holder, key = _somewhere(rng, manifest)
    holder[key] = rng.choice(JSON_VALUES)
    steps.append("manifest: %s = %r" % (key, holder[key]))
    return _dump(manifest)


def _delete_key(rng, manifest, raw, steps):
    holder, key = _somewhere(rng, manifest)
    if isinstance(holder, list):
        del holder[key]
    else:
        holder.pop(key)
    steps.append("manifest: delete %r" % (key,))
    return _dump(manifest)


def _somewhere(rng, manifest):
    """(container, key) of a random place in the manifest: top level, a database, the file list, an entry."""
    files = manifest["files"]
    holder = rng.choice([manifest, manifest, manifest["databases"][0], manifest["databases"], files, files["entries"],
                         rng.choice(files["entries"]), files["directories"]])
    return holder, rng.choice(range(len(holder)) if isinstance(holder, list) else sorted(holder))


def _extra_key(rng, manifest, raw, steps):
    manifest[rng.choice(("unknown", "projects", "files_extra"))] = rng.choice(
        ([{"path": "/etc/shadow"}], "x" * 1000, {"nested": [1, 2, 3]}))
    steps.append("manifest: add unknown key")
    return _dump(manifest)


def _format_version(rng, manifest, raw, steps):
    manifest["format_version"] = rng.choice((0, 2, 999, "1", 1.0, True, None, -1))
    steps.append("manifest: format_version %r" % (manifest["format_version"],))
    return _dump(manifest)


def _listed_twice(rng, manifest, raw, steps):
    """A file or database listed twice, or a name that escapes, with its real size and checksum."""
    entries = manifest["files"]["entries"]
    entry = dict(rng.choice(entries))
    entry["path"] = rng.choice((entry["path"], "../" + entry["path"], "/" + entry["path"], entry["path"] + "/"))
    entries.append(entry)
    steps.append("manifest: list file %r again" % entry["path"])
    return _dump(manifest)


def _text(rng, manifest, raw, steps):
    """Damage to the JSON text itself."""
    change = rng.choice(("truncate", "flip", "bom", "latin-1", "array", "string", "nan", "duplicate-key"))
    steps.append("manifest text: %s" % change)
    if change == "truncate":
        return raw[: rng.randrange(len(raw))]
    if change == "flip":
        position = rng.randrange(len(raw))
        return raw[:position] + bytes([raw[position] ^ rng.randrange(1, 256)]) + raw[position + 1:]
    if change == "bom":
        return b"\xef\xbb\xbf" + raw
    if change == "latin-1":
        return raw.replace(b'"fuzz"', b'"f\xfcz"')
    if change == "array":
        return b"[" + raw + b"]"
    if change == "string":
        return json.dumps(raw.decode()).encode()
    if change == "nan":
        return raw.replace(b'"comment": ""', b'"comment": NaN')
    return raw.replace(b'"format": ', b'"format": "other", "format": ')


def _deep(rng, manifest, raw, steps):
    depth = rng.choice((1000, 100000))
    steps.append("manifest: nested %d deep" % depth)
    return (b'{"a":' * depth) + b"1" + (b"}" * depth) if rng.random() < 0.5 else b"[" * depth + b"]" * depth


def _pad(rng, manifest, raw, steps):
    """Hundreds of MiB of white space inside the manifest: a few hundred KiB of gzip."""
    mib = 200  # beyond any sane cap, below the 256 MiB one of the first release
    steps.append("manifest: %d MiB of white space inside (gzip)" % mib)
    return [raw[:1], mib, raw[1:]]


def _padded(entries, position, text, steps):
    """(gzip bytes, tar bytes) of the archive with ``text`` = [head, MiB of spaces, tail] as the manifest,
    compressed in gzip members so that the spaces are never held in memory here."""
    head, mib, tail = text
    info = entries[position][0]
    info.size = len(head) + mib * MIB + len(tail)
    before, _headers = serialise(entries[:position] + [(info, None)])
    before = before[: -2 * BLOCK] + head
    after = tail + bytes(-info.size % BLOCK) + bytes(2 * BLOCK)
    steps.append("gzip")
    data = gzip.compress(before, mtime=0) + _spaces() * mib + gzip.compress(after, mtime=0)
    return data, len(before) + mib * MIB + len(after)


@functools.lru_cache(maxsize=1)
def _spaces():
    return gzip.compress(b" " * MIB, mtime=0)


def _metadata(rng, entries, base, steps):
    """Change .metadata; with its checksum updated in the manifest or the manifest dropped, only its parsing
    can catch it."""
    position = _find(entries, archive.METADATA_NAME)
    info = entries[position][0]
    text = rng.choice((b"[]", b"not json", b"\xff\xfe", b"[" * 100000 + b"]" * 100000, b'{"a": ' * 3000 + b"1" +
                       b"}" * 3000, b'{"duration": "1"}', b""))
    info.size = len(text)
    entries[position] = (info, text)
    manifest_at = _find(entries, archive.MANIFEST_NAME)
    if rng.random() < 0.5:
        entries.pop(manifest_at)
        steps.append("metadata %r..., manifest dropped" % text[:12])
    else:
        manifest_info, raw = entries[manifest_at]
        manifest = json.loads(raw)
        manifest["metadata_sha256"] = hashlib.sha256(text).hexdigest()
        raw = _dump(manifest)
        manifest_info.size = len(raw)
        entries[manifest_at] = (manifest_info, raw)
        steps.append("metadata %r..., checksum updated" % text[:12])
    return entries


def _resign(rng, entries, base, steps):
    """Change a dump or a file (damage it, cut it, swap it for another kind of file) and make the manifest match:
    a valid archive of other data, which may only fail where the data itself is checked (a database that does not
    open) and must otherwise give exactly what it carries."""
    top = rng.choice(("db", "tree"))  # half the time a dump: a restore must open it, and may fail there
    position = rng.choice([i for i, entry in enumerate(entries) if not isinstance(entry, bytes) and entry[1]
                           and entry[0].name.split("/")[0] == top])
    info, data = entries[position]
    change = rng.choice(("flip", "truncate", "replace"))
    if change == "flip":
        at = rng.randrange(len(data))
        data = data[:at] + bytes([data[at] ^ rng.randrange(1, 256)]) + data[at + 1:]
    elif change == "truncate":
        data = data[: rng.randrange(len(data))]
    else:
        data = rng.choice((b"PGDMP" + bytes(100), b"SQLite format 3\0" + bytes(84), b"not a database\n"))
    info.size = len(data)
    entries[position] = (info, data)
    manifest_at = _find(entries, archive.MANIFEST_NAME)
    manifest_info, raw = entries[manifest_at]
    manifest = json.loads(raw)
    members = [(item["member"], item) for item in manifest["databases"]]
    members += [("tree/" + item["path"], item) for item in manifest["files"]["entries"]]
    for member, item in members:
        if member == info.name:
            item.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    raw = _dump(manifest)
    manifest_info.size = len(raw)
    entries[manifest_at] = (manifest_info, raw)
    steps.append("%s%s %r" % (RESIGNED, change, info.name))
    return entries


def _listed_non_utf8(rng, entries, base, steps):
    """A file whose name is not UTF-8, listed in the manifest with its real size and checksum: only a rule against
    such names can refuse it (a later backup could not store it)."""
    name = rng.choice(("caf\udce9.txt", "\udcff/inside.txt", "a/\udcfe\udcff"))
    data = b"non-UTF-8 name\n"
    info = tarfile.TarInfo("tree/" + name)
    info.size = len(data)
    info.mode = 0o644
    manifest_at = _find(entries, archive.MANIFEST_NAME)
    manifest_info, raw = entries[manifest_at]
    manifest = json.loads(raw)
    manifest["files"]["entries"].append({"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    added = [(info, data)]
    parent = os.path.dirname(name)
    if parent and parent not in base.directories:
        manifest["files"]["directories"].append(parent)
        added.insert(0, (_directory("tree/" + parent), None))
    raw = _dump(manifest)
    manifest_info.size = len(raw)
    entries[manifest_at:manifest_at + 1] = added + [(manifest_info, raw)]
    steps.append("add file %r listed in the manifest" % name)
    return entries


def _directory(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


def _dump(manifest):
    # ensure_ascii: surrogate escapes (non-UTF-8 names) survive as \udcXX.
    return json.dumps(manifest, indent=2, sort_keys=True).encode("ascii") + b"\n"


# (change, weight): _pad is costly and one kind of case, so rare.
_MANIFEST_CHANGES = ((_set_value, 12), (_delete_key, 6), (_text, 10), (_extra_key, 2), (_format_version, 2),
                     (_listed_twice, 3), (_deep, 3), (_pad, 1))
_STRUCTURE = (_add, _add, _add, _rename, _rename, _retype, _retype, _duplicate, _drop, _move, _resize, _resize,
              _modes, _sparse, _manifest, _manifest, _manifest, _metadata, _listed_non_utf8, _resign, _resign)


# --- changes to the bytes -------------------------------------------------------------------------


def _header(rng, data, headers):
    """The offset of a header block still in ``data`` (an earlier change may have cut or shifted it)."""
    return rng.choice([at for at in headers if at < len(data)] or [0])


def _flip(rng, data, headers, steps):
    count = rng.randint(1, 4)
    in_header = rng.random() < 0.5
    for dummy in range(count):
        position = _header(rng, data, headers) + rng.randrange(BLOCK) if in_header else rng.randrange(len(data))
        position = min(position, len(data) - 1)
        data[position] ^= rng.randrange(1, 256)
    steps.append("flip %d byte(s)%s" % (count, " in headers" if in_header else ""))
    return bytes(data)


def _truncate(rng, data, headers, steps):
    end = rng.choice((rng.randrange(len(data)), rng.randrange(len(data) // BLOCK) * BLOCK, len(data) - BLOCK))
    steps.append("truncate to %d of %d bytes" % (end, len(data)))
    return bytes(data[:end])


def _cut(rng, data, headers, steps):
    start = rng.choice((rng.randrange(len(data)), _header(rng, data, headers)))
    length = rng.choice((1, BLOCK, rng.randrange(1, 4 * BLOCK), rng.randrange(1, len(data) - start + 1)))
    steps.append("cut %d bytes at %d" % (length, start))
    return bytes(data[:start] + data[start + length:])


def _repeat(rng, data, headers, steps):
    start = _header(rng, data, headers)
    length = rng.choice((BLOCK, 2 * BLOCK, rng.randrange(1, 8 * BLOCK)))
    at = _header(rng, data, headers)
    steps.append("repeat %d bytes from %d at %d" % (length, start, at))
    return bytes(data[:at] + data[start:start + length] + data[at:])


def _splice(rng, data, headers, steps):
    """One member's header block over another's."""
    source, target = _header(rng, data, headers), _header(rng, data, headers)
    data[target:target + BLOCK] = data[source:source + BLOCK]
    steps.append("copy header block %d over %d" % (source, target))
    return bytes(data)


def _edit_header(rng, data, headers, steps):
    """A header field set to a hostile value, with a valid checksum: past tarfile's first check."""
    at = _header(rng, data, headers)
    field = rng.choice(sorted(FIELDS))
    offset, length = FIELDS[field]
    value = rng.choice((
        b"7" * (length - 1) + b"\0", b"\x80" + bytes(max(length - 2, 0)) + b"\x01", b"\xff" * length, b" " * length,
        b"-1\0", b"0x10\0", rng.randbytes(length), rng.choice(NAMES).encode("utf-8", "surrogateescape"),
        rng.choice(TYPES), b"ustar\x0000", b"ustar  \0", b"\0",
    ))[:length].ljust(length, b"\0")
    block = data[at:at + BLOCK]
    if len(block) < BLOCK:
        return bytes(data)
    block[offset:offset + length] = value
    _fix_checksum(block)
    data[at:at + BLOCK] = block
    steps.append("set header %s at %d to %r" % (field, at, bytes(value.rstrip(b"\0"))[:24]))
    return bytes(data)


def _fix_checksum(block):
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)


def _insert(rng, data, headers, steps):
    at = rng.choice((rng.randrange(len(data)), _header(rng, data, headers)))
    extra = rng.choice((bytes(BLOCK), bytes(2 * BLOCK), rng.randbytes(rng.randrange(1, 2000)), b"PGDMP"))
    steps.append("insert %d bytes at %d" % (len(extra), at))
    return bytes(data[:at] + extra + data[at:])


def _append(rng, data, headers, steps):
    extra = rng.choice((rng.randbytes(100), bytes(BLOCK * 20), serialise(
        [(_directory("tree/after-the-end"), None)])[0]))
    steps.append("append %d bytes after the end" % len(extra))
    return bytes(data) + extra


_BYTES = (_flip, _flip, _flip, _truncate, _truncate, _cut, _repeat, _splice, _edit_header, _edit_header,
          _edit_header, _insert, _append)


# --- gzip -----------------------------------------------------------------------------------------


def _gzip(rng, data, steps):
    style = rng.choice(("plain", "plain", "members", "named", "twice"))
    steps.append("gzip (%s)" % style)
    if style == "members":  # a valid multi-member gzip: readers must join the members
        cut = rng.randrange(len(data))
        return gzip.compress(data[:cut], 1, mtime=0) + gzip.compress(data[cut:], 1, mtime=0)
    if style == "named":
        buffer = io.BytesIO()
        with gzip.GzipFile(filename="backup.tar", mode="wb", compresslevel=1, fileobj=buffer, mtime=1) as handle:
            handle.write(data)
        return buffer.getvalue()
    compressed = gzip.compress(data, 1, mtime=0)
    return gzip.compress(compressed, mtime=0) if style == "twice" else compressed


def _gzip_flip(rng, data, steps):
    position = rng.randrange(len(data))
    data[position] ^= rng.randrange(1, 256)
    steps.append("flip gzip byte %d of %d" % (position, len(data)))
    return bytes(data)


def _gzip_truncate(rng, data, steps):
    end = rng.choice((rng.randrange(len(data)), len(data) - 4, len(data) - 8))
    steps.append("truncate gzip to %d of %d bytes" % (end, len(data)))
    return bytes(data[:end])


def _gzip_trailer(rng, data, steps):
    extra = rng.choice((rng.randbytes(64), bytes(1024), b"\x1f\x8b" + rng.randbytes(30), gzip.compress(b"x", mtime=0)))
    steps.append("append %d bytes after the gzip stream" % len(extra))
    return bytes(data) + extra


_GZIP_DAMAGE = (_gzip_flip, _gzip_flip, _gzip_truncate, _gzip_trailer)


# ---------------------------------------------------------------------------------------------- budget


class Budget:
    """What one case spends: Python heap and bytes written, measured around it.

    Heap: tracemalloc's peak over the case (tarfile, gzip and json allocate on the Python heap); tracing runs only
    during the case, as it slows everything else down. Disk: every byte written goes through write(2), which the
    kernel counts in /proc/self/io "wchar" (files removed again still count). RLIMIT_FSIZE stops a runaway writer
    at twice the disk limit per file (EFBIG, SIGXFSZ ignored) so that a failing case cannot fill the disk; what it
    wrote up to there is still counted, and over the limit.
    """

    def __init__(self, memory, disk):
        self.memory_limit = memory
        self.disk_limit = disk
        self.memory = self.written = None
        self._limited = self._was_tracing = False
        self._rlimit = self._signal = None
        self._heap = self._wchar = 0

    def __enter__(self):
        # Only the main thread can ignore SIGXFSZ; elsewhere (some pytest-xdist versions) there is no safety net.
        self._limited = threading.current_thread() is threading.main_thread()
        if self._limited:
            self._rlimit = resource.getrlimit(resource.RLIMIT_FSIZE)
            self._signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (2 * self.disk_limit, self._rlimit[1]))
        self._was_tracing = tracemalloc.is_tracing()
        if not self._was_tracing:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._heap = tracemalloc.get_traced_memory()[0]
        self._wchar = _wchar()
        return self

    def __exit__(self, *exc_info):
        self.written = _wchar() - self._wchar
        self.memory = tracemalloc.get_traced_memory()[1] - self._heap
        if not self._was_tracing:
            tracemalloc.stop()
        if self._limited:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._rlimit)
            signal.signal(signal.SIGXFSZ, self._signal)

    def problems(self):
        found = []
        if self.memory > self.memory_limit:
            found.append("used %d bytes of Python heap, more than the %d allowed" % (self.memory, self.memory_limit))
        if self.written > self.disk_limit:
            found.append("wrote %d bytes, more than the %d allowed" % (self.written, self.disk_limit))
        return found


def _wchar():
    with open("/proc/self/io", "rb") as handle:
        for line in handle:
            if line.startswith(b"wchar:"):
                return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line")
