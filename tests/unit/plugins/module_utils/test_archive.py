# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import tarfile
import threading
import types

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive, common
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import SUFFIXES
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError

DUMP = b"PGDMP" + bytes(range(256)) * 64
BIG = os.urandom(1024 * 1024 + 17)  # more than one read chunk
MANIFEST = {
    "backup_id": "20250101T000000Z-abcdef",
    "label": "before-upgrade",
    "comment": "",
    "created_at": "2025-01-01T00:00:00Z",
    "environment": "prod",
    "engine": "postgresql",
    "server_version": "16.4",
    "tool_version": "16.4",
    "structure_version": "1.2.3",
}
METADATA = archive.mendix_metadata(3.4, len(DUMP), "1.0.0.40", 9730584, 1346575)
needs_tar = pytest.mark.skipif(shutil.which("tar") is None, reason="needs the tar command")


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def dump(tmp_path):
    path = tmp_path / "dump.backup"
    path.write_bytes(DUMP)
    return str(path)


@pytest.fixture
def store(tmp_path):
    """A file store with nesting, non-ASCII names, empty files and directories, and things to skip."""
    root = tmp_path / "store"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.txt").write_bytes(b"nested\n")
    (root / "ünïcødé").mkdir()
    (root / "ünïcødé" / "файл €.txt").write_bytes("привет".encode("utf-8"))
    (root / "empty.bin").write_bytes(b"")
    (root / "empty_dir").mkdir()
    (root / "big.bin").write_bytes(BIG)
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "private").write_bytes(b"secret")
    (root / "private").chmod(0o600)
    (root / "link").symlink_to("a/b/c.txt")
    os.mkfifo(root / "fifo")
    root.chmod(0o750)
    return str(root)


def snapshot(root):
    """{relative path: (kind, mode, content)} of the directories and regular files below ``root``."""
    found = {"": ("dir", stat.S_IMODE(os.stat(root).st_mode), None)}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir", stat.S_IMODE(info.st_mode), None)
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    found[rel] = ("file", stat.S_IMODE(info.st_mode), handle.read())
    return found


def write(path, via="file", **kwargs):
    """Write an archive to ``path``, directly or through a pipe (a stream without seek or tell)."""
    kwargs.setdefault("manifest", MANIFEST)
    kwargs.setdefault("metadata", METADATA)
    kwargs.setdefault("compression", "none")
    if via == "file":
        with open(path, "wb") as handle:
            return archive.write_archive(handle, **kwargs)
    read_end, write_end = os.pipe()

    def consume():
        with os.fdopen(read_end, "rb") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        with os.fdopen(write_end, "wb") as sink:
            return archive.write_archive(sink, **kwargs)
    finally:
        thread.join()


def read_path(path, **kwargs):
    """read_archive on the file at ``path``, named by it."""
    with open(path, "rb") as handle:
        return archive.read_archive(handle, name=path, **kwargs)


def read(path, via="file", **kwargs):
    """Read an archive from ``path``, directly or through a pipe."""
    if via == "file":
        return read_path(path, **kwargs)
    read_end, write_end = os.pipe()

    def feed():
        try:
            with open(path, "rb") as source, os.fdopen(write_end, "wb") as target:
                shutil.copyfileobj(source, target)
        except BrokenPipeError:  # the reader gave up early
            pass

    thread = threading.Thread(target=feed)
    thread.start()
    try:
        with os.fdopen(read_end, "rb") as source:
            return archive.read_archive(source, name=path, **kwargs)
    finally:
        thread.join()


def member(name, data=b"", kind=tarfile.REGTYPE, **attributes):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attributes.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


def build_tar(path, members, compression="none"):
    with tarfile.open(path, "w:gz" if compression == "gzip" else "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def repack(source, target, transform):
    """Copy a plain tar member by member; ``transform(info, data)`` returns a list of (info, data)."""
    copied = []
    with tarfile.open(source) as tar:
        for info in tar.getmembers():
            data = tar.extractfile(info).read() if info.isreg() else None
            copied.extend(transform(info, data))
    return build_tar(target, copied)


def targets(tmp_path):
    return {"db_dir": str(tmp_path / "work" / "db"), "tree_dir": str(tmp_path / "work" / "tree")}


def assert_nothing_extracted(tmp_path):
    assert os.listdir(tmp_path / "work" / "db") == []
    assert not (tmp_path / "work" / "tree").exists()


# ---------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("via", ["file", "pipe"])
def test_round_trip(tmp_path, dump, store, compression, via):
    path = str(tmp_path / ("backup" + archive.suffix_for(compression, False)))
    manifest, warnings = write(path, via, databases=[("db", dump)], files_path=store, compression=compression)

    assert sorted(warnings) == [
        "skipped %s/fifo: fifo; only regular files and directories are backed up" % store,
        "skipped %s/link: symbolic link; only regular files and directories are backed up" % store,
    ]
    assert manifest["format"] == "lifeboat-archive" and manifest["format_version"] == archive.FORMAT_VERSION
    assert {key: manifest[key] for key in MANIFEST} == MANIFEST
    assert manifest["databases"] == [
        {"name": "db", "member": "db/db.backup", "size": len(DUMP), "sha256": hashlib.sha256(DUMP).hexdigest()}
    ]
    expected = {rel: item for rel, item in snapshot(store).items() if rel not in ("link", "fifo")}
    files = {rel: content for rel, (kind, _mode, content) in expected.items() if kind == "file"}
    assert manifest["files"]["count"] == len(files) == 6
    assert manifest["files"]["size"] == sum(len(content) for content in files.values())
    assert {entry["path"]: entry["sha256"] for entry in manifest["files"]["entries"]} == {
        rel: hashlib.sha256(content).hexdigest() for rel, content in files.items()
    }

    contents = read(path, via, **targets(tmp_path))

    assert contents.kind == "lifeboat"
    assert contents.manifest == manifest
    assert contents.metadata == METADATA
    assert contents.databases == {"db": targets(tmp_path)["db_dir"] + "/db.backup"}
    assert pathlib.Path(contents.databases["db"]).read_bytes() == DUMP
    assert contents.tree == targets(tmp_path)["tree_dir"]
    assert snapshot(contents.tree) == expected
    assert contents.files == (manifest["files"]["count"], manifest["files"]["size"])
    assert archive.detect_kind(path) == "lifeboat"


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_layout_is_a_mendix_snapshot_with_the_manifest_last(tmp_path, dump, store, compression):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump), ("linked", dump)], files_path=store, compression=compression)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [info.name for info in members]
    assert names[:4] == [".metadata", "db", "db/db.backup", "db/linked.backup"]
    assert names[-1] == "lifeboat.json"
    assert "tree/a/b/c.txt" in names and "tree/link" not in names and "tree/fifo" not in names
    assert {(info.uid, info.gid, info.uname, info.gname) for info in members} == {(0, 0, "", "")}
    with tarfile.open(path) as tar:
        assert json.loads(tar.extractfile(".metadata").read()) == METADATA
    assert all(isinstance(value, str) for value in METADATA.values())


@needs_tar
def test_gnu_tar_opens_it_by_hand(tmp_path, dump, store):
    path = str(tmp_path / "backup.tar.gz")
    write(path, databases=[("db", dump)], files_path=store, compression="gzip")
    (tmp_path / "by-hand").mkdir()
    subprocess.run(["tar", "-xzf", path, "-C", str(tmp_path / "by-hand")], check=True)
    assert (tmp_path / "by-hand" / "db" / "db.backup").read_bytes() == DUMP
    assert (tmp_path / "by-hand" / "tree" / "ünïcødé" / "файл €.txt").read_bytes() == "привет".encode("utf-8")
    assert json.loads((tmp_path / "by-hand" / "lifeboat.json").read_text())["backup_id"] == MANIFEST["backup_id"]


def test_linked_databases_and_no_file_store(tmp_path, dump):
    other = tmp_path / "other.backup"
    other.write_bytes(b"PGDMP other")
    path = str(tmp_path / "backup.tar")
    manifest, warnings = write(path, databases=[("linked_2", str(other)), ("db", dump)], files_path=None)
    assert warnings == [] and manifest["files"] is None
    assert [item["member"] for item in manifest["databases"]] == ["db/db.backup", "db/linked_2.backup"]

    contents = read_path(path, **targets(tmp_path))
    assert contents.tree is None and contents.files == (0, 0)
    assert not (tmp_path / "work" / "tree").exists()
    assert pathlib.Path(contents.databases["linked_2"]).read_bytes() == b"PGDMP other"


def test_file_store_skipped_on_read_is_still_verified(tmp_path, dump, store):
    good = str(tmp_path / "good.tar")
    manifest, _warnings = write(good, databases=[("db", dump)], files_path=store)
    contents = read_path(good, db_dir=str(tmp_path / "work" / "db"), tree_dir=None)
    assert contents.tree is None and contents.files == (manifest["files"]["count"], manifest["files"]["size"])

    def change(info, data):
        return [(info, b"NESTED\n" if info.name == "tree/a/b/c.txt" else data)]

    bad = repack(good, tmp_path / "bad.tar", change)
    with pytest.raises(LifeboatError, match=r"truncated or corrupt: member tree/a/b/c.txt has 7 bytes and SHA-256"):
        read_path(bad, db_dir=str(tmp_path / "work" / "db2"), tree_dir=None)
    assert os.listdir(tmp_path / "work" / "db2") == []


def test_empty_file_store_gives_an_empty_directory(tmp_path, dump):
    (tmp_path / "store").mkdir(mode=0o711)
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=str(tmp_path / "store"))
    contents = read_path(path, **targets(tmp_path))
    assert contents.files == (0, 0)
    assert os.listdir(contents.tree) == [] and stat.S_IMODE(os.stat(contents.tree).st_mode) == 0o711


# ------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda dump: {"compression": "zstd"}, LifeboatError, "unknown compression 'zstd'"),
        (lambda dump: {"databases": [("linked", dump)]}, ValueError, "must name 'db'"),
        (lambda dump: {"databases": [("db", dump), ("db", dump)]}, ValueError, "must name 'db'"),
        (lambda dump: {"databases": [("db", dump), ("../x", dump)]}, LifeboatError, "invalid database name"),
        (lambda dump: {"databases": [("db", "/nonexistent/dump")]}, LifeboatError, "/nonexistent/dump vanished"),
        (lambda dump: {"files_path": "/nonexistent"}, LifeboatError, "cannot read the file store /nonexistent"),
        (lambda dump: {"files_path": dump}, LifeboatError, "is not a directory"),
        # Files whose size is not what stat says: real stand-ins for files changed while being archived.
        (lambda dump: {"databases": [("db", "/proc/self/status")]}, LifeboatError, "/proc/self/status grew while"),
        (lambda dump: {"databases": [("db", "/sys/kernel/uevent_seqnum")]}, LifeboatError, "seqnum shrank while"),
    ],
)
def test_write_refuses(tmp_path, dump, change, error, message):
    kwargs = {"databases": [("db", dump)], "files_path": None}
    kwargs.update(change(dump))
    special = [path for _name, path in kwargs["databases"] if path.startswith(("/proc/", "/sys/"))]
    if special and not os.path.exists(special[0]):
        pytest.skip("needs %s" % special[0])
    with pytest.raises(error, match=message):
        write(str(tmp_path / "backup.tar"), **kwargs)


def test_write_refuses_a_name_that_is_not_utf8(tmp_path, dump):
    (tmp_path / "store").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "store"), b"caf\xe9"), "wb"):
        pass
    with pytest.raises(LifeboatError, match="is not valid UTF-8 .* rename it"):
        write(str(tmp_path / "backup.tar"), databases=[("db", dump)], files_path=str(tmp_path / "store"))


@pytest.mark.parametrize(
    "compression, encrypted, suffix",
    [("none", False, ".tar"), ("gzip", False, ".tar.gz"), ("none", True, ".tar.age"), ("gzip", True, ".tar.gz.age")],
)
def test_suffix_for(compression, encrypted, suffix):
    assert archive.suffix_for(compression, encrypted) == suffix
    assert suffix in SUFFIXES


def test_suffix_for_refuses_unknown_compression():
    with pytest.raises(LifeboatError, match="unknown compression 'xz'"):
        archive.suffix_for("xz", False)


def test_mendix_metadata_is_strings():
    assert archive.mendix_metadata(0.4, 94769, None, 9730584, 1346575) == {
        "duration": "0",
        "dumpSize": "94769",
        "modelVersion": "",
        "databaseSize": "9730584",
        "filesSize": "1346575",
    }


# --------------------------------------------------------------------------------- kinds, Mendix, dumps


def mendix_members(prefix=""):
    return [
        member(prefix + ".metadata", json.dumps(METADATA).encode()),
        member(prefix + "db/db.backup", DUMP),
        member(prefix + "tree/0d/3e/0d3e301f-5551-46f8-ad44-8de2be084c95", b"file one"),
        member(prefix + "tree/1f/bd/1fbdf930-67f9-47ee-b30e-e84c4c983e85", b"file two!"),
    ]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("prefix", ["", "./"])
def test_mendix_snapshot(tmp_path, compression, prefix):
    members = ([member("./", kind=tarfile.DIRTYPE)] if prefix else []) + mendix_members(prefix)
    path = build_tar(tmp_path / "snapshot.tar", members, compression)
    assert archive.detect_kind(path) == "mendix"
    contents = read_path(path, **targets(tmp_path))
    assert (contents.kind, contents.manifest, contents.metadata) == ("mendix", None, METADATA)
    assert pathlib.Path(contents.databases["db"]).read_bytes() == DUMP
    assert contents.files == (2, 17)
    assert (
        pathlib.Path(os.path.join(contents.tree, "1f/bd/1fbdf930-67f9-47ee-b30e-e84c4c983e85")).read_bytes()
        == b"file two!"
    )


@needs_tar
def test_mendix_snapshot_made_by_gnu_tar(tmp_path):
    source = tmp_path / "source"
    (source / "db").mkdir(parents=True)
    (source / "tree" / "0d" / "3e").mkdir(parents=True)
    (source / ".metadata").write_text(json.dumps(METADATA))
    (source / "db" / "db.backup").write_bytes(DUMP)
    (source / "tree" / "0d" / "3e" / "0d3e301f").write_bytes(b"x" * 5000)
    path = str(tmp_path / "files_and_database.tar.gz")
    subprocess.run(["tar", "-C", str(source), "-czf", path, ".metadata", "db", "tree"], check=True)
    assert archive.detect_kind(path) == "mendix"
    contents = read_path(path, **targets(tmp_path))
    assert contents.kind == "mendix" and contents.files == (1, 5000)
    assert pathlib.Path(os.path.join(contents.tree, "0d/3e/0d3e301f")).read_bytes() == b"x" * 5000


def test_tar_without_main_dump_is_not_recognised(tmp_path):
    path = build_tar(tmp_path / "other.tar", [member(".metadata", b"{}"), member("tree/x", b"x")])
    with pytest.raises(LifeboatError, match="is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL"):
        archive.detect_kind(path)
    with pytest.raises(LifeboatError, match="is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL"):
        read_path(path, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


@pytest.mark.parametrize("via", ["file", "pipe"])
def test_bare_pgdump(tmp_path, dump, via):
    assert archive.detect_kind(dump) == "pgdump"
    contents = read(dump, via, **targets(tmp_path))
    assert (contents.kind, contents.manifest, contents.metadata, contents.tree) == ("pgdump", None, None, None)
    assert pathlib.Path(contents.databases["db"]).read_bytes() == DUMP


@pytest.mark.parametrize(
    "content, kind",
    [
        (DUMP, "pgdump"),
        (b"age-encryption.org/v1\n-> X25519 abc\n--- def\n\x00\x01", "age"),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCg==\n", "age"),
        (b"\n  -----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n", "age"),
        (b"hello, this is a text file\n" * 40, None),
        (b"", None),
        (gzip.compress(b"hello, this is gzipped text\n" * 40, mtime=0), None),
        (b"PGDM", None),
    ],
)
def test_detect_kind(tmp_path, content, kind):
    path = tmp_path / "input"
    path.write_bytes(content)
    if kind is None:
        with pytest.raises(LifeboatError, match=r"input is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL"):
            archive.detect_kind(str(path))
    else:
        assert archive.detect_kind(str(path)) == kind


@pytest.mark.parametrize("armored", [False, True])
def test_age_file_is_not_read_as_archive(tmp_path, armored):
    path = tmp_path / "backup.tar.age"
    path.write_bytes(age.ARMOR_BEGIN + b"\n" if armored else age.INTRO + b"-> X25519 abc\n")
    with pytest.raises(LifeboatError, match="is encrypted with age: decrypt it"):
        read_path(str(path), **targets(tmp_path))


def test_detect_kind_of_a_missing_file(tmp_path):
    with pytest.raises(LifeboatError, match="cannot read .*missing: No such file"):
        archive.detect_kind(str(tmp_path / "missing"))


# -------------------------------------------------------------------------------------------- safety


UNSAFE = [
    (member("../evil", b"x"), "leaves the archive"),
    (member("/abs/evil", b"x"), "leaves the archive"),
    (member("tree/../../evil", b"x"), "leaves the archive"),
    (member("./../evil", b"x"), "leaves the archive"),
    (member("tree//evil", b"x"), "leaves the archive"),
    (member("tree/link", kind=tarfile.SYMTYPE, linkname="/etc/passwd"), "is a symbolic link"),
    (member("tree/hard", kind=tarfile.LNKTYPE, linkname="tree/a"), "is a hard link"),
    (member("tree/dev", kind=tarfile.CHRTYPE, devmajor=1, devminor=3), "is a character device"),
    (member("tree/disk", kind=tarfile.BLKTYPE, devmajor=8, devminor=0), "is a block device"),
    (member("tree/fifo", kind=tarfile.FIFOTYPE), "is a fifo"),
    (member("etc/passwd", b"root::0:0"), "has no place"),
    (member("evil.sh", b"x"), "has no place"),
    (member("db/sub/x.backup", b"x"), "has no place"),
    (member("db/evil.sh", b"x"), "has no place"),
    (member("db/../x.backup", b"x"), "leaves the archive"),
    (member(".metadata", kind=tarfile.DIRTYPE), "has no place"),
    (member("db", b"x"), "has no place"),
    (member("tree/a\0b", b"x", pax_headers={"path": "tree/a\0b"}), "contains a NUL byte"),
]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("bad, problem", UNSAFE, ids=[info.name for (info, _data), _problem in UNSAFE])
def test_unsafe_member_is_refused(tmp_path, compression, bad, problem):
    # Good members come first, so something has been extracted when the bad one arrives.
    path = build_tar(tmp_path / "evil.tar", mendix_members() + [bad], compression)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    with pytest.raises(LifeboatError, match="contains the unsafe member .*%s.*: refusing to read it" % problem):
        read_path(path, **targets(tmp_path))
    after = sorted(str(path) for path in tmp_path.rglob("*"))
    assert after == before + [str(tmp_path / "work"), str(tmp_path / "work" / "db")]


def test_tree_dir_must_be_empty(tmp_path, dump):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=None)
    (tmp_path / "work" / "tree").mkdir(parents=True)
    (tmp_path / "work" / "tree" / "keep").write_text("mine")
    with pytest.raises(LifeboatError, match="must be an empty directory or not exist"):
        read_path(path, **targets(tmp_path))
    assert (tmp_path / "work" / "tree" / "keep").read_text() == "mine"


def test_existing_empty_tree_dir_is_used_and_emptied_on_error(tmp_path, dump, store):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=store)
    bad = repack(good, tmp_path / "bad.tar", lambda info, data: [] if info.name == "tree/run.sh" else [(info, data)])
    (tmp_path / "work" / "tree").mkdir(parents=True)
    with pytest.raises(LifeboatError, match="member tree/run.sh is listed in the manifest but not in the archive"):
        read_path(bad, **targets(tmp_path))
    assert os.listdir(tmp_path / "work" / "tree") == [] and os.listdir(tmp_path / "work" / "db") == []


def test_leftover_dump_is_not_overwritten(tmp_path, dump):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=None)
    (tmp_path / "work" / "db").mkdir(parents=True)
    (tmp_path / "work" / "db" / "db.backup").write_bytes(b"old")
    with pytest.raises(LifeboatError, match="db.backup already exists; remove it"):
        read_path(path, **targets(tmp_path))
    assert (tmp_path / "work" / "db" / "db.backup").read_bytes() == b"old"


# ----------------------------------------------------------------------------------------- integrity


def _replace_manifest(new_data):
    """A repack transform giving lifeboat.json the content ``new_data(old_manifest)``."""

    def transform(info, data):
        if info.name == archive.MANIFEST_NAME:
            data = new_data(json.loads(data))
            info.size = len(data)
        return [(info, data)]

    return transform


def _edit_manifest(change):
    def new_data(manifest):
        change(manifest)
        return json.dumps(manifest).encode()

    return _replace_manifest(new_data)


@pytest.mark.parametrize(
    "transform, message",
    [
        (
            lambda info, data: [(info, data)] + ([member("tree/extra", b"x")] if info.name == "tree/run.sh" else []),
            "member tree/extra is in the archive but not in the manifest",
        ),
        (
            lambda info, data: [] if info.name == "db/db.backup" else [(info, data)],
            "member db/db.backup is listed in the manifest but not in the archive",
        ),
        (
            lambda info, data: [] if info.name == "tree/empty_dir" else [(info, data)],
            "member tree/empty_dir is listed in the manifest but not in the archive",
        ),
        (
            lambda info, data: [] if info.name == ".metadata" else [(info, data)],
            "member .metadata is missing or does not match",
        ),
        (
            lambda info, data: [(info, data)] + ([member("tree/late", b"x")] if info.name == "lifeboat.json" else []),
            "member 'tree/late' follows lifeboat.json",
        ),
        (
            lambda info, data: [(info, data), (info, data)] if info.name == "tree/private" else [(info, data)],
            "member 'tree/private' appears twice",
        ),
        (_edit_manifest(lambda manifest: manifest.update(format_version=0)), "unknown format_version 0"),
        (_edit_manifest(lambda manifest: manifest.update(format="other")), "lifeboat.json has format 'other'"),
        (_edit_manifest(lambda manifest: manifest.update(files=None)), "is in the archive but not in the manifest"),
        (_edit_manifest(lambda manifest: manifest.update(databases={})), "no valid list of databases"),
        (_edit_manifest(lambda manifest: manifest["files"].update(entries=[1])), "no valid list of files"),
        (
            _edit_manifest(lambda manifest: manifest["databases"][0].update(member="db/x.backup")),
            "lists database 'db' as member 'db/x.backup'",
        ),
        (
            _edit_manifest(lambda manifest: manifest["databases"][0].update(size=1)),
            r"member db/db.backup has \d+ bytes and SHA-256 \w+, the manifest says 1 bytes",
        ),
        (_replace_manifest(lambda manifest: b"[]"), "lifeboat.json is not a JSON object"),
        (_replace_manifest(lambda manifest: b"{"), "lifeboat.json is not valid JSON"),
    ],
)
def test_manifest_mismatch(tmp_path, dump, store, transform, message):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=store)
    bad = repack(good, tmp_path / "bad.tar", transform)
    with pytest.raises(LifeboatError, match="archive .*bad.tar is truncated or corrupt: .*" + message):
        read_path(bad, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path, dump):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=None)
    bad = repack(good, tmp_path / "bad.tar", _edit_manifest(lambda manifest: manifest.update(format_version=2)))
    with pytest.raises(LifeboatError, match="has format version 2, newer than this Lifeboat reads .*upgrade"):
        read_path(bad, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


@pytest.mark.parametrize(
    "where, message",
    [
        ("db/db.backup", "member db/db.backup has"),
        ("tree/big.bin", "member tree/big.bin has"),
        ("tree/a/b/c.txt", "member tree/a/b/c.txt has"),
        (".metadata", "member .metadata is missing or does not match"),
        ("lifeboat.json", ""),
        ("header of tree/private", "ends before the end-of-archive marker"),
    ],
)
def test_flipped_byte(tmp_path, dump, store, where, message):
    path = tmp_path / "backup.tar"
    write(str(path), databases=[("db", dump)], files_path=store)
    with tarfile.open(path) as tar:
        info = tar.getmember(where.split()[-1])
    data = bytearray(path.read_bytes())
    offset = info.offset + 100 if where.startswith("header") else info.offset_data + info.size // 2
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LifeboatError, match="truncated or corrupt: .*" + message):
        read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_flipped_byte_in_gzip(tmp_path, dump, store):
    path = tmp_path / "backup.tar.gz"
    write(str(path), databases=[("db", dump)], files_path=store, compression="gzip")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(LifeboatError, match="backup.tar.gz is truncated or corrupt"):
        read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def _cut_points(path):
    """Offsets across a plain archive: inside data, at member boundaries, just before the end marker."""
    with tarfile.open(path) as tar:
        members = {info.name: info for info in tar.getmembers()}
    manifest = members["lifeboat.json"]
    end = manifest.offset_data + (manifest.size + 511) // 512 * 512
    return [
        700,
        members["db/db.backup"].offset,
        members["tree/big.bin"].offset_data + 4096,
        members["tree/a/b/c.txt"].offset,
        manifest.offset,
        manifest.offset_data + 10,
        end,
        end + 100,
    ]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("via", ["file", "pipe"])
def test_truncated(tmp_path, dump, store, compression, via):
    whole = tmp_path / "whole.tar"
    write(str(whole), databases=[("db", dump)], files_path=store, compression=compression)
    data = whole.read_bytes()
    cuts = _cut_points(whole) if compression == "none" else [100, len(data) // 3, len(data) - 8, len(data) - 1]
    for index, cut in enumerate(cuts):
        path = tmp_path / ("cut%d.tar" % index)
        path.write_bytes(data[:cut])
        work = {"db_dir": str(tmp_path / ("db%d" % index)), "tree_dir": str(tmp_path / ("tree%d" % index))}
        with pytest.raises(LifeboatError, match="cut%d.tar is truncated or corrupt" % index):
            read(str(path), via, **work)
        assert os.listdir(work["db_dir"]) == [] and not os.path.exists(work["tree_dir"])
        with pytest.raises(LifeboatError, match="cut%d.tar is truncated or corrupt" % index):
            archive.detect_kind(str(path))


@pytest.mark.parametrize(
    "cut, message",
    [(200, "cut.tar is not a Lifeboat archive"), (300, "cut.tar is truncated or corrupt: truncated header")],
)
def test_truncated_in_the_first_block(tmp_path, dump, cut, message):
    """Past the tar magic (offset 257) a cut is recognised as such; before it the file is just unknown."""
    whole = tmp_path / "whole.tar"
    write(str(whole), databases=[("db", dump)], files_path=None)
    path = tmp_path / "cut.tar"
    path.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(LifeboatError, match=message):
        read_path(str(path), **targets(tmp_path))
    with pytest.raises(LifeboatError, match=message):
        archive.detect_kind(str(path))


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_truncated_mendix_snapshot_at_a_member_boundary(tmp_path, compression):
    whole = build_tar(tmp_path / "whole.tar", mendix_members())
    with tarfile.open(whole) as tar:
        cut = tar.getmember("tree/1f/bd/1fbdf930-67f9-47ee-b30e-e84c4c983e85").offset
    data = pathlib.Path(whole).read_bytes()[:cut]
    path = tmp_path / "cut.tar"
    path.write_bytes(gzip.compress(data) if compression == "gzip" else data)
    with pytest.raises(
        LifeboatError, match="cut.tar is truncated or corrupt: it ends before the end-of-archive marker"
    ):
        read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


# ------------------------------------------------------------------------------------------ resources

MiB = 1024 * 1024
BOMB_SIZE = 256 * MiB


class Chunks:
    """A file object handing out ``chunks`` (an iterable of bytes) as they are read: big members, little memory."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size):
        while len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def repeated(unit, count, head=b"", tail=b""):
    """(size, file object) of ``head + unit * count + tail``, made as it is read."""
    block = unit * (MiB // len(unit))
    full, rest = divmod(count * len(unit), len(block))
    chunks = [head] + [block] * full + [block[:rest], tail]
    return len(head) + count * len(unit) + len(tail), Chunks(chunks)


def build_streamed(path, members):
    """A .tar.gz of (name, size, file object) members, built as it streams: a bomb costs the test a few hundred KB."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, size, fileobj in members:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            tar.addfile(info, fileobj)
    return str(path)


def small(name, data):
    return name, len(data), io.BytesIO(data)


class Counting:
    """Counts the bytes the reader takes from the archive, to show that it stopped early."""

    def __init__(self, path):
        self.handle = open(path, "rb")
        self.taken = 0

    def read(self, size=-1):
        data = self.handle.read(size)
        self.taken += len(data)
        return data


# gzip reads compressed bytes ahead of what it decompresses: 8 KiB up to Python 3.11, 128 KiB from 3.12.
GZIP_READ_AHEAD = getattr(gzip, "READ_BUFFER_SIZE", io.DEFAULT_BUFFER_SIZE)


def read_counting(path, **kwargs):
    """Read ``path`` (expecting a LifeboatError); return the error and the share of the file read beyond gzip's
    own read-ahead."""
    source = Counting(path)
    with source.handle, pytest.raises(LifeboatError) as caught:
        archive.read_archive(source, name=path, **kwargs)
    return str(caught.value), max(0, source.taken - GZIP_READ_AHEAD) / os.path.getsize(path)


def fake_free_space(monkeypatch, free):
    """Make every filesystem report ``free`` bytes (a list: the bytes at the first checks, then the last one over
    again); returns the list of checks made so far."""
    answers = free if isinstance(free, list) else [free]
    checks = []

    def statvfs(path):
        checks.append(path)
        return types.SimpleNamespace(f_bavail=answers[min(len(checks), len(answers)) - 1] // 4096, f_frsize=4096,
                                     f_files=0, f_favail=0)

    monkeypatch.setattr(os, "statvfs", statvfs)
    return checks


@pytest.fixture(scope="module")
def gzip_bombs(tmp_path_factory):
    """Two 256 MiB members of zeros gzipped to about 260 KB: after a .metadata declaring 5 bytes of files, or alone."""
    root = tmp_path_factory.mktemp("bombs")
    metadata = json.dumps(archive.mendix_metadata(1, len(DUMP), "", 0, 5)).encode()
    bombs = {}
    for kind, head in (("declared", [small(".metadata", metadata)]), ("undeclared", [])):
        members = head + [small("db/db.backup", DUMP), ("tree/zeros",) + repeated(b"\0", BOMB_SIZE)]
        bombs[kind] = build_streamed(root / ("%s.tar.gz" % kind), members)
        assert os.path.getsize(bombs[kind]) < 300 * 1024
    return bombs


def test_gzip_bomb_beyond_what_metadata_declares_stops_before_its_data(tmp_path, gzip_bombs):
    message, taken = read_counting(gzip_bombs["declared"], **targets(tmp_path))
    assert re.search(
        r"declared.tar.gz is truncated or corrupt: member tree/zeros brings the file store to 256.00 MiB, more than "
        r"its \.metadata declares \(filesSize 5, accepted up to 16.00 MiB for data that grew while it was archived\)",
        message,
    ), message
    assert taken < 0.2, "the reader stopped at the member's header, before its data"
    assert_nothing_extracted(tmp_path)


def test_gzip_bomb_larger_than_free_space_stops_before_its_data(tmp_path, gzip_bombs, monkeypatch):
    fake_free_space(monkeypatch, 200 * MiB)
    message, taken = read_counting(gzip_bombs["undeclared"], **targets(tmp_path))
    assert re.search(
        r"not enough free space for member tree/zeros of archive .*undeclared.tar.gz on the filesystem mounted at /.*: "
        r"it needs 332.80 MiB \(256.00 MiB plus a margin of 76.80 MiB\), only 200.00 MiB are free; free up space",
        message,
    ), message
    assert taken < 0.2
    assert_nothing_extracted(tmp_path)


def test_declared_sizes_must_fit_before_anything_is_written(tmp_path, monkeypatch):
    """dumpSize and filesSize are checked before the first dump is written; on one filesystem they count together."""
    fake_free_space(monkeypatch, 1024 * MiB)
    metadata = archive.mendix_metadata(1, 450 * MiB, "", 0, 450 * MiB)
    members = [member(".metadata", json.dumps(metadata).encode())] + mendix_members()[1:]
    path = build_tar(tmp_path / "snapshot.tar", members)
    with pytest.raises(LifeboatError) as caught:
        read_path(path, **targets(tmp_path))
    assert re.search(
        r"not enough free space for the database dumps and file store of archive .*snapshot.tar \(what its "
        r"\.metadata declares, with room for growth\) on the filesystem mounted at /.*: it needs 1.03 GiB \(941.00 MiB "
        r"plus a margin of 111.05 MiB\), only 1.00 GiB are free",
        str(caught.value),
    ), caught.value
    assert_nothing_extracted(tmp_path)
    # The dumps alone fit: without the file store the same archive is read.
    contents = read_path(path, db_dir=str(tmp_path / "db"), tree_dir=None)
    assert contents.files == (2, 17)


def test_metadata_sizes_allow_for_a_file_store_that_grew(tmp_path, dump, store):
    """.metadata is written before the files are read: a live store that grew meanwhile must still restore."""
    path = str(tmp_path / "backup.tar.gz")
    write(path, databases=[("db", dump)], files_path=store, compression="gzip",
          metadata=archive.mendix_metadata(1, len(DUMP), "", 0, 10))
    contents = read_path(path, **targets(tmp_path))
    assert contents.files[1] > 10 + 1024 * 1024


def test_free_space_is_checked_again_as_a_bare_dump_streams(tmp_path, monkeypatch):
    """A bare dump declares no size: free space is checked every 16 MiB, and the copy stops before the margin."""
    checks = fake_free_space(monkeypatch, [300 * MiB, 70 * MiB])
    size, data = repeated(b"PGDMP", 8 * MiB)
    dump = tmp_path / "big.backup"
    with open(dump, "wb") as handle:
        shutil.copyfileobj(data, handle)
    with pytest.raises(LifeboatError, match=r"not enough free space for the dump .*big.backup on the filesystem "
                                            r"mounted at .*: it needs 80.80 MiB .* only 70.00 MiB are free"):
        read_path(str(dump), **targets(tmp_path))
    assert len(checks) == 2
    assert_nothing_extracted(tmp_path)


def test_free_space_is_checked_again_as_members_stream(tmp_path, monkeypatch):
    """Without .metadata, many small members: the check comes back at least every 16 MiB."""
    checks = fake_free_space(monkeypatch, [300 * MiB, 70 * MiB])
    members = [member("db/db.backup", DUMP)] + [member("tree/f%d" % n, b"x" * 100_000) for n in range(200)]
    path = build_tar(tmp_path / "snapshot.tar", members)
    with pytest.raises(LifeboatError, match=r"not enough free space for member tree/f\d+ of archive"):
        read_path(path, **targets(tmp_path))
    assert len(checks) == 2
    assert_nothing_extracted(tmp_path)


def _gnu_sparse(path):
    """A tar with an old-GNU sparse member (type S, as GNU tar --sparse writes) of 512 bytes that unfolds to 1 GiB."""
    info = tarfile.TarInfo("tree/sparse")
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = 512
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0%011o\0" % (0, 512)  # one region of data at offset 0, then a hole
    header[483:495] = b"%011o\0" % (1 << 30)  # the size it unfolds to
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    with open(path, "wb") as handle:
        for info, data in mendix_members()[:2]:
            handle.write(info.tobuf(tarfile.GNU_FORMAT) + data + b"\0" * (-len(data) % 512))
        handle.write(bytes(header) + b"s" * 512 + b"\0" * 1024)
    return str(path)


def _pax_sparse(path, headers, data=b""):
    info, _data = member("tree/sparse", data, pax_headers=dict(headers, **{"GNU.sparse.realsize": str(1 << 30)}))
    return build_tar(path, mendix_members()[:2] + [(info, data)])


SPARSE = {
    "gnu": _gnu_sparse,
    "pax-1.0": lambda path: _pax_sparse(
        path, {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "tree/sparse"},
        b"1\n0\n512\n".ljust(512, b"\0") + b"s" * 512,
    ),
    "pax-0.1": lambda path: _pax_sparse(path, {"GNU.sparse.map": "0,512", "GNU.sparse.size": str(1 << 30)}, b"s" * 512),
    "pax-unknown": lambda path: _pax_sparse(path, {"GNU.sparse.major": "9", "GNU.sparse.minor": "0"}, b"s" * 512),
}


@pytest.mark.parametrize("kind", sorted(SPARSE))
def test_sparse_member_is_refused(tmp_path, kind):
    path = SPARSE[kind](tmp_path / "sparse.tar")
    with pytest.raises(LifeboatError, match=r"contains the unsafe member 'tree/sparse' \(it is a GNU sparse file"):
        read_path(path, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_sparse_member_with_a_broken_map_is_refused(tmp_path):
    path = _pax_sparse(tmp_path / "sparse.tar", {"GNU.sparse.map": "0,x", "GNU.sparse.size": "9"}, b"s" * 512)
    with pytest.raises(LifeboatError, match="sparse.tar is truncated or corrupt: a member header is damaged"):
        read_path(path, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


@pytest.fixture(scope="module")
def manifest_bomb(tmp_path_factory):
    """A .tar.gz of 260 KB whose lifeboat.json has 255 MB of empty objects: 6 GB once parsed."""
    root = tmp_path_factory.mktemp("manifest")
    count = 255_000_000 // 3
    members = [small(".metadata", json.dumps(METADATA).encode()), small("db/db.backup", DUMP),
               (archive.MANIFEST_NAME,) + repeated(b"{},", count, head=b'{"files": [', tail=b"{}]}")]
    path = build_streamed(root / "manifest.tar.gz", members)
    assert os.path.getsize(path) < 300 * 1024
    return path


def test_manifest_bomb_is_refused_before_it_is_read(tmp_path, manifest_bomb):
    message, taken = read_counting(manifest_bomb, **targets(tmp_path))
    assert re.search(
        r"manifest.tar.gz is truncated or corrupt: member lifeboat.json has 255000015 bytes, more than a manifest of "
        r"its 3 members can need \(\d+\); use another copy",
        message,
    ), message
    assert taken < 0.2
    assert_nothing_extracted(tmp_path)


def test_manifest_has_an_absolute_cap(tmp_path, dump, store, monkeypatch):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=store)
    monkeypatch.setattr(archive, "_MAX_MANIFEST", 1000)
    with pytest.raises(LifeboatError, match=r"member lifeboat.json has \d+ bytes, more than the 1000 allowed"):
        read_path(path, **targets(tmp_path))


def test_manifest_of_awkward_names_fits_what_its_members_allow(tmp_path, dump):
    """Names that JSON escapes six-fold, short and empty files: the manifest of a real store always fits."""
    root = tmp_path / "store"
    root.mkdir()
    for number in range(300):
        name = "".join(chr(1 + (number + offset) % 31) for offset in range(4)) + '"\\%d' % number
        (root / name).write_bytes(b"")
        (root / ("d%d" % number)).mkdir()
    path = str(tmp_path / "backup.tar")
    manifest, _warnings = write(path, databases=[("db", dump)], files_path=str(root))
    contents = read_path(path, **targets(tmp_path))
    assert contents.manifest == manifest and contents.files == (300, 0)


# Deeper than the parser goes, yet within the values a manifest of a few members may hold.
NESTED = b'{"a": ' * 3000 + b"1" + b"}" * 3000


@pytest.mark.parametrize(
    "name, data, message",
    [
        (archive.MANIFEST_NAME, NESTED, r"lifeboat.json is not valid JSON \(it nests too deeply\)"),
        (archive.MANIFEST_NAME, b'{"a": "\xe9"}', "lifeboat.json is not valid JSON .*can't decode byte 0xe9"),
        (archive.MANIFEST_NAME, b"[" * 3000, "lifeboat.json is not a JSON object"),
        (archive.MANIFEST_NAME, b"[" * 100_000, r"lifeboat.json holds 100001 values, more than"),
        (".metadata", b'{"a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", r"\.metadata is not valid JSON \(it nests"),
        (".metadata", b"{" + b" " * 64 * 1024 + b"}", r"member \.metadata has 65538 bytes, more than the 65536"),
        (".metadata", b'"dumpSize"', r"\.metadata is not a JSON object"),
    ],
)
def test_json_that_would_exhaust_the_reader_is_refused(tmp_path, dump, name, data, message):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=None)

    def transform(info, old):
        if info.name == name:
            info.size = len(data)
            return [(info, data)]
        return [(info, old)]

    bad = repack(good, tmp_path / "bad.tar", transform)
    with pytest.raises(LifeboatError, match="bad.tar is truncated or corrupt: " + message):
        read_path(bad, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


# -------------------------------------------------------------------------------------- names, modes, sync


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_member_name_that_is_not_utf8_is_refused(tmp_path, tar_format):
    path = tmp_path / "latin1.tar"
    with tarfile.open(path, "w", format=tar_format, encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in mendix_members() + [member(os.fsdecode(b"tree/caf\xe9.txt"), b"x")]:
            tar.addfile(info, io.BytesIO(data))
    assert b"tree/caf\xe9.txt" in path.read_bytes()
    with pytest.raises(LifeboatError, match=r"contains the member 'tree/caf\\udce9.txt', whose name is not valid "
                                            r"UTF-8: refusing to read it.* rename the file"):
        read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def _unsafe_modes_archive(path):
    return build_tar(path, [
        member(".metadata", json.dumps(METADATA).encode()),
        member("db/db.backup", DUMP),
        member("tree", kind=tarfile.DIRTYPE, mode=0o1777),
        member("tree/shared", kind=tarfile.DIRTYPE, mode=0o3777),
        member("tree/shared/run", b"#!/bin/sh\n", mode=0o6777),
        member("tree/shared/plain", b"x", mode=0o664),
    ])


@pytest.mark.parametrize(
    "keep, modes",
    [
        (False, {"": 0o755, "shared": 0o755, "shared/run": 0o755, "shared/plain": 0o644}),
        (True, {"": 0o1777, "shared": 0o3777, "shared/run": 0o777, "shared/plain": 0o664}),
    ],
)
def test_unsafe_modes_are_stripped_unless_kept(tmp_path, keep, modes):
    path = _unsafe_modes_archive(tmp_path / "modes.tar")
    contents = read_path(path, keep_unsafe_modes=keep, **targets(tmp_path))
    assert {rel: mode for rel, (_kind, mode, _data) in snapshot(contents.tree).items()} == modes


def test_file_store_is_synced_once_and_dumps_each(tmp_path, dump, store, monkeypatch):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump), ("linked", dump)], files_path=store)
    real_fsync, real_syncfs = os.fsync, common._syncfs()
    fsynced, syncfs_calls = [], []
    monkeypatch.setattr(os, "fsync", lambda fd: fsynced.append(os.readlink("/proc/self/fd/%d" % fd)) or real_fsync(fd))
    monkeypatch.setattr(common, "_syncfs", lambda: lambda fd: syncfs_calls.append(os.readlink("/proc/self/fd/%d" % fd))
                        or real_syncfs(fd))
    contents = read_path(path, **targets(tmp_path))
    db_dir = targets(tmp_path)["db_dir"]
    assert sorted(fsynced) == [db_dir, db_dir + "/db.backup", db_dir + "/linked.backup"]
    assert syncfs_calls == [contents.tree]


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_huge_extended_header_is_refused_before_it_is_read(tmp_path, kind):
    """tarfile reads a long name or pax records whole: 200 MiB of them in a small .tar.gz would fill memory."""
    path = str(tmp_path / "bomb.tar.gz")
    size = 200 * 1024 * 1024
    header = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax")
    header.type, header.size = kind, size
    zeros = bytes(1024 * 1024)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header.tobuf(tarfile.GNU_FORMAT))
        for dummy in range(size // len(zeros)):
            out.write(zeros)
    with open(path, "rb") as handle:
        source = io.BufferedReader(handle)
        with pytest.raises(LifeboatError, match="extended header .* has 209715200 bytes, more than the 65536"):
            archive.read_archive(source, name=path, **targets(tmp_path))
        assert handle.tell() < os.path.getsize(path) / 2, "refused without reading the header's data"
    assert_nothing_extracted(tmp_path)


def test_empty_files_beyond_the_free_inodes_are_refused_before_they_are_made(tmp_path, monkeypatch):
    """Empty files pass any byte count; each still takes an inode."""
    metadata = json.dumps(archive.mendix_metadata(1, len(DUMP), "", 0, 0)).encode()
    members = [member(".metadata", metadata), member("db/db.backup", DUMP), member("tree", kind=tarfile.DIRTYPE)]
    members += [member("tree/empty-%05d" % index) for index in range(5000)]
    path = build_tar(tmp_path / "inodes.tar", members)
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(
        f_bavail=2**30 // 4096, f_frsize=4096, f_files=100000, f_favail=3000))
    with pytest.raises(LifeboatError, match="not enough free inodes for member tree/empty-00000 of archive"):
        read(path, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_manifest_of_many_small_values_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """Within the bytes its members allow, "[]," repeated would still be millions of Python objects."""
    monkeypatch.setattr(archive, "_MANIFEST_BASE", 4 * 1024 * 1024)
    members = [member(".metadata", json.dumps(METADATA).encode()), member("db/db.backup", DUMP),
               member(archive.MANIFEST_NAME, b'{"files": [' + b"[]," * 1_000_000 + b"[]]}")]
    path = build_tar(tmp_path / "values.tar", members)
    with pytest.raises(LifeboatError, match=r"lifeboat.json holds 2000004 values, more than a manifest of 3 members "
                       r"can need \(\d+\)"):
        read(path, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_manifest_with_commas_in_names_fits_what_its_members_allow(tmp_path, dump):
    root = tmp_path / "store"
    root.mkdir()
    for number in range(50):
        (root / ("a,b,c,[d],{e},%d" % number)).write_bytes(b"x")
    path = str(tmp_path / "backup.tar")
    manifest, _warnings = write(path, databases=[("db", dump)], files_path=str(root))
    assert read_path(path, **targets(tmp_path)).manifest == manifest
