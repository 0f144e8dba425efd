# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tests compare: the full content of a database or a file store, as plain Python values."""

from __future__ import annotations

import hashlib
import os
import sqlite3


def sqlite_snapshot(path):
    """Schema and every row of every table of an SQLite file."""
    # Read-write on purpose: a read-only connection to a WAL database leaves -wal/-shm files behind.
    connection = sqlite3.connect("file:%s?mode=rw" % path, uri=True)
    try:
        schema = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        rows = {name: connection.execute('SELECT * FROM "%s" ORDER BY 1' % name).fetchall()
                for kind, name, _sql in schema if kind == "table"}
        return schema, rows
    finally:
        connection.close()


def files_snapshot(path):
    """Relative path -> SHA-256 of every file below ``path`` (and the directories, as None)."""
    result = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            result[os.path.relpath(os.path.join(root, name), path) + "/"] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                result[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha256(handle.read()).hexdigest()
    return result


def make_pg_app(cluster, name, rows=200):
    """An application's database owned by its own (non-superuser) role, with the objects a restore must keep:
    several tables, a sequence, a view, an index, NULLs, non-ASCII text, bytea, settings and grants."""
    app_password = "app-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    cluster.psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (name, app_password))
    cluster.psql("CREATE ROLE %s_reader LOGIN PASSWORD '%s'" % (name, app_password))
    cluster.psql("CREATE DATABASE %s OWNER %s CONNECTION LIMIT 40" % (name, name))
    cluster.psql("ALTER DATABASE %s SET work_mem = '3MB'" % name)
    cluster.psql("ALTER ROLE %s IN DATABASE %s SET statement_timeout = '17s'" % (name, name))
    cluster.psql("REVOKE CONNECT ON DATABASE %s FROM PUBLIC" % name)
    cluster.psql("GRANT CONNECT ON DATABASE %s TO %s_reader" % (name, name))
    with cluster.connect(name, tcp=True, user=name, password=app_password) as conn:
        conn.execute("""
            CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text, photo bytea);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                                 total numeric(12, 2), placed timestamptz DEFAULT '2026-01-02 03:04:05+00');
            CREATE INDEX orders_customer ON orders (customer_id);
            CREATE SEQUENCE invoice_no START 1000;
            CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        """)
        conn.execute("INSERT INTO customers (name, note, photo) VALUES (%s, %s, %s), (%s, %s, %s), (%s, %s, %s)",
                     ["Zoë Ångström", None, bytes(range(256)), "李小龍", "ünïcödé ✓", None, "plain", "", b""])
        conn.execute("INSERT INTO orders (customer_id, total)"
                     " SELECT 1 + i %% 3, i * 7.25 FROM generate_series(1, %s) i",
                     [rows])
        conn.execute("SELECT nextval('invoice_no'), nextval('invoice_no')")
    return app_password


def pg_snapshot(cluster, db):
    """Everything a restore must bring back: rows, sequences, views, indexes, owners, settings, grants."""
    with cluster.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
        rows = {t: conn.execute('SELECT * FROM "%s" ORDER BY 1' % t).fetchall() for t in tables}
        sequences = conn.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall()
        views = conn.execute("SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'").fetchall()
        indexes = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                               "ORDER BY 1").fetchall()
        owners = conn.execute("SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
                              "ON n.oid = c.relnamespace WHERE n.nspname = 'public' ORDER BY 1").fetchall()
    with cluster.connect() as conn:
        database = conn.execute(
            "SELECT pg_get_userbyid(datdba), datconnlimit, datacl::text, datallowconn FROM pg_database "
            "WHERE datname = %s", [db]).fetchone()
        settings = conn.execute(
            "SELECT coalesce(pg_get_userbyid(s.setrole), ''), s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s ORDER BY 1", [db]).fetchall()
    return {"rows": rows, "sequences": sequences, "views": views, "indexes": indexes, "owners": owners,
            "database": database, "settings": settings}


def damage_pg(cluster, db):
    with cluster.connect(db) as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
        conn.execute("UPDATE customers SET name = 'overwritten'")
        conn.execute("SELECT nextval('invoice_no')")
