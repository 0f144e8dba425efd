# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets and children, the PostgreSQL part: a module SIGKILLed in the middle of pg_dump or pg_restore leaves
no running child and no password outside the environment's private directory; a password with a line break
(which a libpq passfile cannot hold) still logs in.

The module runs in a real ansible-playbook; the test kills the module's own process, the parent of the tool.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

import psycopg
import pytest
import yaml
from psycopg import sql

from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import restore_role_prefix
from datasets import damage_pg, make_pg_app, pg_snapshot
from playbook import ansible_env, play_tasks, run_module

pytestmark = pytest.mark.postgres

WAIT_SECONDS = 60


def new_env(cluster, tmp_path, tcp=False, rows=200):
    name = "sc_" + os.urandom(4).hex()
    password = make_pg_app(cluster, name, rows=rows)
    env = dict(cluster.conn_params(tcp=tcp), environment=name, engine="postgresql", database=name,
               catalog=str(tmp_path / "catalog"))
    return env, password


def start_module(name, args, work):
    """ansible-playbook running one module of the collection, in the background."""
    path = os.path.join(work, "play.yml")
    with open(path, "w") as handle:
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                         "vars": {"ansible_python_interpreter": sys.executable},
                         "tasks": play_tasks([{"lifeboat.backup.%s" % name: args}], os.path.join(work, "out.json"))}],
                       handle)
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                             "-c", "local", path], env=ansible_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for(condition, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def find_tool(tool, database):
    """The pid of ``tool`` working on ``database``, or None."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == tool and "--dbname=dbname=%s" % database in argv:
            return int(pid)
    return None


def status(pid):
    """``(state, ppid)`` of a process, or None once it is gone (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (fields[0], int(fields[1]))


def kill_module_of(pid):
    """SIGKILL the module process that runs ``pid``; wait until ``pid`` is gone too."""
    module = status(pid)[1]
    with open("/proc/%d/cmdline" % module, "rb") as handle:
        assert b"AnsiballZ" in handle.read(), "the tool's parent is the module"
    os.kill(module, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return status(pid) is None


def private_passfiles(env):
    return glob.glob(os.path.join(env["catalog"], env["environment"], ".tmp", "lifeboat-pgpass-*"))


def passwords_in_tmp(*passwords):
    """Passfiles in /tmp (where Lifeboat used to put them) that hold one of ``passwords``."""
    found = []
    for path in glob.glob(os.path.join(tempfile.gettempdir(), "lifeboat-pgpass-*")):
        with open(path) as handle:
            text = handle.read()
        found += [path for password in passwords if password in text]
    return found


def test_sigkill_during_pg_dump_kills_pg_dump(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    db = env["database"]
    # pg_dump waits for this lock (up to lock_wait_timeout): it is surely running when the module is killed.
    locker = psycopg.connect(host=pg_cluster.socket_dir, port=pg_cluster.port, dbname=db, user="postgres")
    try:
        locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        play = start_module("backup_create", env, str(tmp_path))
        pg_dump = wait_for(lambda: find_tool("pg_dump", db), "pg_dump")
        [passfile] = private_passfiles(env)
        assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
        assert kill_module_of(pg_dump), "pg_dump outlived the module"
        play.wait(timeout=WAIT_SECONDS)
    finally:
        locker.close()
    assert passwords_in_tmp(pg_cluster.password) == []
    # The killed run could not remove its passfile; it stays private, and the next run removes it.
    assert private_passfiles(env) == [passfile] and stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
    done = run_module("backup_create", env)
    assert done["changed"] is True, done
    assert private_passfiles(env) == []


# Each row of this table takes half a second to restore (a CHECK calls the function) while role <db>_slow exists.
SLOW_TABLE = """
CREATE FUNCTION slow_ok(int) RETURNS boolean LANGUAGE sql AS $$
    SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_database() || '_slow')
        OR (SELECT true FROM pg_sleep(0.5)) $$;
CREATE TABLE slow (x int CHECK (public.slow_ok(x)));
INSERT INTO slow SELECT generate_series(1, 60);
"""


def restore_roles(cluster, env):
    return cluster.psql("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                        params=[restore_role_prefix(env["environment"], env["database"])])


def test_sigkill_during_pg_restore_kills_it_and_the_next_run_cleans_up(pg_cluster, tmp_path):
    env, app_password = new_env(pg_cluster, tmp_path)
    db = env["database"]
    with pg_cluster.connect(db, tcp=True, user=db, password=app_password) as conn:
        conn.execute(SLOW_TABLE)
    assert run_module("backup_create", env)["changed"] is True
    damage_pg(pg_cluster, db)
    before = pg_snapshot(pg_cluster, db)

    # current_database() is the staging copy while pg_restore fills it.
    pg_cluster.psql("CREATE ROLE %s__lb_stage_slow" % db)
    play = start_module("backup_restore", env, str(tmp_path))
    pg_restore = wait_for(lambda: find_tool("pg_restore", db + "__lb_stage"), "pg_restore")
    passfiles = private_passfiles(env)
    assert passfiles and all(stat.S_IMODE(os.stat(path).st_mode) == 0o600 for path in passfiles)
    assert kill_module_of(pg_restore), "pg_restore outlived the module"
    play.wait(timeout=WAIT_SECONDS)
    assert passwords_in_tmp(pg_cluster.password) == []
    assert pg_snapshot(pg_cluster, db) == before
    assert len(restore_roles(pg_cluster, env)) == 1, "the killed run could not drop its restore role"

    pg_cluster.psql("DROP ROLE %s__lb_stage_slow" % db)
    done = run_module("backup_restore", env)
    assert done["changed"] is True, done
    assert restore_roles(pg_cluster, env) == []
    assert private_passfiles(env) == []


def test_password_with_a_line_break_over_tcp(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path, tcp=True)[0]
    db = env["database"]
    login, password, app_new = "sc_login_" + os.urandom(4).hex(), "first line\nsecond: \\ line", "app\npassword"
    pg_cluster.psql(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(login), sql.Literal(password)))
    pg_cluster.psql(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(db), sql.Literal(app_new)))
    env.update(login_user=login, login_password=password)
    original = pg_snapshot(pg_cluster, db)

    created = run_module("backup_create", env)
    assert created["changed"] is True, created
    damage_pg(pg_cluster, db)
    # Both logins of a restore: the short-lived role's, and restore_user's with a line break.
    restored = run_module("backup_restore", env)
    assert restored["changed"] is True, restored
    damage_pg(pg_cluster, db)
    again = run_module("backup_restore", dict(env, restore_user=db, restore_password=app_new, force=True))
    assert again["changed"] is True, again
    assert pg_snapshot(pg_cluster, db) == original
    for text in (password, app_new):
        assert text not in json.dumps([created, restored, again])
    assert passwords_in_tmp(password, app_new) == []
