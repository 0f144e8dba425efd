# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_info: listing, checksum verification and restore verification, through real ansible-playbook runs."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import sqlite3
import uuid

from archives import flip_byte, mendix_snapshot
from datasets import make_pg_app, pg_snapshot
from playbook import run_tasks

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    isoformat,
    new_backup_id,
    parse_isoformat,
)

CREATE = "lifeboat.backup.backup_create"
INFO = "lifeboat.backup.backup_info"


def sqlite_env(root, name):
    app = root / name
    (app / "files").mkdir(parents=True)
    connection = sqlite3.connect(app / "app.db")
    connection.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                             "INSERT INTO notes (body) VALUES ('first'), ('second');")
    connection.close()
    (app / "files" / "a.txt").write_text("attachment\n")
    return {"environment": name, "engine": "sqlite", "path": str(app / "app.db"), "files_path": str(app / "files"),
            "catalog": str(root / "catalog")}


def newest_first(entries):
    return sorted(entries, key=lambda entry: (entry["created_at"], entry["id"]), reverse=True)


def register(catalog_dir, env_name, source, after, suffix=".tar", **fields):
    """Put the file ``source`` into the catalog as a backup made one second after ``after`` (an entry)."""
    catalog = Catalog(catalog_dir)
    moment = parse_isoformat(after["created_at"]) + datetime.timedelta(seconds=1)
    backup_id = new_backup_id(moment)
    tmp = os.path.join(catalog.tmp_dir(env_name), backup_id + ".part")
    shutil.copy(source, tmp)
    entry = {"id": backup_id, "created_at": isoformat(moment), "label": None, "comment": None,
             "encryption": {"mode": "none", "recipients": []}, "origin": "uploaded"}
    entry.update(fields)
    return catalog.add(env_name, entry, tmp, suffix)


def leftovers(env):
    """Scratch copies and temporary directories that a verification could have left behind."""
    directory = os.path.dirname(env["path"])
    found = [name for name in os.listdir(directory) if ".lb_" in name]
    tmp = os.path.join(env["catalog"], env["environment"], ".tmp")
    return found + (os.listdir(tmp) if os.path.isdir(tmp) else [])


def test_lists_one_or_every_environment(tmp_path):
    wiki, blog = sqlite_env(tmp_path, "wiki"), sqlite_env(tmp_path, "blog")
    catalog = {"catalog": wiki["catalog"]}
    results = run_tasks([
        {CREATE: dict(wiki, label="first", comment="before the upgrade")},
        {CREATE: dict(wiki, compression="gzip")},
        {CREATE: blog},
        {INFO: dict(catalog, environment="wiki")},
        {INFO: catalog},
        {INFO: dict(catalog, environment="nosuch")},
    ])
    first, second, other, listed, everything, missing = results
    assert not any(result.get("failed") for result in results), results

    assert listed["changed"] is False
    assert listed["environments"] == ["wiki"]
    expected = newest_first([first["backup"], second["backup"]])
    assert [b["id"] for b in listed["backups"]] == [b["id"] for b in expected]
    shown = {b["id"]: b for b in listed["backups"]}[first["backup"]["id"]]
    assert shown["label"] == "first" and shown["comment"] == "before the upgrade"
    assert shown["origin"] == "created" and shown["encryption"] == "none" and shown["engine"] == "sqlite"
    assert shown["environment"] == "wiki" and shown["compression"] == "none"
    with open(shown["path"], "rb") as handle:
        assert shown["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert shown["size"] == os.path.getsize(shown["path"])
    assert [d["name"] for d in shown["databases"]] == ["db"] and shown["files"]["count"] == 1
    assert listed["current"] == {"wiki": None} and listed["previous"] == []
    assert "damaged" not in listed and "verified" not in listed

    assert everything["environments"] == ["blog", "wiki"]
    all_ids = [b["id"] for b in newest_first([first["backup"], second["backup"], other["backup"]])]
    assert [b["id"] for b in everything["backups"]] == all_ids
    assert {b["environment"] for b in everything["backups"]} == {"wiki", "blog"}

    assert missing["backups"] == [] and missing["environments"] == []
    assert any("nosuch" in warning for warning in missing.get("warnings", [])), missing


def test_checksum_and_restore_verification(tmp_path):
    wiki, blog = sqlite_env(tmp_path, "wiki"), sqlite_env(tmp_path, "blog")
    results = run_tasks([{CREATE: wiki}, {CREATE: wiki}, {CREATE: wiki}, {CREATE: blog}])
    assert not any(result.get("failed") for result in results), results
    lost, flipped, good = newest_first([r["backup"] for r in results[:3]])[::-1]
    blog_backup = results[3]["backup"]
    os.unlink(lost["path"])
    flip_byte(flipped["path"])
    # An encrypted copy of the good backup, as an upload from another node would bring it.
    identity, recipient = age.generate_x25519_identity()
    encrypted_file = str(tmp_path / "copy.tar.age")
    age.encrypt_file(good["path"], encrypted_file, recipients=[recipient])
    encrypted = register(wiki["catalog"], "wiki", encrypted_file, good, suffix=".tar.age", engine="sqlite",
                         encryption={"mode": "recipients", "recipients": [recipient]})
    before = sqlite3.connect(wiki["path"]).execute("SELECT * FROM notes").fetchall()

    # blog is busy (a restore, as far as anyone can tell) for the whole play.
    with Catalog(blog["catalog"]).lock("blog", "restore"):
        results = run_tasks([
            {INFO: {"catalog": wiki["catalog"], "verify": "checksum"}},
            {INFO: dict(wiki, verify="restore", backup=good["id"])},
            {INFO: dict(wiki, verify="restore", backup=encrypted["id"], encryption={"identity": identity})},
            {INFO: dict(wiki, verify="restore", backup=encrypted["id"])},
            {INFO: dict(blog, verify="restore")},
        ])
    checksums, plain, decrypted, no_key, busy = results

    assert checksums["changed"] is False and not checksums.get("failed"), checksums
    damaged = {item["id"]: item for item in checksums["damaged"]}
    assert set(damaged) == {lost["id"], flipped["id"]}, checksums["damaged"]
    assert "missing" in damaged[lost["id"]]["reason"]
    assert "SHA-256" in damaged[flipped["id"]]["reason"] and damaged[flipped["id"]]["environment"] == "wiki"
    assert sorted(checksums["verified"]["checksum"]) == sorted([flipped["id"], good["id"], encrypted["id"],
                                                                blog_backup["id"]])
    assert checksums["verified"]["restore"] is None

    assert plain["changed"] is False and not plain.get("failed"), plain
    assert plain["verified"]["restore"]["id"] == good["id"]
    assert plain["verified"]["restore"]["scratch"] == wiki["path"] + ".lb_verify"
    assert {item["id"] for item in plain["damaged"]} == {lost["id"], flipped["id"]}

    assert not decrypted.get("failed"), decrypted
    assert decrypted["verified"]["restore"]["id"] == encrypted["id"]
    assert [b["encryption"] for b in decrypted["backups"] if b["id"] == encrypted["id"]] == ["recipients"]

    assert no_key.get("failed") and "encrypted" in no_key["msg"] and encrypted["id"] in no_key["msg"], no_key

    assert busy.get("failed") and "busy" in busy["msg"] and "restore by pid %d" % os.getpid() in busy["msg"], busy

    assert leftovers(wiki) == [] and leftovers(blog) == []
    assert sqlite3.connect(wiki["path"]).execute("SELECT * FROM notes").fetchall() == before


def test_broken_dump_is_reported_check_mode_only_checks_checksums(tmp_path):
    wiki = sqlite_env(tmp_path, "wiki")
    created = run_tasks([{CREATE: wiki}])
    good = created[0]["backup"]
    garbage = tmp_path / "db.backup"
    garbage.write_bytes(b"this is not an SQLite database\n" * 100)
    snapshot = str(tmp_path / "snapshot.tar.gz")
    mendix_snapshot(snapshot, str(garbage))
    broken = register(wiki["catalog"], "wiki", snapshot, good, suffix=".tar.gz", engine="sqlite")

    results = run_tasks([
        {INFO: dict(wiki, verify="restore"), "check_mode": True},
        {INFO: dict(wiki, verify="restore")},
        {INFO: dict(wiki, verify="restore", backup=good["id"])},
    ])
    checked, latest, older = results
    # Check mode restores nothing: the broken dump goes unnoticed, its checksum being right.
    assert checked["changed"] is False and not checked.get("failed"), checked
    assert checked["damaged"] == [] and checked["verified"]["restore"] is None

    assert latest["changed"] is False and not latest.get("failed"), latest
    assert [b["origin"] for b in latest["backups"]] == ["uploaded", "created"]
    assert [item["id"] for item in latest["damaged"]] == [broken["id"]]
    assert "cannot be restored" in latest["damaged"][0]["reason"]
    assert "SQLite" in latest["damaged"][0]["reason"]
    assert latest["verified"]["restore"] is None
    assert older["damaged"] == [] and older["verified"]["restore"]["id"] == good["id"], older
    assert leftovers(wiki) == []


def test_restore_verification_on_postgresql(pg_cluster, tmp_path):
    name = "info_" + uuid.uuid4().hex[:8]
    make_pg_app(pg_cluster, name, rows=50)
    env = dict(pg_cluster.conn_params(tcp=False), environment=name, database=name, catalog=str(tmp_path / "cat"))
    created = run_tasks([{CREATE: env}])
    good = created[0]["backup"]
    assert not created[0].get("failed"), created[0]
    bogus = tmp_path / "bogus.dump"
    bogus.write_bytes(b"PGDMP" + os.urandom(4000))  # looks like a custom-format dump, is not one
    broken = register(env["catalog"], name, str(bogus), good, engine="postgresql")
    before = pg_snapshot(pg_cluster, name)

    latest, older = run_tasks([{INFO: dict(env, verify="restore")},
                               {INFO: dict(env, verify="restore", backup=good["id"])}])
    assert not latest.get("failed"), latest
    assert [item["id"] for item in latest["damaged"]] == [broken["id"]], latest
    assert "pg_restore" in latest["damaged"][0]["reason"]
    assert not older.get("failed") and older["damaged"] == [], older
    assert older["verified"]["restore"] == dict(older["verified"]["restore"], id=good["id"],
                                                scratch=name + "__lb_verify")
    assert pg_cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=[name + "%"]) == [(name,)]
    assert pg_snapshot(pg_cluster, name) == before
