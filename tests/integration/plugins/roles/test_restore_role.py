# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role lifeboat.backup.restore through real ansible-playbook runs on localhost (SQLite).

The paths that molecule's happy run does not take: a health check that fails after the swap (rollback, previous
data back, host failed with the reason), a protected environment without confirmation (refused, nothing
touched, a row in the report), a restore that stops and starts a running app (fleet_app.py), checked, then
repeated unchanged, forced after the data was damaged, and a replacement node that has no data yet. No run may
print a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import yaml

from fleet_app import FleetApp
from playbook import ansible_env, assert_no_warnings


def _notes(path):
    with sqlite3.connect(str(path)) as db:
        return db.execute("select count(*) from notes").fetchone()[0]


def _environment(tmp_path, **extra):
    app = tmp_path / "app"
    (app / "files").mkdir(parents=True)
    db = sqlite3.connect(str(app / "app.db"))
    db.execute("create table notes (id integer primary key, body text)")
    db.executemany("insert into notes (body) values (?)", [("golden %d" % i,) for i in range(10)])
    db.commit()
    db.close()
    entry = {"name": "shop", "engine": "sqlite", "path": str(app / "app.db"), "files_path": str(app / "files"),
             "catalog": str(tmp_path / "catalog")}
    entry.update(extra)
    return entry


def _damage(entry):
    with sqlite3.connect(entry["path"]) as db:
        db.execute("delete from notes where id > 3")


def _run(tmp_path, entry, tasks, check=False, host_vars=None):
    """One play on localhost with ``entry`` as its only environment; returns (process, report rows)."""
    rows = tmp_path / "rows.json"
    if rows.exists():
        rows.unlink()
    inventory = {"all": {"hosts": {"localhost": dict({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "lifeboat_environments": [entry]}, **(host_vars or {}))}}}
    play = {"name": "Restore role test", "hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Run the role", "block": tasks, "always": [{
            "name": "Hand the report rows to the test",
            "ansible.builtin.copy": {"content": "{{ lifeboat_report_rows | default([]) | to_json }}",
                                     "dest": str(rows), "mode": "0600"},
            "check_mode": False, "changed_when": False}]}]}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play]))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
               "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")]
    if check:
        command.append("--check")
    process = subprocess.run(command, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert_no_warnings(process)
    return process, json.loads(rows.read_text()) if rows.exists() else []


def _fatal(process, text):
    """How many failures printed ``text``: a failure is printed once, where it happened."""
    return len([line for line in process.stdout.splitlines() if line.startswith("fatal:") and text in line])


def _backup(label):
    return {"name": "Take the backup " + label, "lifeboat.backup.environment_call": {
        "entry": "{{ lifeboat_environments[0] }}", "module": "backup_create", "options": {"label": label}}}


def _restore(**options):
    return {"name": "Restore", "ansible.builtin.include_role": {"name": "lifeboat.backup.restore"},
            "vars": dict({"restore_environment": "shop"}, **options)}


def _state(entry):
    path = os.path.join(entry["catalog"], "shop", "state.json")
    return json.load(open(path)) if os.path.exists(path) else {}


def _archives(entry):
    return sorted(name for name in os.listdir(os.path.join(entry["catalog"], "shop")) if name.endswith(".tar"))


def test_failed_health_check_rolls_back(tmp_path):
    entry = _environment(tmp_path, health={"command": ["false"], "timeout": 1})
    process = _run(tmp_path, entry, [_backup("golden")])[0]
    assert process.returncode == 0, process.stdout + process.stderr
    _damage(entry)

    process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden")])

    assert process.returncode != 0
    assert "the restore was rolled back and the previous data is back" in process.stdout
    # A reason is printed once, where it happened (the start, and the start on the previous data: the check
    # fails whatever the data); the last message says which step failed and what is left.
    assert _fatal(process, "did not pass within") == 2, process.stdout
    assert _fatal(process, "failed at 'Give up: the health check does not pass for shop' (see above); the") == 1
    assert _notes(entry["path"]) == 3
    assert [(row["action"], row["result"]) for row in rows] == [("rollback", "rolled_back")]
    assert "health check" in rows[0]["message"] and "did not pass within" in rows[0]["message"]


def test_protected_environment_needs_confirmation(tmp_path):
    entry = _environment(tmp_path, protected=True)
    _run(tmp_path, entry, [_backup("golden")])
    _damage(entry)
    before = (_state(entry), _archives(entry))

    process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden")])

    assert process.returncode != 0
    assert "is protected; nothing was touched" in process.stdout
    assert "restore_confirm: true" in process.stdout
    assert (_state(entry), _archives(entry)) == before
    assert _notes(entry["path"]) == 3
    assert rows == [{"host": "localhost", "environment": "shop", "action": "none", "backup": "golden",
                     "backup_id": "", "result": "failed", "duration": rows[0]["duration"], "size": 0,
                     "message": "environment shop is protected; nothing was touched. Set restore_confirm: true to"
                                " restore it."}]
    assert _fatal(process, "is protected; nothing was touched") == 1


def test_missing_backup_is_refused_before_anything_stops(tmp_path):
    entry = _environment(tmp_path)
    _run(tmp_path, entry, [_backup("golden")])

    process, rows = _run(tmp_path, entry, [_restore(restore_backup="nosuch")])

    assert process.returncode != 0
    assert "backup nosuch of shop is not in the catalog; nothing was touched" in process.stdout
    assert _archives(entry) and len(_archives(entry)) == 1
    assert [(row["action"], row["result"], row["backup"], row["backup_id"]) for row in rows] == [
        ("none", "failed", "nosuch", "")]


def test_restore_stops_and_starts_the_app(tmp_path):
    entry = _environment(tmp_path)
    app = FleetApp(tmp_path / "fleet", engine="sqlite", path=entry["path"])
    entry.update(app=app.commands(), health={"url": app.health_url(), "timeout": 20})
    _run(tmp_path, entry, [_backup("golden")])
    _damage(entry)
    app.start()
    try:
        process, rows = _run(tmp_path, entry, [_restore()], check=True)
        assert process.returncode == 0, process.stdout + process.stderr
        assert "would run" in process.stdout
        assert _notes(entry["path"]) == 3
        assert app.running()
        assert len(_archives(entry)) == 1

        process, rows = _run(tmp_path, entry, [_restore()])
        assert process.returncode == 0, process.stdout + process.stderr
        assert _notes(entry["path"]) == 10
        assert app.running() and app.healthy()
        assert [(row["action"], row["result"]) for row in rows] == [("restore", "changed")]
        assert rows[0]["backup"] == "latest" and rows[0]["backup_id"] == _state(entry)["current"]["id"]
        assert rows[0]["size"] > 0 and rows[0]["duration"] > 0
        assert rows[0]["message"].startswith("safety backup shop-safety-")
        assert _state(entry)["current"]["label"] == "golden"

        # "latest" skips the safety backup the first run took: nothing changes, nothing is stopped.
        process, rows = _run(tmp_path, entry, [_restore()])
        assert process.returncode == 0, process.stdout + process.stderr
        assert "changed=0" in process.stdout
        assert [(row["action"], row["result"]) for row in rows] == [("none", "ok")]
        assert "restore_force: true" in rows[0]["message"]

        # The data is damaged after the restore: the same backup again is "already runs on it" until forced.
        _damage(entry)
        process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden")])
        assert process.returncode == 0 and _notes(entry["path"]) == 3
        assert rows[0]["message"].startswith("already runs on this backup")
        process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden", restore_force=True)])
        assert process.returncode == 0, process.stdout + process.stderr
        assert _notes(entry["path"]) == 10 and app.healthy()
        assert [(row["action"], row["result"]) for row in rows] == [("restore", "changed")]
    finally:
        app.stop()


def _replacement_node(tmp_path, source):
    """A node that runs the environment for the first time: the catalog has its backup, the data is not there."""
    node = tmp_path / "replacement"
    (node / "app").mkdir(parents=True)
    entry = dict(source, path=str(node / "app" / "app.db"), files_path=str(node / "app" / "files"),
                 catalog=str(node / "catalog"))
    shutil.copytree(source["catalog"], entry["catalog"])
    return entry


def test_replacement_node_is_restored_without_a_safety_backup(tmp_path):
    source = _environment(tmp_path / "old")
    _run(tmp_path, source, [_backup("golden")])

    entry = _replacement_node(tmp_path, source)
    process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden")])

    assert process.returncode == 0, process.stdout + process.stderr
    assert _notes(entry["path"]) == 10
    assert _archives(entry) == _archives(source), "no safety backup of nothing"
    assert [(row["action"], row["result"]) for row in rows] == [("restore", "changed")]
    assert rows[0]["message"] == "no data yet: restored into a new database and file store, no safety backup"


def test_failed_restore_on_a_replacement_node_claims_no_previous_data(tmp_path):
    source = _environment(tmp_path / "old")
    _run(tmp_path, source, [_backup("golden")])
    entry = _replacement_node(tmp_path, dict(source, health={"command": ["false"], "timeout": 1}))

    process, rows = _run(tmp_path, entry, [_restore(restore_backup="golden")])

    assert process.returncode != 0
    assert "previous data" not in process.stdout
    assert "had no data before, so there is nothing to roll back to; the restored data is in place" in process.stdout
    assert [(row["action"], row["result"]) for row in rows] == [("restore", "failed")]
    assert "previous data" not in rows[0]["message"]
