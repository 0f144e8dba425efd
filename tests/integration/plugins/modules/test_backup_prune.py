# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_prune: retention over a real catalog and pruning of previous copies, through real ansible-playbook runs."""

from __future__ import annotations

import datetime
import os
import shutil
import sqlite3

from archives import flip_byte
from playbook import run_tasks

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import isoformat, new_backup_id, utcnow

CREATE = "lifeboat.backup.backup_create"
RESTORE = "lifeboat.backup.backup_restore"
PRUNE = "lifeboat.backup.backup_prune"
# Only what backup pruning needs: no database options.
CATALOG_ONLY = ("environment", "catalog")


def sqlite_env(root, name):
    app = root / name
    (app / "files").mkdir(parents=True)
    connection = sqlite3.connect(app / "app.db")
    connection.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                             "INSERT INTO notes (body) VALUES ('first');")
    connection.close()
    (app / "files" / "a.txt").write_text("attachment\n")
    return {"environment": name, "engine": "sqlite", "path": str(app / "app.db"), "files_path": str(app / "files"),
            "catalog": str(root / "catalog")}


def only(env, keys=CATALOG_ONLY):
    return {key: env[key] for key in keys}


def newest_first(entries):
    return sorted(entries, key=lambda entry: (entry["created_at"], entry["id"]), reverse=True)


def months_ago(moment, months, day):
    index = moment.year * 12 + moment.month - 1 - months
    return moment.replace(year=index // 12, month=index % 12 + 1, day=day, hour=12, minute=0, second=0)


def fabricate(env, template, moment, label=None):
    """A copy of a real backup registered as made at ``moment`` (its id matching that time)."""
    catalog = Catalog(env["catalog"])
    backup_id = new_backup_id(moment)
    tmp = os.path.join(catalog.tmp_dir(env["environment"]), backup_id + ".part")
    shutil.copy(template["path"], tmp)
    stored = Catalog(env["catalog"]).entries(env["environment"]).get(template["id"])
    entry = {key: value for key, value in stored.items()
             if key not in ("path", "file", "size", "sha256", "environment")}
    entry.update(id=backup_id, created_at=isoformat(moment), label=label)
    return catalog.add(env["environment"], entry, tmp, ".tar")


def present(env):
    """Ids of the backups whose entry or archive is still in the catalog."""
    directory = os.path.join(env["catalog"], env["environment"])
    return sorted({name.split(".")[0] for name in os.listdir(directory) if name[:1].isdigit()})


def test_retention_check_mode_real_run_and_idempotence(tmp_path):
    env = sqlite_env(tmp_path, "wiki")
    created = run_tasks([{CREATE: env}, {CREATE: env}])
    newest, other = newest_first([result["backup"] for result in created])
    now = utcnow()
    monthly = [fabricate(env, newest, months_ago(now, k, 15)) for k in range(1, 7)]
    older_same_month = fabricate(env, newest, months_ago(now, 1, 14))
    labelled = fabricate(env, newest, months_ago(now, 9, 15), label="golden")
    everything = present(env)
    assert len(everything) == 10

    # The three most recent months with backups: this one (newest), last month (the 15th), the month before.
    kept = [newest["id"], monthly[0]["id"], monthly[1]["id"], labelled["id"]]
    removed = [other["id"], older_same_month["id"]] + [entry["id"] for entry in monthly[2:]]
    rule = dict(only(env), keep_monthly=3)

    planned = run_tasks([{PRUNE: rule}], check=True, diff=True)
    assert planned[0]["changed"] is True and not planned[0].get("failed"), planned[0]
    assert planned[0]["kept"] == kept and planned[0]["removed"] == removed
    assert planned[0]["diff"]["after"]["backups"] == kept
    assert sorted(planned[0]["diff"]["before"]["backups"]) == everything
    assert present(env) == everything, "check mode must delete nothing"

    results = run_tasks([
        {PRUNE: rule},
        {PRUNE: rule},
        {PRUNE: only(env)},
        {PRUNE: dict(only(env), keep_last=0)},
        {PRUNE: dict(only(env), keep_last=0, prune_labelled=True)},
    ])
    real, again, no_rules, last_zero, labels_too = results
    assert not any(result.get("failed") for result in results), results
    assert real["changed"] is True and real["removed"] == removed and real["kept"] == kept
    assert real["reasons"][labelled["id"]] == ["labelled golden"]
    assert real["reasons"][monthly[0]["id"]] == ["monthly " + months_ago(now, 1, 15).strftime("%Y-%m")]
    assert again["changed"] is False and again["removed"] == [] and again["kept"] == kept
    assert no_rules["changed"] is False and no_rules["kept"] == kept
    assert last_zero["changed"] is True and last_zero["kept"] == [newest["id"], labelled["id"]]
    assert labels_too["removed"] == [labelled["id"]] and labels_too["kept"] == [newest["id"]]
    assert present(env) == [newest["id"]]
    assert os.path.isfile(newest["path"])


def test_damaged_newest_keeps_newest_intact_and_lock_is_respected(tmp_path):
    env, blog = sqlite_env(tmp_path, "wiki"), sqlite_env(tmp_path, "blog")
    created = run_tasks([{CREATE: env}, {CREATE: blog}])
    first = created[0]["backup"]
    now = utcnow()
    oldest = fabricate(env, first, now - datetime.timedelta(days=2))
    intact = fabricate(env, first, now - datetime.timedelta(days=1))
    damaged = fabricate(env, first, now + datetime.timedelta(seconds=5))
    flip_byte(damaged["path"])
    blog_before = present(blog)

    with Catalog(blog["catalog"]).lock("blog", "restore"):
        results = run_tasks([
            {PRUNE: dict(only(env), keep_last=0)},
            {PRUNE: dict(only(blog), keep_last=0)},
        ])
    pruned, busy = results
    assert pruned["changed"] is True and not pruned.get("failed"), pruned
    # The damaged newest stays (never delete the newest), and so does the newest intact one.
    assert pruned["kept"] == [damaged["id"], first["id"]]
    assert pruned["removed"] == [intact["id"], oldest["id"]]
    assert pruned["reasons"][first["id"]] == ["newest intact"]
    assert [item["id"] for item in pruned["damaged"]] == [damaged["id"]]
    assert "SHA-256" in pruned["damaged"][0]["reason"]
    assert present(env) == sorted([damaged["id"], first["id"]])

    assert busy.get("failed") and "busy" in busy["msg"] and "restore by pid %d" % os.getpid() in busy["msg"], busy
    assert present(blog) == blog_before


def notes(env, body=None):
    connection = sqlite3.connect(env["path"])
    if body:
        connection.execute("UPDATE notes SET body = ?", [body])
        connection.commit()
    rows = connection.execute("SELECT body FROM notes").fetchall()
    connection.close()
    return rows


def test_keep_previous_copies(tmp_path):
    env = sqlite_env(tmp_path, "wiki")
    first = run_tasks([{CREATE: env}])
    notes(env, "second")
    results = run_tasks([
        {CREATE: env},
        {RESTORE: dict(env, backup=first[0]["backup"]["id"], keep_previous=5)},  # keeps "second"
        {RESTORE: dict(env, backup="latest", keep_previous=5)},  # keeps "first"
        {PRUNE: dict(env, keep_previous_copies=1), "check_mode": True, "diff": True},
    ])
    assert not any(result.get("failed") for result in results), results
    second = results[0]["backup"]
    older, newer, planned = results[1]["previous"], results[2]["previous"], results[3]
    older_copies = older["databases"] + [older["files"]]
    assert planned["changed"] is True and planned["removed_previous"] == older_copies and planned["removed"] == []
    assert planned["diff"]["after"]["previous"] == newer["databases"] + [newer["files"]]
    assert all(os.path.exists(path) for path in older_copies), "check mode must delete nothing"
    state = Catalog(env["catalog"]).read_state("wiki")
    assert len(state["previous"]) == 2
    assert notes(env) == [("second",)]

    results = run_tasks([
        {PRUNE: dict(env, keep_previous_copies=1)},
        {PRUNE: dict(env, keep_previous_copies=1)},
        {RESTORE: dict(env, rollback=True)},
        {PRUNE: dict(only(env), keep_last=0)},
    ])
    pruned, again, rolled, current = results
    assert pruned["changed"] is True and pruned["removed_previous"] == older_copies, pruned
    assert pruned["removed"] == [] and len(pruned["kept"]) == 2, "no rule: every backup stays"
    assert not any(os.path.exists(path) for path in older_copies)
    assert again["changed"] is False and again["removed_previous"] == [], again
    # The copy that was kept still works as a rollback target: the data of before the last restore.
    assert rolled["changed"] is True and not rolled.get("failed"), rolled
    assert notes(env) == [("first",)]
    # The environment runs on the older backup again: no rule removes it.
    assert current["kept"] == [second["id"], first[0]["backup"]["id"]], current
    assert current["changed"] is False and current["reasons"][first[0]["backup"]["id"]] == ["current"]
