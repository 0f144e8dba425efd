# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""structure_update through real ansible-playbook runs, on PostgreSQL and SQLite.

Each play runs several tasks (ansible-playbook starts slowly); the databases are prepared beforehand with the
module's own core API, and what the tasks did is proven by querying them afterwards.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import textwrap

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import migrations
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql import PostgresEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SqliteEngine
from ansible_collections.lifeboat.backup.tests.databases import new_pg_database
from playbook import run_play, run_tasks

MODULE = "lifeboat.backup.structure_update"
PG_MIGRATIONS = {
    "V1__create_customers.sql": "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);\n",
    "V2__add_email.sql": "ALTER TABLE customers ADD COLUMN email text;\n",
    "V3__create_orders.sql": "CREATE TABLE orders (id bigserial PRIMARY KEY,"
                             " customer_id int REFERENCES customers(id));\n"
                             "CREATE INDEX orders_customer ON orders (customer_id);\n",
}
SQLITE_MIGRATIONS = {
    "V1__create_pages.sql": "CREATE TABLE pages (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n",
    "V2__add_slug.sql": "ALTER TABLE pages ADD COLUMN slug TEXT;\n",
    "V3__create_tags.sql": "CREATE TABLE tags (page_id INTEGER REFERENCES pages(id), tag TEXT);\n"
                           "CREATE INDEX tags_page ON tags (page_id);\n",
}
# Two statements: the first succeeds, the second fails; neither may remain.
FAILING_V3 = "CREATE TABLE v3_first (x int);\nINSERT INTO no_such_table VALUES (1);\n"
# The application's own updater: records how it was started, then creates a table through the connection it
# finds in its environment (libpq reads PGHOST, PGPASSFILE, PGOPTIONS...).
UPDATER = textwrap.dedent("""\
    import json, os, sys
    with open("/proc/self/cmdline", "rb") as handle:
        cmdline = handle.read().decode().split("\\0")
    with open(sys.argv[1], "a") as log:
        log.write(json.dumps({"argv": sys.argv, "cmdline": cmdline, "PGPASSWORD": os.environ.get("PGPASSWORD")}))
        log.write("\\n")
    if "fail" in sys.argv:
        with open(os.environ["PGPASSFILE"]) as handle:
            password = handle.read().strip().split(":", 4)[4]
        sys.stderr.write("cannot update: the password %s is wrong\\n" % password)
        sys.exit(3)
    if os.environ["LIFEBOAT_ENGINE"] == "sqlite":
        import sqlite3
        connection = sqlite3.connect(os.environ["LIFEBOAT_SQLITE_PATH"])
        connection.execute("CREATE TABLE made_by_app (x INTEGER)")
        connection.commit()
    else:
        import psycopg
        with psycopg.connect("", autocommit=True) as connection:
            connection.execute("CREATE TABLE made_by_app (x int)")
    print("structure updated")
""")


def migrations_dir(path, files, upto=None, **changes):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in dict(files, **changes).items():
        if upto is None or int(name[1:name.index("__")]) <= upto:
            (path / name).write_text(text)
    return str(path)


def updater(tmp_path):
    script = tmp_path / "updater.py"
    script.write_text(UPDATER)
    log = tmp_path / "updater.log"
    return [sys.executable, str(script), str(log)], log


def runs(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def pg_versions(cluster, db):
    return [row[0] for row in cluster.psql("SELECT version FROM lifeboat_schema_history ORDER BY 1", db=db)]


def pg_owners(cluster, db):
    return dict(cluster.psql("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE n.nspname = 'public'", db=db))


@pytest.mark.postgres
def test_postgres_check_mode_apply_idempotence_diff_and_owner(pg_cluster, tmp_path):
    db = new_pg_database(pg_cluster, "su_")
    params = dict(pg_cluster.conn_params(tcp=True), environment="shop", database=db)
    with contextlib.closing(PostgresEngine(params)) as engine:
        migrations.update(engine, db, migrations=migrations_dir(tmp_path / "v1", PG_MIGRATIONS, upto=1))
    args = dict(params, migrations=migrations_dir(tmp_path / "migrations", PG_MIGRATIONS))

    results, process = run_play([
        {MODULE: args, "check_mode": True, "diff": True},
        {MODULE: args, "diff": True},
        {MODULE: args},
    ])
    check, real, again = results
    assert check["changed"] is True and not check.get("failed"), check
    assert (check["pending"], check["applied"], check["version_before"], check["version_after"]) == ([2, 3], [], 1, 3)
    assert check["diff"] == {"before": {"version": 1}, "after": {"version": 3}}
    # Had check mode applied anything, the real run would start above version 1.
    assert real["changed"] is True and not real.get("failed"), real
    assert (real["applied"], real["pending"], real["version_before"], real["version_after"]) == ([2, 3], [], 1, 3)
    assert real["diff"] == {"before": {"version": 1}, "after": {"version": 3}} and real["role"] == db
    # What the operator sees with --diff (check mode and real run).
    assert process.stdout.count('-    "version": 1\n+    "version": 3') == 2, process.stdout
    assert again["changed"] is False and again["applied"] == [] and again["version_before"] == 3, again
    assert pg_versions(pg_cluster, db) == [1, 2, 3]
    assert pg_cluster.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' "
                           "AND column_name = 'email'", db=db) == [("email",)]
    owners = pg_owners(pg_cluster, db)
    assert {"orders", "orders_customer", "lifeboat_schema_history"} <= set(owners)
    assert set(owners.values()) == {db}, "objects must belong to the database owner, not to the superuser"
    assert pg_cluster.password not in json.dumps(results)


@pytest.mark.postgres
def test_postgres_drift_newer_failure_and_command(pg_cluster, tmp_path):
    conn = pg_cluster.conn_params(tcp=True)
    full = migrations_dir(tmp_path / "migrations", PG_MIGRATIONS)

    drift_db, newer_db, failing_db, command_db = (new_pg_database(pg_cluster, "su_") for _index in range(4))
    with contextlib.closing(PostgresEngine(conn)) as engine:
        for db in (drift_db, newer_db):
            migrations.update(engine, db, migrations=full)
        migrations.update(engine, failing_db, migrations=migrations_dir(tmp_path / "v1", PG_MIGRATIONS, upto=1))
    pg_cluster.psql("INSERT INTO lifeboat_schema_history (version, description, sha256, duration) "
                    "VALUES (5, 'from a newer release', 'x', 0)", db=newer_db)
    edited = migrations_dir(tmp_path / "edited", PG_MIGRATIONS, **{
        "V2__add_email.sql": "ALTER TABLE customers ADD COLUMN email varchar(200);\n",
        "V4__add_notes.sql": "CREATE TABLE notes (body text);\n",
    })
    broken = migrations_dir(tmp_path / "broken", PG_MIGRATIONS, **{"V3__create_orders.sql": FAILING_V3})
    command, log = updater(tmp_path)

    def task(db, **args):
        return {MODULE: dict(conn, environment="shop", database=db, **args)}

    results = run_tasks([
        task(drift_db, migrations=edited),
        task(drift_db, migrations=edited, allow_drift=True),
        task(newer_db, migrations=full),
        dict(task(newer_db, migrations=full, allow_newer=True), diff=True),
        task(failing_db, migrations=broken),
        dict(task(command_db, command=command), check_mode=True),
        dict(task(command_db, command=command), diff=True),
        task(command_db, command=command + ["fail"]),
    ])
    drift, drift_allowed, newer, newer_allowed, failing, command_check, command_run, command_fail = results

    assert drift.get("failed") and "V2__add_email.sql was changed after it was applied" in drift["msg"], drift
    assert "nothing was applied" in drift["msg"] and "allow_drift" in drift["msg"]
    # The refused run applied nothing: V4 was still pending for the next one.
    assert drift_allowed["changed"] is True and drift_allowed["applied"] == [4], drift_allowed
    assert any("V2__add_email.sql was changed" in warning for warning in drift_allowed["warnings"])
    assert pg_versions(pg_cluster, drift_db) == [1, 2, 3, 4]
    assert pg_cluster.psql("SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' "
                           "AND column_name = 'email'", db=drift_db) == [("text",)], "V2 must not run again"

    assert newer.get("failed") and "at version 5, newer than the project's migrations (up to 3)" in newer["msg"], newer
    assert "allow_newer" in newer["msg"]
    assert newer_allowed["changed"] is False and not newer_allowed.get("failed"), newer_allowed
    assert (newer_allowed["version_before"], newer_allowed["version_after"], newer_allowed["applied"]) == (5, 5, [])
    assert any("newer" in warning for warning in newer_allowed["warnings"])
    assert pg_versions(pg_cluster, newer_db) == [1, 2, 3, 5]

    assert failing.get("failed") and "migration V3__create_orders.sql failed" in failing["msg"], failing
    assert "no_such_table" in failing["msg"] and "rolled back" in failing["msg"]
    assert "Traceback" not in failing["msg"]
    assert pg_versions(pg_cluster, failing_db) == [1, 2]
    assert pg_cluster.psql("SELECT to_regclass('public.v3_first')", db=failing_db) == [(None,)]

    assert command_check["changed"] is True and command_check["command_result"] is None, command_check
    assert command_run["changed"] is True and not command_run.get("failed"), command_run
    assert command_run["command_result"]["rc"] == 0
    assert command_run["command_result"]["stdout"] == "structure updated"
    assert command_run["diff"] == {"before": {"version": None}, "after": {"version": None}}
    started = runs(log)
    assert len(started) == 2, "check mode must not run the command (one real run, one failing run)"
    for run in started:
        assert pg_cluster.password not in json.dumps(run) and run["PGPASSWORD"] is None, run
        assert run["cmdline"][1:3] == run["argv"][:2] == command[1:], run
    assert pg_owners(pg_cluster, command_db) == {"made_by_app": command_db}, "PGOPTIONS sets the owner's role"
    assert command_fail.get("failed") and "exit 3" in command_fail["msg"], command_fail
    assert "cannot update: the password ******** is wrong" in command_fail["msg"]
    assert pg_cluster.password not in json.dumps(results)


def test_sqlite_check_apply_idempotence_failure_and_command(tmp_path):
    app, broken_app, command_app = (str(tmp_path / name) for name in ("app.db", "broken.db", "command.db"))
    for path in (app, broken_app, command_app):
        sqlite3.connect(path).close()
    for path in (app, broken_app):
        migrations.update(SqliteEngine({}), path, migrations=migrations_dir(tmp_path / "v1", SQLITE_MIGRATIONS, upto=1))
    full = migrations_dir(tmp_path / "migrations", SQLITE_MIGRATIONS)
    broken = migrations_dir(tmp_path / "broken", SQLITE_MIGRATIONS, **{"V3__create_tags.sql": FAILING_V3})
    command, log = updater(tmp_path)

    def task(path, **args):
        return {MODULE: dict(environment="wiki", engine="sqlite", path=path, **args)}

    results = run_tasks([
        dict(task(app, migrations=full), check_mode=True, diff=True),
        dict(task(app, migrations=full), diff=True),
        task(app, migrations=full),
        task(broken_app, migrations=broken),
        dict(task(command_app, command=command), check_mode=True),
        task(command_app, command=" ".join(command)),
    ])
    check, real, again, failing, command_check, command_run = results
    assert check["changed"] is True and check["pending"] == [2, 3] and check["applied"] == [], check
    assert check["diff"] == {"before": {"version": 1}, "after": {"version": 3}}
    assert real["changed"] is True and real["applied"] == [2, 3] and real["version_before"] == 1, real
    assert real["diff"] == {"before": {"version": 1}, "after": {"version": 3}} and real["role"] is None
    assert again["changed"] is False and again["applied"] == [], again
    assert migrations.current_version(SqliteEngine({}), app) == 3
    with sqlite3.connect(app) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('tags', 'tags_page')"
                                  ).fetchone() == (2,)
    connection.close()

    assert failing.get("failed") and "migration V3__create_tags.sql failed" in failing["msg"], failing
    assert "no such table: no_such_table" in failing["msg"] and "line 2" in failing["msg"]
    assert migrations.current_version(SqliteEngine({}), broken_app) == 2
    with sqlite3.connect(broken_app) as connection:
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'v3_first'").fetchall() == []
    connection.close()

    assert command_check["changed"] is True and command_check["command_result"] is None
    assert command_run["changed"] is True and command_run["command_result"]["stdout"] == "structure updated"
    assert len(runs(log)) == 1, "check mode must not run the command"
    with sqlite3.connect(command_app) as connection:
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'made_by_app'").fetchall()
    connection.close()
