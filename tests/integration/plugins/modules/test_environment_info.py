# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""environment_info: sessions, lock holder, current backup and disk space, through real ansible-playbook runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from ansible_collections.lifeboat.backup.tests.databases import sqlite_db
from datasets import make_pg_app
from fleet_app import FleetApp
from playbook import collections_path, run_tasks

INFO = "lifeboat.backup.environment_info"


def info_task(env, name="Read the environment"):
    return {"name": name, INFO: env}


def hold(code, *args):
    """A child process that runs ``code`` and then waits for its stdin to close; returns it once ready."""
    env = dict(os.environ, PYTHONPATH=collections_path())
    child = subprocess.Popen([sys.executable, "-c", code + "\nprint('ready', flush=True)\nsys.stdin.read()"]
                             + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "ready"
    return child


def release(child):
    child.stdin.close()
    child.wait(timeout=30)


def test_postgresql_sessions_space_and_check_mode(pg_cluster, tmp_path):
    name = "app_" + uuid.uuid4().hex[:8]
    password = make_pg_app(pg_cluster, name)
    files = tmp_path / "files"
    files.mkdir()
    (files / "big.bin").write_bytes(os.urandom(100000))
    env = dict(pg_cluster.conn_params(tcp=False), environment=name, database=name, files_path=str(files),
               catalog=str(tmp_path / "catalog"))
    app = FleetApp(tmp_path / "app", engine="postgresql", database=name,
                   pg={"PGHOST": pg_cluster.host, "PGPORT": pg_cluster.port, "PGUSER": name, "PGPASSWORD": password})
    app.start()
    try:
        assert app.healthy()
        checked = run_tasks([info_task(env)], check=True)[0]
        running = run_tasks([info_task(env)])[0]
    finally:
        app.stop()
    stopped = run_tasks([info_task(env)])[0]

    for result in (checked, running):
        assert result["changed"] is False and not result.get("failed"), result
        assert result["sessions"] == {name: 1}
    assert stopped["sessions"] == {name: 0}, stopped
    assert running["lock"] is None and running["current"] is None
    assert not os.path.exists(env["catalog"]), "environment_info writes nothing"
    assert running["needed_space"] > 100000
    assert set(running["free_space"]) == {env["catalog"], str(tmp_path), pg_cluster.data_dir}
    assert all(isinstance(size, int) and size > 0 for size in running["free_space"].values())


def sqlite_env(root):
    return {"environment": "wiki", "engine": "sqlite", "path": sqlite_db(root / "app.db"),
            "catalog": str(root / "catalog")}


def test_sqlite_lock_holder_and_locked_file(tmp_path):
    env = sqlite_env(tmp_path)
    idle = run_tasks([info_task(env)])[0]
    assert idle["sessions"] == {env["path"]: 0} and idle["lock"] is None, idle
    assert idle["needed_space"] == os.path.getsize(env["path"])
    assert set(idle["free_space"]) == {env["catalog"], str(tmp_path)}

    locker = hold("import sys\nfrom ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog\n"
                  "lock = Catalog(sys.argv[1]).lock('wiki', 'backup')\nlock.__enter__()", env["catalog"])
    writer = hold("import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                  "db.execute('BEGIN EXCLUSIVE')", env["path"])
    try:
        busy = run_tasks([info_task(env)])[0]
    finally:
        release(writer)
        release(locker)
    assert busy["sessions"] == {env["path"]: 1}, busy
    assert busy["lock"]["operation"] == "backup" and busy["lock"]["pid"] == locker.pid, busy

    free = run_tasks([info_task(env)])[0]
    assert free["sessions"] == {env["path"]: 0} and free["lock"] is None, free


def test_missing_database_option_fails_clearly(tmp_path):
    result = run_tasks([info_task({"environment": "x", "engine": "sqlite"})])[0]
    assert result["failed"] and "path" in result["msg"], result
