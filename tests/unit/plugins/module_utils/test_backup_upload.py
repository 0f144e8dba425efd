# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node half of backup_upload, on real files, catalogs and SQLite environments."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import sqlite3
import stat
import tarfile

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import backup_upload
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import SUFFIXES, Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, sha256_file
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import PgTools
from ansible_collections.lifeboat.backup.tests.databases import rows, sqlite_db
from ansible_collections.lifeboat.backup.tests.unit.plugins.module_utils.uploads import (
    PASSPHRASE,
    PGDUMP,
    as_root,
    lifeboat_archive,
    params,
    send,
)


# ------------------------------------------------------------------------------------------ helpers


def tmp_leftovers(tmp_path, env="acc"):
    tmp = tmp_path / "catalog" / env / ".tmp"
    return sorted(os.listdir(tmp)) if tmp.is_dir() else []


@pytest.fixture
def read_through(monkeypatch):
    """pg_restore reading bare dumps through, recorded: the real one runs in the integration tests."""
    read = []
    monkeypatch.setattr(PgTools, "read_through", lambda self, path: read.append(open(path, "rb").read()))
    return read


# ---------------------------------------------------------------------------------------- inspection


@pytest.mark.parametrize("kind,expected", [
    ("lifeboat", ("lifeboat", ".tar", "checksums", "sqlite", "none", "none")),
    ("lifeboat-gzip", ("lifeboat", ".tar.gz", "checksums", "sqlite", "gzip", "none")),
    ("mendix", ("mendix", ".tar.gz", "structure", "postgresql", "gzip", "none")),
    ("pgdump", ("pgdump", ".backup", "structure", "postgresql", "none", "none")),
    ("age", ("lifeboat", ".tar.age", "checksums", "sqlite", "none", "passphrase")),
    ("age-dump", ("pgdump", ".backup.age", "checksums", "postgresql", "none", "passphrase")),
])
def test_inspect_recognises_every_kind_by_content(sources, tmp_path, read_through, kind, expected):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    key = {"encryption": {"mode": "none", "passphrase": PASSPHRASE}}
    facts, suffix, verification = backup_upload.inspect_archive(
        sources[kind], params(tmp_path, engine="postgresql", **key), str(scratch), "whatever.name")
    got = (facts["kind"], suffix, verification, facts["engine"], facts["compression"], facts["encryption"]["mode"])
    assert got == expected
    assert suffix in SUFFIXES, "catalog.SUFFIXES must list %s" % suffix
    assert facts["databases"][0]["name"] == "db" and facts["databases"][0]["size"] > 0
    assert read_through == ([PGDUMP] if facts["kind"] == "pgdump" else []), "only bare dumps are read through"


def test_inspect_reports_what_a_manifest_would(sources, tmp_path):
    facts, _suffix, _check = backup_upload.inspect_archive(sources["lifeboat"], params(tmp_path), str(tmp_path / "one"))
    assert facts["files"] == {"count": 1, "size": 5000}
    assert facts["source"] == {"backup_id": "20250101T000000Z-abcdef", "environment": "prod",
                               "created_at": "2025-01-01T00:00:00Z", "label": "nightly"}
    assert facts["structure_version"] == 7 and facts["server_version"] == "3.40"
    assert "label" not in facts and "format" not in facts and "backup_id" not in facts
    facts, _suffix, _check = backup_upload.inspect_archive(sources["mendix"], params(tmp_path), str(tmp_path / "two"))
    assert facts["files"] == {"count": 1, "size": 5}
    assert facts["model_version"] == "9.24.1"
    assert facts["databases"] == [{"name": "db", "size": len(PGDUMP), "sha256": hashlib.sha256(PGDUMP).hexdigest()}]


# Keys no Lifeboat writes, in an archive whose checksums are all right.
SPOOFED = {"projects": [{"name": "db", "path": "/etc/shadow"}], "padding": "x" * (1 << 20),
           "nested": {"deeper": [{"path": "/etc/shadow"}] * 100}}


def test_inspect_carries_only_known_manifest_keys(tmp_path):
    spoofed = lifeboat_archive(tmp_path / "spoofed.tar", sqlite_db(tmp_path / "source.db"),
                               linked_structure_versions={"crm": 3}, project="shop", **SPOOFED)
    facts, _suffix, _check = backup_upload.inspect_archive(spoofed, params(tmp_path), str(tmp_path / "scratch"))
    assert set(facts) == {"kind", "engine", "databases", "files", "compression", "encryption", "server_version",
                          "tool_version", "structure_version", "linked_structure_versions", "project", "source"}
    assert (facts["linked_structure_versions"], facts["project"]) == ({"crm": 3}, "shop")


def test_upload_keeps_unknown_manifest_keys_out_of_entry_and_result(tmp_path):
    spoofed = lifeboat_archive(tmp_path / "spoofed.tar", sqlite_db(tmp_path / "source.db"), **SPOOFED)
    done, _uploaded = send(tmp_path, spoofed)
    entry = tmp_path / "catalog" / "acc" / (done["backup"]["id"] + ".json")
    assert os.path.getsize(entry) < 4096, "the entry stays small, whatever the manifest holds"
    assert "/etc/shadow" not in entry.read_text() and "/etc/shadow" not in json.dumps(done)
    assert done["backup"]["projects"] is None


@pytest.mark.parametrize("key,value,shown", [
    ("structure_version", "1.2.3", "'1.2.3'"),
    ("structure_version", True, "True"),
    ("structure_version", -1, "-1"),
    ("engine", ["sqlite"], "['sqlite']"),
    ("engine", "mysql", "'mysql'"),
    ("server_version", "9" * 100000, "'99999999999999999...999999999999999999'"),
    ("tool_version", {"name": "x"}, "{'name': 'x'}"),
    ("linked_structure_versions", {"../crm": 3}, "{'../crm': 3}"),
    ("linked_structure_versions", {"crm": "3"}, "{'crm': '3'}"),
    ("project", "a/b", "'a/b'"),
    ("backup_id", 12, "12"),
    ("label", ["x"], "['x']"),
])
def test_known_manifest_key_with_a_wrong_value_refuses_the_upload(tmp_path, key, value, shown):
    bad = lifeboat_archive(tmp_path / "bad.tar", sqlite_db(tmp_path / "source.db"), **{key: value})
    with pytest.raises(LifeboatError) as refused:
        send(tmp_path, bad)
    message = str(refused.value)
    assert message.startswith("rejected the upload of bad.tar: its manifest gives %s as %s, which should be "
                              % (key, shown)), message
    assert message.endswith("altered or made by another tool; nothing was registered") and len(message) < 300
    assert Catalog(str(tmp_path / "catalog")).entries("acc") == [] and tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("name,suffix", [("x.tar.gz.age", ".tar.gz.age"), ("x.tar.age", ".tar.age"),
                                         ("download.bin", ".tar.age")])
def test_encrypted_archive_without_key_is_checked_by_its_header(sources, tmp_path, name, suffix):
    # A login_password (module_defaults may set one) is no key for a plain upload.
    facts, got, verification = backup_upload.inspect_archive(sources["age"], params(tmp_path, login_password="db-pw"),
                                                             str(tmp_path), name)
    assert (facts["kind"], got, verification) == (None, suffix, "header")
    assert facts["encryption"] == {"mode": "passphrase", "recipients": [], "stanzas": ["scrypt"]}


def damaged(sources, tmp_path, how):
    path = str(tmp_path / ("damaged-" + how))
    data = bytearray(open(sources["lifeboat"], "rb").read())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "flipped":
        index = data.index(b"PGDMP") if b"PGDMP" in data else data.index(b"SQLite format 3") + 200
        data[index] ^= 0xFF
    elif how == "not-an-archive":
        data = bytearray(b"just some text\n" * 100)
    elif how == "hostile":
        with tarfile.open(path, "w") as tar:
            for name, content in (("db/db.backup", PGDUMP), ("tree/../../escaped", b"x")):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        return path
    elif how == "age-header":
        data = bytearray(open(sources["age"], "rb").read().replace(b"\n--- ", b"\n-x- ", 1))
    with open(path, "wb") as handle:
        handle.write(data)
    return path


@pytest.mark.parametrize("how,message", [
    ("truncated", "truncated or corrupt"),
    ("flipped", "SHA-256"),
    ("not-an-archive", "is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL custom-format dump"),
    ("hostile", "unsafe member"),
    ("age-header", "age header"),
])
def test_inspect_rejects_damaged_archives_and_leaves_nothing(sources, tmp_path, how, message):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(LifeboatError, match=message):
        backup_upload.inspect_archive(damaged(sources, tmp_path, how), params(tmp_path), str(scratch))
    assert [name for _root, _dirs, files in os.walk(scratch) for name in files] == []


def test_wrong_key_is_rejected(sources, tmp_path):
    with pytest.raises(LifeboatError, match="wrong passphrase or key"):
        backup_upload.inspect_archive(sources["age"],
                                      params(tmp_path, encryption={"mode": "none", "passphrase": "nope"}),
                                      str(tmp_path))


# -------------------------------------------------------------------------------------------- upload


def test_upload_registers_once_and_then_finds_it(sources, tmp_path):
    source = sources["mendix"]
    digest = sha256_file(source)
    check = backup_upload.upload(params(tmp_path, src=source, _sha256=digest, _size=os.path.getsize(source)),
                                 check_mode=True)
    assert check["changed"] is True and check["backup"]["id"] is None and "upload_needed" not in check
    assert not os.path.exists(tmp_path / "catalog"), "check mode and the probe write nothing"

    done, uploaded = send(tmp_path, source, label="from-mendix", comment="from the cloud")
    assert done["changed"] is True and done["kind"] == "mendix" and done["verification"] == "structure"
    assert not os.path.exists(uploaded), "the uploaded file was taken in, not copied"
    entry = json.loads((tmp_path / "catalog" / "acc" / (done["backup"]["id"] + ".json")).read_text())
    assert entry["origin"] == "uploaded" and entry["original_name"] == "snapshot.tar.gz"
    assert entry["file"].endswith(".tar.gz") and entry["sha256"] == digest and entry["label"] == "from-mendix"
    assert entry["environment"] == "acc" and entry["engine"] == "postgresql" and entry["verification"] == "structure"
    archive_path = tmp_path / "catalog" / "acc" / entry["file"]
    assert archive_path.read_bytes() == open(source, "rb").read(), "the original bytes are kept"
    assert stat.S_IMODE(os.stat(archive_path).st_mode) == 0o600
    assert tmp_leftovers(tmp_path) == []

    again, uploaded = send(tmp_path, source, label="from-mendix")
    assert uploaded is None, "an identical archive is not sent again"
    assert again["changed"] is False and again["backup"]["id"] == done["backup"]["id"]
    assert len(Catalog(str(tmp_path / "catalog")).entries("acc")) == 1


def test_upload_of_a_bare_dump_keeps_it_as_it_is(sources, tmp_path, read_through):
    done, _uploaded = send(tmp_path, sources["pgdump"], engine="postgresql")
    assert done["changed"] is True and done["kind"] == "pgdump" and done["verification"] == "structure", done
    entry = Catalog(str(tmp_path / "catalog")).entries("acc").get(done["backup"]["id"])
    assert entry["file"].endswith(".backup") and open(entry["path"], "rb").read() == PGDUMP
    assert read_through == [PGDUMP]


@pytest.mark.parametrize("kind,shown", [("pgdump", "export.db"), ("age-dump", "dump.age (decrypted)")])
def test_bare_dump_that_does_not_read_through_is_refused(sources, tmp_path, monkeypatch, kind, shown):
    def cut_off(self, path):
        raise LifeboatError("pg_restore failed reading dump %s to its end (exit 1):\npg_restore: error: could not "
                            "read from input file: end of file" % path)

    monkeypatch.setattr(PgTools, "read_through", cut_off)
    with pytest.raises(LifeboatError) as failed:
        send(tmp_path, sources[kind], engine="postgresql", encryption={"mode": "none", "passphrase": PASSPHRASE})
    message = str(failed.value)
    assert message.startswith("rejected the upload of %s: pg_restore failed reading dump %s to its end"
                              % (os.path.basename(sources[kind]), shown)), message
    assert "end of file" in message and message.endswith("nothing was registered") and "/.tmp/" not in message
    assert Catalog(str(tmp_path / "catalog")).entries("acc") == [] and tmp_leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["pgdump", "age-dump"])
def test_bare_dump_for_an_sqlite_environment_is_refused(sources, tmp_path, read_through, kind):
    with pytest.raises(LifeboatError, match="rejected the upload of .*: it is a PostgreSQL custom-format dump, but "
                                            "environment acc has engine sqlite; upload it to an environment with "
                                            "engine postgresql; nothing was registered"):
        send(tmp_path, sources[kind], encryption={"mode": "none", "passphrase": PASSPHRASE})
    assert read_through == [] and Catalog(str(tmp_path / "catalog")).entries("acc") == []


@pytest.mark.parametrize("how", ["truncated", "flipped", "not-an-archive", "hostile", "age-header"])
def test_rejected_upload_registers_nothing_and_cleans_up(sources, tmp_path, how):
    with pytest.raises(LifeboatError, match="rejected the upload of damaged-%s: .*nothing was registered" % how):
        send(tmp_path, damaged(sources, tmp_path, how))
    assert Catalog(str(tmp_path / "catalog")).entries("acc") == []
    assert tmp_leftovers(tmp_path) == []
    assert os.listdir(tmp_path / "remote-tmp") == []


def test_upload_damaged_in_transfer_is_rejected(sources, tmp_path):
    source = sources["lifeboat"]
    uploaded = tmp_path / "lifeboat-upload"
    uploaded.write_bytes(open(source, "rb").read()[:-1] + b"?")
    values = params(tmp_path, src=source, _sha256=sha256_file(source), _size=os.path.getsize(source),
                    _uploaded=str(uploaded))
    with pytest.raises(LifeboatError, match="damaged in transfer"):
        backup_upload.upload(values)
    uploaded.write_bytes(open(source, "rb").read()[:100])
    with pytest.raises(LifeboatError, match="cut off"):
        backup_upload.upload(values)
    assert Catalog(str(tmp_path / "catalog")).entries("acc") == [] and tmp_leftovers(tmp_path) == []


def test_label_of_another_backup_is_refused_before_sending(sources, tmp_path):
    send(tmp_path, sources["lifeboat"], label="taken")
    with pytest.raises(LifeboatError, match="already has backup .* labelled 'taken'"):
        send(tmp_path, sources["mendix"], label="taken")
    assert os.listdir(tmp_path / "remote-tmp") == [], "refused before anything was sent"
    assert len(Catalog(str(tmp_path / "catalog")).entries("acc")) == 1


def test_not_enough_space_is_refused_before_sending(sources, tmp_path):
    values = params(tmp_path, _sha256="0" * 64, _size=1 << 60)
    with pytest.raises(LifeboatError, match="MiB free.*nothing was sent"):
        backup_upload.upload(values)


def test_the_module_needs_its_action_plugin(tmp_path):
    with pytest.raises(LifeboatError, match="action plugin"):
        backup_upload.upload(params(tmp_path))


def test_upload_and_restore_into_sqlite_then_again_unchanged(sources, tmp_path):
    target = sqlite_db(tmp_path / "acc.db", value="acceptance data")
    done, _uploaded = send(tmp_path, sources["age"], restore=True,
                           encryption={"mode": "none", "passphrase": PASSPHRASE})
    assert done["changed"] is True and done["restored"]["id"] == done["backup"]["id"], done
    assert rows(target) == [("original",)]
    assert done["previous"]["databases"] and rows(done["previous"]["databases"][0]) == [("acceptance data",)]
    assert done["diff"]["after"]["current"] == done["backup"]["id"]

    again, uploaded = send(tmp_path, sources["age"], restore=True,
                           encryption={"mode": "none", "passphrase": PASSPHRASE})
    assert uploaded is None and again["changed"] is False, again


def test_failed_restore_says_the_upload_is_registered(sources, tmp_path):
    target = sqlite_db(tmp_path / "acc.db", value="acceptance data")
    holder = sqlite3.connect(target)
    holder.execute("BEGIN EXCLUSIVE")  # the app holds the database
    try:
        with pytest.raises(LifeboatError, match="in use.*the upload itself succeeded: the archive is backup "):
            send(tmp_path, sources["lifeboat"], restore=True)
    finally:
        holder.rollback()
        holder.close()
    assert len(Catalog(str(tmp_path / "catalog")).entries("acc")) == 1
    assert rows(target) == [("acceptance data",)]
    again, uploaded = send(tmp_path, sources["lifeboat"], restore=True)
    assert uploaded is None and again["changed"] is True and rows(target) == [("original",)]


# ---------------------------------------------------------------------------------------- taking in


def test_move_in_copies_across_file_systems(tmp_path):
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    source = os.path.join("/dev/shm", "lifeboat-test-%d" % os.getpid())
    with open(source, "wb") as handle:
        handle.write(b"x" * 3000000)
    try:
        backup_upload._move_in(source, str(tmp_path / "in"))
    finally:
        if os.path.exists(source):
            os.unlink(source)
            pytest.fail("the source was not removed (it takes space until the upload is checked)")
    assert (tmp_path / "in").read_bytes() == b"x" * 3000000
    assert stat.S_IMODE(os.stat(tmp_path / "in").st_mode) == 0o600


@pytest.mark.parametrize("form", ["symlink", "hardlink", "directory"])
def test_move_in_refuses_anything_but_a_plain_file(tmp_path, form):
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    uploaded = tmp_path / "lifeboat-upload"
    if form == "symlink":
        uploaded.symlink_to(target)
    elif form == "hardlink":
        os.link(target, uploaded)
    else:
        uploaded.mkdir()
    with pytest.raises(LifeboatError):
        backup_upload._move_in(str(uploaded), str(tmp_path / "in"))
    assert not os.path.lexists(tmp_path / "in")
    assert stat.S_IMODE(os.stat(target).st_mode) != 0 and target.read_bytes() == b"secret"


@as_root
def test_move_in_gives_a_foreign_file_to_us(tmp_path):
    nobody = pwd.getpwnam("nobody")
    uploaded = tmp_path / "lifeboat-upload"
    uploaded.write_bytes(b"data")
    os.chown(uploaded, nobody.pw_uid, nobody.pw_gid)
    backup_upload._move_in(str(uploaded), str(tmp_path / "in"))
    info = os.stat(tmp_path / "in")
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
