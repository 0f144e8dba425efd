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
import shutil
import stat
import subprocess
import tarfile
import threading

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import archive
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


def read(path, via="file", **kwargs):
    """Read an archive from ``path``, directly or through a pipe."""
    if via == "file":
        return archive.read_path(path, **kwargs)
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

    contents = archive.read_path(path, **targets(tmp_path))
    assert contents.tree is None and contents.files == (0, 0)
    assert not (tmp_path / "work" / "tree").exists()
    assert pathlib.Path(contents.databases["linked_2"]).read_bytes() == b"PGDMP other"


def test_file_store_skipped_on_read_is_still_verified(tmp_path, dump, store):
    good = str(tmp_path / "good.tar")
    manifest, _warnings = write(good, databases=[("db", dump)], files_path=store)
    contents = archive.read_path(good, db_dir=str(tmp_path / "work" / "db"), tree_dir=None)
    assert contents.tree is None and contents.files == (manifest["files"]["count"], manifest["files"]["size"])

    def change(info, data):
        return [(info, b"NESTED\n" if info.name == "tree/a/b/c.txt" else data)]

    bad = repack(good, tmp_path / "bad.tar", change)
    with pytest.raises(LifeboatError, match=r"truncated or corrupt: member tree/a/b/c.txt has 7 bytes and SHA-256"):
        archive.read_path(bad, db_dir=str(tmp_path / "work" / "db2"), tree_dir=None)
    assert os.listdir(tmp_path / "work" / "db2") == []


def test_empty_file_store_gives_an_empty_directory(tmp_path, dump):
    (tmp_path / "store").mkdir(mode=0o711)
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=str(tmp_path / "store"))
    contents = archive.read_path(path, **targets(tmp_path))
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
    assert suffix in archive.SUFFIXES


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
    contents = archive.read_path(path, **targets(tmp_path))
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
    contents = archive.read_path(path, **targets(tmp_path))
    assert contents.kind == "mendix" and contents.files == (1, 5000)
    assert pathlib.Path(os.path.join(contents.tree, "0d/3e/0d3e301f")).read_bytes() == b"x" * 5000


def test_tar_without_main_dump_is_not_recognised(tmp_path):
    path = build_tar(tmp_path / "other.tar", [member(".metadata", b"{}"), member("tree/x", b"x")])
    with pytest.raises(LifeboatError, match="is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL"):
        archive.detect_kind(path)
    with pytest.raises(LifeboatError, match="is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL"):
        archive.read_path(path, **targets(tmp_path))
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
    path.write_bytes(archive.AGE_ARMOR + b"\n" if armored else archive.AGE_MAGIC + b"-> X25519 abc\n")
    with pytest.raises(LifeboatError, match="is encrypted with age: decrypt it"):
        archive.read_path(str(path), **targets(tmp_path))


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
]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("bad, problem", UNSAFE, ids=[info.name for (info, _data), _problem in UNSAFE])
def test_unsafe_member_is_refused(tmp_path, compression, bad, problem):
    # Good members come first, so something has been extracted when the bad one arrives.
    path = build_tar(tmp_path / "evil.tar", mendix_members() + [bad], compression)
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    with pytest.raises(LifeboatError, match="contains the unsafe member .*%s.*: refusing to read it" % problem):
        archive.read_path(path, **targets(tmp_path))
    after = sorted(str(path) for path in tmp_path.rglob("*"))
    assert after == before + [str(tmp_path / "work"), str(tmp_path / "work" / "db")]


def test_tree_dir_must_be_empty(tmp_path, dump):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=None)
    (tmp_path / "work" / "tree").mkdir(parents=True)
    (tmp_path / "work" / "tree" / "keep").write_text("mine")
    with pytest.raises(LifeboatError, match="must be an empty directory or not exist"):
        archive.read_path(path, **targets(tmp_path))
    assert (tmp_path / "work" / "tree" / "keep").read_text() == "mine"


def test_existing_empty_tree_dir_is_used_and_emptied_on_error(tmp_path, dump, store):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=store)
    bad = repack(good, tmp_path / "bad.tar", lambda info, data: [] if info.name == "tree/run.sh" else [(info, data)])
    (tmp_path / "work" / "tree").mkdir(parents=True)
    with pytest.raises(LifeboatError, match="member tree/run.sh is listed in the manifest but not in the archive"):
        archive.read_path(bad, **targets(tmp_path))
    assert os.listdir(tmp_path / "work" / "tree") == [] and os.listdir(tmp_path / "work" / "db") == []


def test_leftover_dump_is_not_overwritten(tmp_path, dump):
    path = str(tmp_path / "backup.tar")
    write(path, databases=[("db", dump)], files_path=None)
    (tmp_path / "work" / "db").mkdir(parents=True)
    (tmp_path / "work" / "db" / "db.backup").write_bytes(b"old")
    with pytest.raises(LifeboatError, match="db.backup already exists; remove it"):
        archive.read_path(path, **targets(tmp_path))
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
        archive.read_path(bad, **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path, dump):
    good = str(tmp_path / "good.tar")
    write(good, databases=[("db", dump)], files_path=None)
    bad = repack(good, tmp_path / "bad.tar", _edit_manifest(lambda manifest: manifest.update(format_version=2)))
    with pytest.raises(LifeboatError, match="has format version 2, newer than this Lifeboat reads .*upgrade"):
        archive.read_path(bad, **targets(tmp_path))
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
        archive.read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)


def test_flipped_byte_in_gzip(tmp_path, dump, store):
    path = tmp_path / "backup.tar.gz"
    write(str(path), databases=[("db", dump)], files_path=store, compression="gzip")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(LifeboatError, match="backup.tar.gz is truncated or corrupt"):
        archive.read_path(str(path), **targets(tmp_path))
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
        archive.read_path(str(path), **targets(tmp_path))
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
        archive.read_path(str(path), **targets(tmp_path))
    assert_nothing_extracted(tmp_path)
