# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL server stops in the middle of a restore: the operator hears the cause, not the cleanup's error."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from datasets import damage_pg, files_snapshot, make_pg_app, pg_snapshot
from playbook import run_module

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def running_pg_restore(database):
    """True while a pg_restore loads data into ``database``'s staging copy (other tests may run their own)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"pg_restore") and any(database.encode() + b"__lb_stage" in arg for arg in argv):
            return True
    return False


def stop_when_pg_restore_runs(cluster, database, stopped):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not running_pg_restore(database):
        time.sleep(0.05)
    cluster._run([cluster._bin("pg_ctl"), "-D", cluster.data_dir, "-m", "immediate", "-w", "stop"])
    stopped.set()


def test_the_cause_comes_first_and_the_next_run_cleans_up(pg_cluster_factory, tmp_path):
    cluster = pg_cluster_factory()[0]
    name = "app_" + uuid.uuid4().hex[:8]
    make_pg_app(cluster, name, rows=400000)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("a\n")
    env = dict(cluster.conn_params(tcp=False), environment=name, engine="postgresql", database=name,
               files_path=str(tmp_path / "files"), catalog=str(tmp_path / "catalog"))
    created = run_module("backup_create", env)
    assert not created.get("failed"), created
    damage_pg(cluster, name)
    before = pg_snapshot(cluster, name)["rows"], files_snapshot(env["files_path"])

    stopped = threading.Event()
    watcher = threading.Thread(target=stop_when_pg_restore_runs, args=(cluster, name, stopped))
    watcher.start()
    result = run_module("backup_restore", dict(env, backup="latest"))
    watcher.join()

    assert stopped.is_set()
    assert result.get("failed"), result
    cause, dummy, cleanup = result["msg"].partition("\n(cleaning up afterwards failed too: ")
    assert cause.startswith("pg_restore failed restoring "), result["msg"]
    assert cleanup and "the next run cleans up" in cleanup, result["msg"]
    assert "Traceback" not in result["msg"]

    cluster._start_server()  # on a new port
    env.update(cluster.conn_params(tcp=False))
    # Rows, not sequences: crash recovery moves sequences on by up to 32 values, whatever we do.
    assert (pg_snapshot(cluster, name)["rows"], files_snapshot(env["files_path"])) == before
    again = run_module("backup_restore", dict(env, backup="latest"))
    assert not again.get("failed") and again["changed"], again
    leftovers = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=[name + "__lb_stage%"])
    assert leftovers == []
