# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_upload through real ansible-playbook runs: every accepted kind restored into a real PostgreSQL
server, damaged and unsafe archives rejected, idempotence, and the same over a real SSH connection."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import uuid

import psycopg
import pytest

from ansible_collections.lifeboat.backup.tests.databases import rows, sqlite_db
from archives import flip_byte, hostile_archive, mendix_snapshot, truncate
from datasets import files_snapshot, make_pg_app, pg_snapshot
from inventory_play import run_play
from playbook import run_tasks
from sshd import sshd_server, unprivileged_user  # noqa: F401  # pylint: disable=unused-import

PASSPHRASE = "upload test passphrase"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def entries(catalog, env):
    directory = os.path.join(catalog, env)
    if not os.path.isdir(directory):
        return []
    return [json.load(open(os.path.join(directory, name))) for name in sorted(os.listdir(directory))
            if name.endswith(".json") and name not in ("state.json", "journal.json")]


def tmp_leftovers(catalog, env):
    tmp = os.path.join(catalog, env, ".tmp")
    return os.listdir(tmp) if os.path.isdir(tmp) else []


def pg_source(cluster, tmp_path):
    """A PostgreSQL application with a file store, and a pg_dump -Fc of it as Mendix makes them."""
    name = "up_" + uuid.uuid4().hex[:8]
    make_pg_app(cluster, name, rows=60)
    files = tmp_path / name / "files"
    (files / "0d" / "3e").mkdir(parents=True)
    (files / "0d" / "3e" / "photo.bin").write_bytes(os.urandom(2000))
    env = dict(cluster.conn_params(tcp=False), environment=name, database=name, files_path=str(files),
               catalog=str(tmp_path / "source-catalog"))
    dump = str(tmp_path / "db.backup")
    subprocess.run([os.path.join(cluster.bin_dir, "pg_dump"), "-Fc", "-O", "-x", "-h", cluster.socket_dir,
                    "-p", str(cluster.port), "-U", "postgres", "-f", dump, name], check=True)
    return env, dump


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["mendix", "pgdump", "lifeboat", "age"])
def test_upload_and_restore_each_kind(pg_cluster, tmp_path, kind):
    source, dump = pg_source(pg_cluster, tmp_path)
    target = dict(pg_cluster.conn_params(tcp=False), environment=source["environment"] + "-acc",
                  database=source["database"] + "_acc", files_path=str(tmp_path / "acc-files"),
                  catalog=str(tmp_path / "catalog"), owner=source["database"])
    tasks = []
    if kind == "mendix":
        src = str(tmp_path / "snapshot.tar.gz")
        mendix_snapshot(src, dump, {"0d/3e/photo.bin": b"from the cloud"})
    elif kind == "pgdump":
        src = str(tmp_path / "colleague.db")  # recognised by content, whatever the name
        shutil.copy(dump, src)
    else:
        sealed = {"mode": "passphrase", "passphrase": PASSPHRASE, "work_factor": 10} if kind == "age" else None
        tasks.append({"lifeboat.backup.backup_create": dict(source, encryption=sealed or {"mode": "none"})})
        src = "{{ lifeboat_result_0.backup.path }}"
    key = {"encryption": {"passphrase": PASSPHRASE}} if kind == "age" else {}
    upload = dict(target, src=src, restore=True, label="imported", **key)
    first = len(tasks)
    tasks += [
        {"lifeboat.backup.backup_upload": upload, "check_mode": True},
        {"ansible.builtin.stat": {"path": target["catalog"]}, "check_mode": False},
        {"lifeboat.backup.backup_upload": upload},
        {"lifeboat.backup.backup_upload": upload},
    ]
    results = run_tasks(tasks, diff=True)
    check, after_check, done, again = results[first:]

    assert check["changed"] is True and check["transferred"] is False, check
    assert check["diff"]["before"]["uploaded"] is None
    assert after_check["stat"]["exists"] is False, "check mode sends and registers nothing"

    assert done["changed"] is True and done["transferred"] is True, done
    assert done["kind"] == {"age": "lifeboat"}.get(kind, kind)
    assert done["verification"] == {"mendix": "structure", "pgdump": "structure"}.get(kind, "checksums")
    assert done["restored"]["id"] == done["backup"]["id"]
    assert pg_snapshot(pg_cluster, target["database"])["rows"] == pg_snapshot(pg_cluster, source["database"])["rows"]
    if kind == "mendix":
        assert (tmp_path / "acc-files" / "0d" / "3e" / "photo.bin").read_bytes() == b"from the cloud"
    elif kind != "pgdump":
        assert files_snapshot(target["files_path"]) == files_snapshot(source["files_path"])

    src_path = results[0]["backup"]["path"] if kind in ("lifeboat", "age") else src
    [entry] = entries(target["catalog"], target["environment"])
    assert entry["id"] == done["backup"]["id"] and entry["sha256"] == sha256(src_path)
    assert entry["origin"] == "uploaded" and entry["original_name"] == os.path.basename(src_path)
    assert entry["label"] == "imported" and entry["engine"] == "postgresql"
    assert open(os.path.join(target["catalog"], target["environment"], entry["file"]), "rb").read() == \
        open(src_path, "rb").read(), "the archive is kept byte for byte"

    assert again["changed"] is False and again["transferred"] is False, again
    assert again["backup"]["id"] == done["backup"]["id"]
    assert len(entries(target["catalog"], target["environment"])) == 1


def sqlite_app(root, value):
    root.mkdir(parents=True, exist_ok=True)
    return sqlite_db(root / "app.db", value)


def make_archive(tmp_path, value="from the archive"):
    """A Lifeboat archive of a small SQLite environment with a file store, made by backup_create."""
    files = tmp_path / "source" / "files"
    files.mkdir(parents=True)
    (files / "photo.bin").write_bytes(os.urandom(200000))  # most of the archive: a cut lands in it
    source = {"environment": "source", "engine": "sqlite", "path": sqlite_app(tmp_path / "source", value),
              "files_path": str(files), "catalog": str(tmp_path / "source-catalog")}
    results = run_tasks([{"lifeboat.backup.backup_create": source}])
    return results[0]["backup"]["path"]


def test_damaged_and_unsafe_uploads_are_rejected(tmp_path):
    good = make_archive(tmp_path)
    bad = {}
    for how in ("truncated", "flipped", "random"):
        bad[how] = str(tmp_path / ("%s.tar" % how))
        shutil.copy(good, bad[how])
    truncate(bad["truncated"], keep=0.6)
    flip_byte(bad["flipped"], offset=2048)  # inside db/db.backup
    with open(bad["random"], "wb") as handle:
        handle.write(os.urandom(100000))
    bad["hostile"] = str(tmp_path / "hostile.tar")
    hostile_archive(bad["hostile"], "dotdot", str(tmp_path / "source" / "app.db"))
    target = {"environment": "acc", "engine": "sqlite", "path": sqlite_app(tmp_path / "acc", "acceptance"),
              "catalog": str(tmp_path / "catalog")}
    remote_tmp = tmp_path / "remote-tmp"
    tasks = [{"lifeboat.backup.backup_upload": dict(target, src=path, restore=True)} for path in bad.values()]
    results = run_tasks(tasks, play_vars={"ansible_remote_tmp": str(remote_tmp)})
    expected = {
        "truncated": "truncated or corrupt",
        "flipped": "the manifest says",
        "random": "is not a Lifeboat archive, a Mendix snapshot or a PostgreSQL custom-format dump",
        "hostile": "unsafe member 'tree/../../escaped.txt'",
    }
    for how, result in zip(bad, results):
        assert result["failed"] is True, (how, result)
        assert "rejected the upload of %s" % os.path.basename(bad[how]) in result["msg"], (how, result["msg"])
        assert expected[how] in result["msg"] and "nothing was registered" in result["msg"], (how, result["msg"])
        assert "Traceback" not in result["msg"] and "/.tmp/" not in result["msg"], result["msg"]
    assert entries(target["catalog"], "acc") == []
    assert tmp_leftovers(target["catalog"], "acc") == []
    assert not remote_tmp.exists() or os.listdir(remote_tmp) == [], "the node's tmp dirs are removed"
    assert rows(target["path"]) == [("acceptance",)]
    assert not os.path.exists(tmp_path / "escaped.txt")


@pytest.mark.postgres
def test_restore_is_refused_while_the_app_is_connected(pg_cluster, tmp_path):
    source, dump = pg_source(pg_cluster, tmp_path)
    db = "acc_" + uuid.uuid4().hex[:8]
    app_password = make_pg_app(pg_cluster, db, rows=5)
    target = dict(pg_cluster.conn_params(tcp=False), environment=db, database=db,
                  catalog=str(tmp_path / "catalog"), src=dump, restore=True)
    before = pg_snapshot(pg_cluster, db)["rows"]
    app = psycopg.connect(host=pg_cluster.host, port=pg_cluster.port, dbname=db, user=db, password=app_password,
                          autocommit=True)
    try:
        results = run_tasks([
            {"lifeboat.backup.backup_upload": target},
            {"lifeboat.backup.backup_upload": dict(target, terminate_sessions=True)},
        ])
    finally:
        app.close()
    refused, done = results
    assert refused["failed"] is True, refused
    assert "1 session" in refused["msg"] and "terminate_sessions" in refused["msg"], refused["msg"]
    assert "the upload itself succeeded" in refused["msg"], refused["msg"]
    [entry] = entries(target["catalog"], db)
    assert entry["id"] in refused["msg"], "the message names the registered backup"
    assert done["changed"] is True and done["transferred"] is False, done
    assert done["restored"]["id"] == entry["id"]
    assert before != pg_snapshot(pg_cluster, db)["rows"] == pg_snapshot(pg_cluster, source["database"])["rows"]


# ------------------------------------------------------------------------------------------------- SSH


@pytest.mark.ssh
def test_upload_and_download_over_ssh_as_root(sshd_server, tmp_path):  # noqa: F811
    src = make_archive(tmp_path)
    target = {"environment": "acc", "engine": "sqlite", "path": sqlite_app(tmp_path / "acc", "acceptance"),
              "catalog": str(tmp_path / "catalog")}
    upload = dict(target, src=src, restore=True)
    results, process, _peak = run_play([
        {"lifeboat.backup.backup_upload": upload},
        {"lifeboat.backup.backup_upload": upload},
        {"lifeboat.backup.backup_download": dict(target, dest=str(tmp_path / "downloads"))},
    ], host_vars=sshd_server.host_vars("root"))
    done, again, downloaded = results
    assert done["changed"] is True and done["transferred"] is True, (done, process.stdout[-2000:])
    assert rows(target["path"]) == [("from the archive",)]
    assert again["changed"] is False and again["transferred"] is False, again
    # Without become the archive is fetched straight from the catalog, and comes back as it went.
    assert downloaded["changed"] is True and downloaded["backup"]["id"] == done["backup"]["id"], downloaded
    assert sha256(downloaded["dest"]) == sha256(src)


@pytest.mark.ssh
def test_upload_over_ssh_with_become_into_a_root_only_catalog(sshd_server, unprivileged_user, tmp_path):  # noqa: F811
    src = make_archive(tmp_path)
    target = {"environment": "acc", "engine": "sqlite", "path": sqlite_app(tmp_path / "acc", "acceptance"),
              "catalog": str(tmp_path / "catalog"), "src": src, "restore": True, "label": "via-ssh"}
    results, process, _peak = run_play([{"lifeboat.backup.backup_upload": target}],
                                       host_vars=sshd_server.host_vars(unprivileged_user.pw_name), become=True)
    [done] = results
    assert done["changed"] is True and done["transferred"] is True, (done, process.stdout[-2000:])
    assert rows(target["path"]) == [("from the archive",)]
    info = os.stat(done["backup"]["path"])
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), "taken over by root, not left to the SSH user"
    assert stat.S_IMODE(os.stat(os.path.join(target["catalog"], "acc")).st_mode) == 0o700
    remote_tmp = os.path.join(unprivileged_user.pw_dir, ".ansible", "tmp")
    assert not os.path.isdir(remote_tmp) or os.listdir(remote_tmp) == [], os.listdir(remote_tmp)
