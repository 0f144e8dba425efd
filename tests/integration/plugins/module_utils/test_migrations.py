# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""migrations.update / current_version on real databases of both engines, without Ansible (the API restore and
backup use)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import stat
import sys
import textwrap
import threading

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import migrations
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines import sqlite_migrator
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.registry import open_engine
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import private_tmp
from ansible_collections.lifeboat.backup.tests.databases import new_pg_database

PG_MIGRATIONS = {
    "V1__create_customers.sql": "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);\n",
    "V2__add_email.sql": "ALTER TABLE customers ADD COLUMN email text;\n"
                         "CREATE INDEX customers_email ON customers (email);\n",
    "V3__create_orders.sql": "CREATE TABLE orders (id bigserial PRIMARY KEY,"
                             " customer_id int REFERENCES customers(id));\n"
                             "CREATE VIEW order_count AS SELECT count(*) AS n FROM orders;\n",
}
SQLITE_MIGRATIONS = {
    "V1__create_pages.sql": "CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n",
    "V2__add_log.sql": "CREATE TABLE log (page_id INTEGER, note TEXT);\n"
                       "-- a trigger body holds semicolons of its own\n"
                       "CREATE TRIGGER pages_log AFTER INSERT ON pages BEGIN\n"
                       "  INSERT INTO log VALUES (new.id, 'created; logged');\n"
                       "END;\n",
    "V3__add_slug.sql": "ALTER TABLE pages ADD COLUMN slug TEXT;\nCREATE UNIQUE INDEX pages_slug ON pages (slug);",
}
FAILING_V3 = "CREATE TABLE v3_first (x int);\n\nINSERT INTO no_such_table VALUES (1);\n"


def update(engine_name, params, target, **options):
    """migrations.update on a new engine for ``params``, closed afterwards as a module run closes it."""
    with contextlib.closing(open_engine(dict(params, engine=engine_name), private_tmp(params))) as engine:
        return migrations.update(engine, target, **options)


def current_version(engine_name, params, target, **options):
    with contextlib.closing(open_engine(dict(params, engine=engine_name), private_tmp(params))) as engine:
        return migrations.current_version(engine, target, **options)


def migrations_dir(path, files, upto=None):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if upto is None or int(name[1:name.index("__")]) <= upto:
            (path / name).write_text(text)
    return str(path)


def pg_history(cluster, db):
    return cluster.psql("SELECT version, description, sha256, applied_at IS NOT NULL, duration >= 0 "
                        "FROM public.lifeboat_schema_history ORDER BY version", db=db)


def pg_relations(cluster, db):
    return cluster.psql("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                        "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') "
                        "ORDER BY 1", db=db)


@pytest.fixture
def pg(pg_cluster, tmp_path):
    db = new_pg_database(pg_cluster, "st_")
    params = pg_cluster.conn_params(tcp=True)
    return pg_cluster, params, db, migrations_dir(tmp_path / "migrations", PG_MIGRATIONS)


@pytest.mark.postgres
def test_postgres_pending_migrations_run_as_the_owner_and_are_recorded(pg, tmp_path):
    cluster, params, db, full = pg
    assert current_version("postgresql", params, db) is None
    first = update("postgresql", params, db, migrations=migrations_dir(tmp_path / "v1", PG_MIGRATIONS, 1))
    assert first["applied"] == [1] and first["role"] == db
    assert current_version("postgresql", params, db) == 1

    planned = update("postgresql", params, db, migrations=full, check_mode=True)
    assert (planned["changed"], planned["pending"], planned["applied"]) == (True, [2, 3], [])
    assert (planned["version_before"], planned["version_after"]) == (1, 3)
    assert current_version("postgresql", params, db) == 1
    assert [r[0] for r in pg_relations(cluster, db)] == ["customers", "lifeboat_schema_history"]

    done = update("postgresql", params, db, migrations=full)
    assert (done["changed"], done["applied"], done["pending"]) == (True, [2, 3], [])
    assert done["diff"] == {"before": {"version": 1}, "after": {"version": 3}}
    # Every object, the history table too, belongs to the database owner, not to the superuser.
    assert pg_relations(cluster, db) == [(name, db) for name in
                                         ("customers", "lifeboat_schema_history", "order_count", "orders")]
    assert pg_history(cluster, db) == [
        (v, d, hashlib.sha256(PG_MIGRATIONS[n].encode()).hexdigest(), True, True)
        for v, d, n in [(1, "create customers", "V1__create_customers.sql"), (2, "add email", "V2__add_email.sql"),
                        (3, "create orders", "V3__create_orders.sql")]]
    assert migrations.project_version(full) == 3 == current_version("postgresql", params, db)

    again = update("postgresql", params, db, migrations=full)
    assert (again["changed"], again["applied"]) == (False, [])


@pytest.mark.postgres
def test_postgres_failing_migration_is_rolled_back_whole(pg, tmp_path):
    cluster, params, db, _full = pg
    update("postgresql", params, db, migrations=migrations_dir(tmp_path / "v1", PG_MIGRATIONS, 1))
    broken = migrations_dir(tmp_path / "broken", dict(PG_MIGRATIONS, **{"V3__create_orders.sql": FAILING_V3}))
    with pytest.raises(LifeboatError) as raised:
        update("postgresql", params, db, migrations=broken)
    message = str(raised.value)
    assert "V3__create_orders.sql" in message and "no_such_table" in message and "line 3" in message, message
    assert "rolled back" in message and "applied before it in this run: 2" in message
    assert [row[0] for row in pg_history(cluster, db)] == [1, 2]
    assert cluster.psql("SELECT to_regclass('public.v3_first')", db=db) == [(None,)]


@pytest.mark.postgres
def test_postgres_commit_inside_a_migration_is_caught(pg, tmp_path):
    cluster, params, db, _full = pg
    bad = migrations_dir(tmp_path / "bad", {"V1__commits.sql": "CREATE TABLE a (x int);\nCOMMIT;\n"})
    with pytest.raises(LifeboatError, match="V1__commits.sql ended its own transaction"):
        update("postgresql", params, db, migrations=bad)
    assert current_version("postgresql", params, db) is None


@pytest.mark.postgres
def test_postgres_role_option_and_roles_that_cannot_be_used(pg, tmp_path):
    cluster, params, db, full = pg
    other = "st_other_" + secrets.token_hex(3)
    cluster.psql('CREATE ROLE "%s" NOLOGIN' % other)
    cluster.psql('GRANT CREATE ON SCHEMA public TO "%s"' % other, db=db)
    done = update("postgresql", params, db, migrations=full, role=other)
    assert done["role"] == other and {owner for _name, owner in pg_relations(cluster, db)} == {other}

    with pytest.raises(LifeboatError, match="role st_missing does not exist"):
        update("postgresql", params, db, migrations=full, role="st_missing")
    # A login user that is not a member of the owner's role is told what to grant.
    login = "st_login_" + secrets.token_hex(3)
    cluster.psql("CREATE ROLE \"%s\" LOGIN PASSWORD 'pw-%s'" % (login, login))
    with pytest.raises(LifeboatError, match="cannot act as role %s .*GRANT %s TO %s" % (db, db, login)):
        update("postgresql", dict(params, login_user=login, login_password="pw-" + login), db,
               migrations=full)
    with pytest.raises(LifeboatError, match="does not exist"):
        update("postgresql", params, db + "_missing", migrations=full)


@pytest.mark.postgres
def test_postgres_custom_history_table(pg):
    cluster, params, db, full = pg
    cluster.psql('CREATE SCHEMA ops AUTHORIZATION "%s"' % db, db=db)
    done = update("postgresql", params, db, migrations=full, history_table="ops.applied")
    assert done["applied"] == [1, 2, 3]
    assert cluster.psql("SELECT count(*) FROM ops.applied", db=db) == [(3,)]
    assert cluster.psql("SELECT to_regclass('public.lifeboat_schema_history')", db=db) == [(None,)]
    assert current_version("postgresql", params, db, history_table="ops.applied") == 3
    assert current_version("postgresql", params, db) is None


@pytest.mark.postgres
def test_postgres_concurrent_runs_apply_each_migration_once(pg, tmp_path):
    cluster, params, db, _full = pg
    slow = migrations_dir(tmp_path / "slow", dict(PG_MIGRATIONS, **{
        "V2__add_email.sql": "SELECT pg_sleep(0.5);\n" + PG_MIGRATIONS["V2__add_email.sql"]}))
    results, errors = [], []

    def run():
        try:
            results.append(update("postgresql", params, db, migrations=slow)["applied"])
        except LifeboatError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [[], [1, 2, 3]]


def sqlite_db(tmp_path):
    path = str(tmp_path / "app.db")
    sqlite3.connect(path).close()
    return path


def test_sqlite_pending_migrations_in_one_transaction_each(tmp_path):
    path = sqlite_db(tmp_path)
    full = migrations_dir(tmp_path / "migrations", SQLITE_MIGRATIONS)
    assert current_version("sqlite", {}, path) is None
    update("sqlite", {}, path, migrations=migrations_dir(tmp_path / "v1", SQLITE_MIGRATIONS, 1))
    planned = update("sqlite", {}, path, migrations=full, check_mode=True)
    assert (planned["pending"], planned["version_after"], planned["role"]) == ([2, 3], 3, None)
    assert current_version("sqlite", {}, path) == 1
    done = update("sqlite", {}, path, migrations=full)
    assert done["applied"] == [2, 3]
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO pages (title, slug) VALUES ('home', 'home')")
        assert conn.execute("SELECT * FROM log").fetchall() == [(1, "created; logged")]
        rows = conn.execute("SELECT version, description, length(sha256), applied_at LIKE '____-__-__T%Z' "
                            "FROM lifeboat_schema_history ORDER BY 1").fetchall()
    conn.close()
    assert rows == [(1, "create pages", 64, 1), (2, "add log", 64, 1), (3, "add slug", 64, 1)]
    assert update("sqlite", {}, path, migrations=full)["changed"] is False


def test_sqlite_failing_migration_is_rolled_back_whole(tmp_path):
    path = sqlite_db(tmp_path)
    update("sqlite", {}, path, migrations=migrations_dir(tmp_path / "v1", SQLITE_MIGRATIONS, 1))
    broken = migrations_dir(tmp_path / "broken", dict(SQLITE_MIGRATIONS, **{"V3__add_slug.sql": FAILING_V3}))
    with pytest.raises(LifeboatError) as raised:
        update("sqlite", {}, path, migrations=broken)
    message = str(raised.value)
    assert "V3__add_slug.sql" in message and "no such table: no_such_table" in message and "line 3" in message
    assert current_version("sqlite", {}, path) == 2
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'v3_first'").fetchall() == []
    conn.close()


def test_sqlite_transaction_control_refused_before_anything_runs(tmp_path):
    path = sqlite_db(tmp_path)
    bad = migrations_dir(tmp_path / "bad", dict(SQLITE_MIGRATIONS, **{"V3__add_slug.sql": "BEGIN;\nSELECT 1;\n"}))
    with pytest.raises(LifeboatError, match="V3__add_slug.sql has a BEGIN statement at line 1"):
        update("sqlite", {}, path, migrations=bad)
    assert current_version("sqlite", {}, path) is None


def test_sqlite_locked_database_is_reported(tmp_path, monkeypatch):
    path = sqlite_db(tmp_path)
    monkeypatch.setattr(sqlite_migrator, "SQLITE_BUSY_SECONDS", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(LifeboatError, match="in use"):
            update("sqlite", {}, path, migrations=migrations_dir(tmp_path / "m", SQLITE_MIGRATIONS))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert current_version("sqlite", {}, path) is None


def test_sqlite_refuses_missing_files_relative_paths_and_role(tmp_path):
    full = migrations_dir(tmp_path / "m", SQLITE_MIGRATIONS)
    with pytest.raises(LifeboatError, match="does not exist"):
        update("sqlite", {}, str(tmp_path / "missing.db"), migrations=full)
    assert not os.path.exists(tmp_path / "missing.db")
    with pytest.raises(LifeboatError, match="must be absolute"):
        update("sqlite", {}, "app.db", migrations=full)
    with pytest.raises(LifeboatError, match="PostgreSQL only"):
        update("sqlite", {}, sqlite_db(tmp_path), migrations=full, role="x")
    (tmp_path / "not-a-db").write_text("hello, not a database\n" * 100)
    with pytest.raises(LifeboatError, match="not usable|not a database"):
        update("sqlite", {}, str(tmp_path / "not-a-db"), migrations=full)


ENV_DUMP = textwrap.dedent("""\
    import json, os, stat, sys
    keys = [k for k in os.environ if k.startswith(("PG", "LIFEBOAT_")) or k == "DATABASE_URL"]
    info = {k: os.environ[k] for k in keys}
    passfile = os.environ.get("PGPASSFILE")
    if passfile:
        info["passfile_mode"] = stat.S_IMODE(os.stat(passfile).st_mode)
        info["passfile"] = open(passfile).read()
    info["cwd"] = os.getcwd()
    json.dump(info, open(sys.argv[1], "w"))
    print("updated")
""")


@pytest.mark.postgres
def test_postgres_command_environment(pg, tmp_path):
    cluster, params, db, _full = pg
    script = tmp_path / "dump_env.py"
    script.write_text(ENV_DUMP)
    out = tmp_path / "env.json"
    # The passfile goes to the environment's private directory in the catalog.
    params = dict(params, environment="shop", catalog=str(tmp_path / "catalog"))
    done = update("postgresql", params, db, command=[sys.executable, str(script), str(out)],
                  chdir=str(tmp_path))
    assert done["changed"] is True and done["command_result"]["stdout"] == "updated"
    info = json.loads(out.read_text())
    assert info["PGHOST"] == cluster.host and info["PGPORT"] == str(cluster.port)
    assert info["PGUSER"] == "postgres" and info["PGDATABASE"] == db
    assert info["PGOPTIONS"].endswith("-c role=%s" % db)
    assert (info["LIFEBOAT_ENGINE"], info["LIFEBOAT_DATABASE"], info["LIFEBOAT_ROLE"]) == ("postgresql", db, db)
    assert info["DATABASE_URL"].startswith("postgresql://postgres@%s:%s/%s?" % (cluster.host, cluster.port, db))
    assert "PGPASSWORD" not in info and cluster.password not in info["DATABASE_URL"]
    assert info["passfile_mode"] == 0o600 and info["passfile"] == "*:*:*:*:%s\n" % cluster.password
    assert os.path.dirname(info["PGPASSFILE"]) == str(tmp_path / "catalog" / "shop" / ".tmp")
    assert not os.path.exists(info["PGPASSFILE"]), "the passfile is removed after the command"
    assert info["cwd"] == str(tmp_path)


def test_sqlite_command_environment_and_failure(tmp_path):
    path = sqlite_db(tmp_path)
    script = tmp_path / "dump_env.py"
    script.write_text(ENV_DUMP)
    out = tmp_path / "env.json"
    update("sqlite", {}, path, command="%s %s %s" % (sys.executable, script, out))
    info = json.loads(out.read_text())
    assert (info["LIFEBOAT_ENGINE"], info["LIFEBOAT_DATABASE"], info["LIFEBOAT_SQLITE_PATH"]) == ("sqlite", path, path)
    assert info["DATABASE_URL"] == "sqlite:///" + path
    with pytest.raises(LifeboatError, match="command false failed on SQLite database .* \\(exit 1\\)"):
        update("sqlite", {}, path, command="false")
    with pytest.raises(LifeboatError, match="not found in PATH"):
        update("sqlite", {}, path, command="no-such-updater-here --now")
    os.chmod(script, stat.S_IMODE(os.stat(script).st_mode) & ~0o111)
    with pytest.raises(LifeboatError, match="not an executable file"):
        update("sqlite", {}, path, command=[str(script)])


@pytest.mark.postgres
def test_postgres_session_settings_do_not_leak_into_the_next_migration(pg, tmp_path):
    cluster, params, db, _full = pg
    leaky = migrations_dir(tmp_path / "leaky", {
        "V1__own_schema.sql": "CREATE SCHEMA s1;\nSET search_path = s1;\nCREATE TABLE t1 (x int);\n",
        "V2__plain.sql": "CREATE TABLE t2 (x int);\n",
        "V3__comment_only.sql": "-- nothing to do in this release\n",
    })
    assert update("postgresql", params, db, migrations=leaky)["applied"] == [1, 2, 3]
    assert cluster.psql("SELECT to_regclass('s1.t1') IS NOT NULL, to_regclass('public.t2') IS NOT NULL",
                        db=db) == [(True, True)]
