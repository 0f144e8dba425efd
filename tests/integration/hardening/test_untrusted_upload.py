# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An upload from elsewhere, through real backup_upload runs: a manifest cannot put what it likes into the
catalog entry or the result, a damaged bare dump is not registered, and a passphrase archive cannot ask for
more scrypt work than encryption.max_work_factor allows."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import uuid

import pytest

from archives import flip_byte, truncate
from playbook import run_tasks

PASSPHRASE = "untrusted upload passphrase"
# Keys no Lifeboat writes: a 1 MiB one (a few KiB once gzipped), a result key to spoof, a nested tree; and the
# one database listed 100 times. (More values than the members need is refused before parsing: see test_archive.)
SPOOFED = {"padding": "A" * (1 << 20), "projects": [{"name": "db", "path": "/etc/shadow", "size": 1}],
           "nested": {"deeper": [{"path": "/etc/shadow"}] * 500}, "databases": lambda listed: listed * 100}
# What only an uploaded entry has beyond what backup_create writes.
UPLOAD_ONLY = {"kind", "verification", "source", "original_name"}


def entries(catalog, env):
    directory = os.path.join(catalog, env)
    if not os.path.isdir(directory):
        return []
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.endswith(".json") and name not in ("state.json", "journal.json")]


def sqlite_env(root, name):
    """An SQLite environment with a file store; its options."""
    (root / "files" / "ab").mkdir(parents=True)
    (root / "files" / "ab" / "photo.bin").write_bytes(os.urandom(3000))
    connection = sqlite3.connect(root / "app.db")
    connection.execute("CREATE TABLE t (v TEXT)")
    connection.execute("INSERT INTO t VALUES ('data')")
    connection.commit()
    connection.close()
    return {"environment": name, "engine": "sqlite", "path": str(root / "app.db"), "files_path": str(root / "files"),
            "catalog": str(root / "catalog")}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """An SQLite environment and a gzip archive of it, made by backup_create: (environment options, result)."""
    source = sqlite_env(tmp_path_factory.mktemp("source"), "source")
    [result] = run_tasks([{"lifeboat.backup.backup_create": dict(source, compression="gzip")}])
    return source, result


def with_manifest(src, dest, **changes):
    """A copy of the archive ``src`` whose lifeboat.json has ``changes`` (a function gets the old value): every
    checksum in it stays right."""
    with tarfile.open(src, "r:gz") as old, tarfile.open(dest, "w:gz", format=tarfile.PAX_FORMAT) as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else None
            if member.name == "lifeboat.json":
                manifest = json.loads(data)
                manifest.update({key: change(manifest.get(key)) if callable(change) else change
                                 for key, change in changes.items()})
                data = json.dumps(manifest).encode()
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    return dest


# ------------------------------------------------------------------------------------ manifest keys (6)


def test_manifest_cannot_put_unknown_keys_into_the_entry_or_the_result(made, tmp_path):
    source, created = made
    spoofed = with_manifest(created["backup"]["path"], str(tmp_path / "spoofed.tar.gz"), **SPOOFED)
    assert os.path.getsize(spoofed) < 64 * 1024, "a small upload"
    target = sqlite_env(tmp_path / "acc", "acc")
    [done] = run_tasks([{"lifeboat.backup.backup_upload": dict(target, src=spoofed)}])

    assert done["changed"] is True and done["verification"] == "checksums", done
    assert done["backup"]["projects"] is None and "/etc/shadow" not in json.dumps(done), "nothing spoofed"
    [entry_path] = entries(target["catalog"], "acc")
    assert os.path.getsize(entry_path) < 8192, "the entry stays small, whatever the manifest holds"
    entry = json.load(open(entry_path))
    local = json.load(open(os.path.join(source["catalog"], "source", created["backup"]["id"] + ".json")))
    assert set(entry) - UPLOAD_ONLY == set(local), "the entry has the shape of one backup_create writes"
    assert {key: type(entry[key]) for key in local} == {key: type(local[key]) for key in local}
    assert [dict(d, database=None) for d in entry["databases"]] == [dict(d, database=None) for d in local["databases"]]
    assert entry["files"] == local["files"] and entry["source"]["backup_id"] == local["id"]


# A known key with a value no Lifeboat writes (the last one 100 KB long), and how the refusal shows it.
WRONG = [
    ("structure_version", "1.2.3", "structure_version as '1.2.3', which should be an integer"),
    ("engine", {"name": "sqlite"}, "engine as {'name': 'sqlite'}, which should be postgresql or sqlite"),
    ("linked_structure_versions", {"../x": 1}, "linked_structure_versions as {'../x': 1}, which should be"),
    ("label", ["nightly"], "label as ['nightly'], which should be null or a string"),
    ("server_version", "9" * 100000, "server_version as '9999"),
]


def test_manifest_with_a_wrong_value_for_a_known_key_is_refused(made, tmp_path):
    _source, created = made
    target = sqlite_env(tmp_path / "acc", "acc")
    tasks = []
    for index, (key, value, _shown) in enumerate(WRONG):
        bad = with_manifest(created["backup"]["path"], str(tmp_path / ("bad-%d.tar.gz" % index)), **{key: value})
        tasks.append({"lifeboat.backup.backup_upload": dict(target, src=bad)})
    results = run_tasks(tasks)

    for index, ((key, _value, shown), refused) in enumerate(zip(WRONG, results)):
        assert refused["failed"] is True, (key, refused)
        message = refused["msg"]
        assert message.startswith("rejected the upload of bad-%d.tar.gz: its manifest gives %s" % (index, shown)), \
            message
        assert message.endswith("the archive was altered or made by another tool; nothing was registered"), message
        assert len(message) < 400 and "Traceback" not in message
    assert entries(target["catalog"], "acc") == []


# --------------------------------------------------------------------------------------- bare dumps (12)


@pytest.mark.postgres
def test_bare_dump_is_read_to_its_end_before_it_is_registered(pg_cluster, tmp_path):
    name = "dump_" + uuid.uuid4().hex[:8]
    pg_cluster.psql("CREATE DATABASE %s" % name)
    pg_cluster.psql("CREATE TABLE t AS SELECT i, md5(i::text) AS m FROM generate_series(1, 20000) i", db=name)
    good = str(tmp_path / "good.backup")
    subprocess.run([os.path.join(pg_cluster.bin_dir, "pg_dump"), "-Fc", "-h", pg_cluster.socket_dir,
                    "-p", str(pg_cluster.port), "-U", "postgres", "-f", good, name], check=True)
    bad = {"truncated.backup": 0.6, "flipped.backup": None}
    for dump, keep in bad.items():
        shutil.copy(good, tmp_path / dump)
        if keep:
            truncate(tmp_path / dump, keep=keep)
        else:
            flip_byte(tmp_path / dump)  # in the middle: the table's compressed data
        listed = subprocess.run([os.path.join(pg_cluster.bin_dir, "pg_restore"), "--list", str(tmp_path / dump)],
                                capture_output=True, check=False)
        assert listed.returncode == 0, "the header and table of contents are intact: only reading on finds it"
    pg = dict(pg_cluster.conn_params(tcp=False), environment=name, catalog=str(tmp_path / "catalog"))
    lite = dict(sqlite_env(tmp_path / "lite", "lite"), src=good)
    results = run_tasks([{"lifeboat.backup.backup_upload": dict(pg, src=str(tmp_path / dump))} for dump in bad]
                        + [{"lifeboat.backup.backup_upload": lite},
                           {"lifeboat.backup.backup_upload": dict(pg, src=good)}])
    *refused, wrong_engine, done = results

    for dump, result in zip(bad, refused):
        assert result["failed"] is True, (dump, result)
        message = result["msg"]
        assert message.startswith("rejected the upload of %s: pg_restore failed reading dump %s to its end"
                                  % (dump, dump)), message
        assert message.endswith("nothing was registered") and "/.tmp/" not in message, message
    assert "could not read from input file" in refused[0]["msg"], refused[0]["msg"]
    assert wrong_engine["failed"] is True and "it is a PostgreSQL custom-format dump, but environment lite has " \
        "engine sqlite; upload it to an environment with engine postgresql" in wrong_engine["msg"], wrong_engine
    assert entries(lite["catalog"], "lite") == []
    assert done["changed"] is True and done["kind"] == "pgdump" and done["verification"] == "structure", done
    [entry_path] = entries(pg["catalog"], name)
    entry = json.load(open(entry_path))
    assert entry["id"] == done["backup"]["id"] and entry["original_name"] == "good.backup"


# ----------------------------------------------------------------------------------- max_work_factor (10)


def test_max_work_factor_bounds_the_scrypt_work_of_a_passphrase_archive(made, tmp_path):
    source, _created = made
    sealed = {"mode": "passphrase", "passphrase": PASSPHRASE, "work_factor": 16}
    [encrypted] = run_tasks([{"lifeboat.backup.backup_create": dict(source, encryption=sealed)}])
    target = sqlite_env(tmp_path / "acc", "acc")
    upload = dict(target, src=encrypted["backup"]["path"])
    too_high, out_of_range, done = run_tasks([
        {"lifeboat.backup.backup_upload": dict(upload, encryption={"passphrase": PASSPHRASE, "max_work_factor": 15})},
        {"lifeboat.backup.backup_upload": dict(upload, encryption={"passphrase": PASSPHRASE, "max_work_factor": 25})},
        {"lifeboat.backup.backup_upload": dict(upload, encryption={"passphrase": PASSPHRASE})},
    ])

    assert too_high["failed"] is True, too_high
    assert "the passphrase work factor of this file is 2^16, above the accepted limit 2^15; if you trust the " \
        "file, raise encryption.max_work_factor" in too_high["msg"], too_high["msg"]
    assert out_of_range["failed"] is True, out_of_range
    assert "invalid encryption.max_work_factor 25: use an integer from 10 to 24" in out_of_range["msg"], out_of_range
    assert done["changed"] is True and done["verification"] == "checksums", "the default (22) reads it"
    assert len(entries(target["catalog"], "acc")) == 1
