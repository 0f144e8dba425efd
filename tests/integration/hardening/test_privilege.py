# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Privilege, the PostgreSQL part: the SQL of a restored dump never runs with more privilege than the owner.

The attack is a custom-format dump whose COMMENT entry was edited to ``RESET ROLE; COPY ... TO PROGRAM ...;
CREATE ROLE ... SUPERUSER``: run by a superuser login (``pg_restore --role`` is only SET ROLE) it runs a
program on the server and creates a superuser. Each test restores through real ansible-playbook runs. (A restore
role left by a killed run: test_secrets.py.)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess

import pytest

from datasets import make_pg_app, pg_snapshot
from pgcluster import PgCluster
from playbook import run_module

pytestmark = pytest.mark.postgres

PADDING = "x" * 200


def unique(prefix):
    return "%s_%s" % (prefix, secrets.token_hex(4))


def new_env(cluster, tmp_path, tcp=False):
    name = unique("pv")
    password = make_pg_app(cluster, name)
    env = dict(cluster.conn_params(tcp=tcp), environment=name, engine="postgresql", database=name,
               catalog=str(tmp_path / "catalog"))
    return env, password


def restore_roles(cluster):
    return cluster.psql("SELECT rolname FROM pg_roles WHERE rolname LIKE 'lifeboat\\_restore\\_%'")


def pg_dump(cluster, db, path):
    subprocess.run([os.path.join(cluster.bin_dir, "pg_dump"), "-Fc", "-Z0", "-O", "-x", "-h", cluster.socket_dir,
                    "-p", str(cluster.port), "-U", "postgres", "-f", path, db], check=True)


def edited_dump(cluster, tmp_path, db, sql):
    """A dump of ``db`` whose padded COMMENT ON TABLE entry holds ``sql`` instead (the custom format stores the
    length of each entry's SQL, so the new text keeps it)."""
    with cluster.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS commented (x int)")
        conn.execute("COMMENT ON TABLE commented IS '%s'" % PADDING)
    path = str(tmp_path / ("%s.dump" % unique("edited")))
    pg_dump(cluster, db, path)
    with open(path, "rb") as handle:
        data = handle.read()
    original = ("COMMENT ON TABLE public.commented IS '%s';" % PADDING).encode()
    replacement = sql.encode()
    assert data.count(original) == 1 and len(replacement) <= len(original)
    with open(path, "wb") as handle:
        handle.write(data.replace(original, replacement.ljust(len(original))))
    with cluster.connect(db) as conn:
        conn.execute("DROP TABLE commented")
    return path


def attack_sql(marker, evil):
    return "RESET ROLE; COPY (SELECT 1) TO PROGRAM 'touch %s'; CREATE ROLE %s SUPERUSER; --" % (marker, evil)


def test_hostile_dump_runs_no_program_and_creates_no_role(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    db = env["database"]
    marker, evil = "/tmp/%s" % unique("lifeboat-pwned"), unique("evil")
    dump = edited_dump(pg_cluster, tmp_path, db, attack_sql(marker, evil))

    # The attack is real: restored as a superuser login with --role, as Lifeboat used to, it gets through.
    scratch = unique("pv_scratch")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (scratch, db))
    subprocess.run([os.path.join(pg_cluster.bin_dir, "pg_restore"), "-h", pg_cluster.socket_dir, "-p",
                    str(pg_cluster.port), "-U", "postgres", "--no-owner", "--role=%s" % db, "-d", scratch, dump],
                   capture_output=True, check=False)
    assert os.path.exists(marker) and pg_cluster.psql("SELECT rolsuper FROM pg_roles WHERE rolname = %s",
                                                      params=[evil]) == [(True,)]
    os.unlink(marker)
    pg_cluster.psql("DROP ROLE %s" % evil)
    pg_cluster.psql("DROP DATABASE %s" % scratch)

    before = pg_snapshot(pg_cluster, db)
    result = run_module("backup_restore", dict(env, src=dump))
    assert result["failed"], result
    assert "pg_restore failed" in result["msg"] and "pg_execute_server_program" in result["msg"], result["msg"]
    assert not os.path.exists(marker)
    assert pg_cluster.psql("SELECT 1 FROM pg_roles WHERE rolname = %s", params=[evil]) == []
    assert pg_snapshot(pg_cluster, db) == before
    assert restore_roles(pg_cluster) == []


def trap(marker, evil):
    """plpgsql that, run by a superuser, runs a program and makes a superuser; anyone else gets an answer."""
    return ("BEGIN IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user) "
            "THEN "
            "EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch %s'''; EXECUTE 'CREATE ROLE %s SUPERUSER'; END IF; "
            % (marker, evil))


def assert_not_fooled(cluster, marker, evil):
    assert not os.path.exists(marker), "a program ran as the superuser"
    assert cluster.psql("SELECT 1 FROM pg_roles WHERE rolname = %s", params=[evil]) == []


def test_an_operator_planted_by_the_owner_never_runs_as_the_superuser(pg_cluster, tmp_path):
    """An = on exactly the types of a query Lifeboat runs as login_user in the restored database would win over
    pg_catalog's, all the more with pg_catalog last in the database's search_path. The dump itself is ordinary
    (pg_dump of what the owner made); the restore, its verification and the structure update all look."""
    env, password = new_env(pg_cluster, tmp_path)
    db = env["database"]
    marker, evil = "/tmp/%s" % unique("lifeboat-pwned"), unique("evil")
    with pg_cluster.connect(db, tcp=True, user=db, password=password) as conn:
        for types, compare in (("oid, regclass", "$1 = $2::oid"), ("name, name", "$1 OPERATOR(pg_catalog.=) $2")):
            conn.execute("CREATE FUNCTION public.evil_eq(%s) RETURNS bool LANGUAGE plpgsql COST 0.00001 AS "
                         "$f$ %s RETURN %s; END $f$" % (types, trap(marker, evil), compare))
            left, right = types.split(", ")
            conn.execute("CREATE OPERATOR public.= (LEFTARG = %s, RIGHTARG = %s, FUNCTION = public.evil_eq)"
                         % (left, right))
        conn.execute("ALTER DATABASE %s SET search_path = public, pg_catalog" % db)
    created = run_module("backup_create", env)
    assert not created.get("failed"), created
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "V1__note.sql").write_text("CREATE TABLE note (x int);\n")

    restored = run_module("backup_restore", dict(env, force=True, structure_update={"migrations": str(migrations)}))
    verified = run_module("backup_info", dict(env, verify="restore"))
    checked = run_module("structure_update", dict(env, migrations=str(migrations)), check=True)

    for result in (restored, verified, checked):
        assert not result.get("failed"), result
    assert_not_fooled(pg_cluster, marker, evil)


def test_restore_gives_the_owner_every_object(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    db = env["database"]
    pg_cluster.psql("CREATE SCHEMA extra; CREATE TABLE extra.t (id serial PRIMARY KEY);"
                    "CREATE FUNCTION extra.f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
                    "CREATE TYPE extra.mood AS ENUM ('ok'); ALTER SCHEMA extra OWNER TO %s;"
                    "ALTER TABLE extra.t OWNER TO %s; ALTER FUNCTION extra.f() OWNER TO %s;"
                    "ALTER TYPE extra.mood OWNER TO %s" % (db, db, db, db), db=db)
    # What the archive makes after RESET ROLE is the short-lived role's at first; it must end up the owner's.
    dump = edited_dump(pg_cluster, tmp_path, db, "RESET ROLE; CREATE TABLE public.sneaky (x int); SET ROLE %s; --" % db)
    result = run_module("backup_restore", dict(env, src=dump))
    assert result["changed"] is True, result

    owners = pg_cluster.psql(
        "SELECT DISTINCT owner FROM ("
        " SELECT pg_get_userbyid(c.relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  WHERE n.nspname IN ('public', 'extra')"
        " UNION ALL SELECT pg_get_userbyid(p.proowner) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        "  WHERE n.nspname = 'extra'"
        " UNION ALL SELECT pg_get_userbyid(t.typowner) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace"
        "  WHERE n.nspname = 'extra'"
        " UNION ALL SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'extra') o", db=db)
    assert owners == [(db,)]
    kinds = pg_cluster.psql("SELECT array_agg(DISTINCT c.relkind::text ORDER BY c.relkind::text) FROM pg_class c"
                            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'", db=db)
    assert set(kinds[0][0]) >= {"r", "S", "v", "i"}, "tables, sequences, views and indexes came back"
    assert pg_cluster.psql("SELECT to_regclass('public.sneaky') IS NOT NULL", db=db) == [(True,)]
    assert restore_roles(pg_cluster) == []


def test_restore_user_logs_in_instead(pg_cluster, tmp_path):
    env, app_password = new_env(pg_cluster, tmp_path, tcp=True)
    db = env["database"]
    created = run_module("backup_create", env)
    assert created["changed"] is True, created
    results = [
        run_module("backup_restore", dict(env, restore_user=db, restore_password="wrong-" + app_password)),
        run_module("backup_restore", dict(env, restore_user="postgres", restore_password=pg_cluster.password)),
        run_module("backup_restore", dict(env, restore_user=db + "_reader", restore_password=app_password)),
        run_module("backup_restore", dict(env, restore_user=db, restore_password=app_password, force=True)),
    ]
    assert results[0]["failed"] and 'password authentication failed for user "%s"' % db in results[0]["msg"]
    assert "wrong-" + app_password not in json.dumps(results[0])
    assert results[1]["failed"] and "restore_user postgres is a superuser" in results[1]["msg"], results[1]
    assert results[2]["failed"] and "GRANT %s TO %s_reader" % (db, db) in results[2]["msg"], results[2]
    assert results[3]["changed"] is True, results[3]
    assert pg_snapshot(pg_cluster, db)["owners"][0][1] == db
    assert restore_roles(pg_cluster) == []


def test_privileged_or_missing_owner_is_refused(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    created = run_module("backup_create", env)
    src = created["backup"]["path"]
    powerful = unique("pv_files")
    pg_cluster.psql("CREATE ROLE %s NOLOGIN IN ROLE pg_execute_server_program" % powerful)
    target = unique("pv_new")
    new = dict(env, environment=target, database=target)
    results = [
        run_module("backup_restore", dict(new, src=src)),
        run_module("backup_restore", dict(new, src=src, owner="postgres")),
        run_module("backup_restore", dict(new, src=src, owner=powerful)),
    ]
    assert results[0]["failed"] and "database %s does not exist yet: set owner" % target in results[0]["msg"]
    assert results[1]["failed"] and "owned by role postgres, which is a superuser" in results[1]["msg"]
    assert results[2]["failed"] and "a member of pg_execute_server_program" in results[2]["msg"], results[2]
    for result in results[1:]:
        assert "Set owner to an ordinary role" in result["msg"]
    assert pg_cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=[target + "%"]) == []


def test_verify_restore_fails_on_a_refusal_instead_of_calling_the_backup_damaged(pg_cluster, tmp_path):
    env = new_env(pg_cluster, tmp_path)[0]
    assert not run_module("backup_create", env).get("failed")
    pg_cluster.psql("ALTER DATABASE %s OWNER TO postgres" % env["database"])

    result = run_module("backup_info", dict(env, verify="restore"))

    assert result.get("failed") and "Set owner to an ordinary role" in result["msg"], result
    assert "damaged" not in result["msg"]


def extension_env(cluster, tmp_path):
    """An app whose database uses postgres_fdw (not trusted: only a superuser creates it) in a schema of its own,
    and hstore (trusted: the owner may create it)."""
    env = new_env(cluster, tmp_path)[0]
    db = env["database"]
    trusted = dict(cluster.psql("SELECT name, trusted FROM pg_available_extension_versions"
                                " WHERE name IN ('postgres_fdw', 'hstore')"))
    assert trusted == {"postgres_fdw": False, "hstore": True}
    cluster.psql("CREATE SCHEMA fdw AUTHORIZATION %s; CREATE EXTENSION postgres_fdw WITH SCHEMA fdw;"
                 "CREATE EXTENSION hstore; CREATE TABLE tagged (id int, tags hstore); ALTER TABLE tagged OWNER TO %s;"
                 "INSERT INTO tagged VALUES (1, 'a=>1')" % (db, db), db=db)
    return env


def test_extensions_need_the_allow_list(pg_cluster, tmp_path):
    env = extension_env(pg_cluster, tmp_path)
    db = env["database"]
    created = run_module("backup_create", env)
    pg_cluster.psql("DELETE FROM tagged", db=db)
    before = pg_snapshot(pg_cluster, db)

    refused = run_module("backup_restore", env)
    assert refused["failed"], refused
    assert 'permission denied to create extension "postgres_fdw"' in refused["msg"], refused["msg"]
    assert "extension postgres_fdw can only be created by a superuser" in refused["msg"]
    assert "extensions option" in refused["msg"]
    assert pg_snapshot(pg_cluster, db) == before

    done = run_module("backup_restore", dict(env, backup=created["backup"]["id"], extensions=["postgres_fdw"]))
    assert done["changed"] is True, done
    assert pg_cluster.psql("SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n"
                           " ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql' ORDER BY 1", db=db) == [
        ("hstore", "public"), ("postgres_fdw", "fdw")]
    assert pg_cluster.psql("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'fdw'", db=db) == [
        (db,)]
    assert pg_cluster.psql("SELECT tags -> 'a' FROM tagged", db=db) == [("1",)]
    assert restore_roles(pg_cluster) == []


# The superuser logs in over the socket as root mapped to postgres; everyone else only by peer, and the restore
# role is no system user.
PEER_HBA = "local all all peer map=lifeboat\nhost all all 127.0.0.1/32 reject\n"
PEER_IDENT = "lifeboat root postgres\nlifeboat postgres postgres\n"


@pytest.fixture(scope="module")
def peer_cluster():
    cluster = PgCluster(hba=PEER_HBA, ident=PEER_IDENT).start()
    yield cluster
    cluster.stop()


def test_peer_only_server_is_refused_with_how_to_allow_it(peer_cluster, tmp_path):
    db = unique("pv")
    peer_cluster.psql("CREATE ROLE %s NOLOGIN" % db)
    peer_cluster.psql("CREATE DATABASE %s OWNER %s" % (db, db))
    peer_cluster.psql("SET ROLE %s; CREATE TABLE orders AS SELECT generate_series(1, 10) AS id" % db, db=db)
    env = dict(peer_cluster.conn_params(tcp=False), environment=db, engine="postgresql", database=db,
               catalog=str(tmp_path / "catalog"))
    dump = str(tmp_path / "app.dump")
    pg_dump(peer_cluster, db, dump)
    peer_cluster.psql("DELETE FROM orders WHERE id > 5", db=db)
    before = pg_snapshot(peer_cluster, db)

    result = run_module("backup_restore", dict(env, src=dump))
    assert result["failed"], result
    assert "does not let it log in" in result["msg"] and "Peer authentication failed" in result["msg"]
    assert "'local all +%s scram-sha-256'" % db in result["msg"] and "restore_user" in result["msg"]
    assert pg_snapshot(peer_cluster, db) == before
    assert restore_roles(peer_cluster) == []
