# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Databases that unit and integration tests make: a SQLite file with one row, a PostgreSQL database of its own."""

from __future__ import annotations

import secrets
import sqlite3


def sqlite_db(path, value="original"):
    """A SQLite database at ``path`` whose table ``t (v)`` holds ``value``; the path as a string."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (v TEXT)")
    connection.execute("INSERT INTO t VALUES (?)", [value])
    connection.commit()
    connection.close()
    return str(path)


def rows(path):
    """The rows of table ``t`` of the SQLite database at ``path``."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT v FROM t").fetchall()
    finally:
        connection.close()


def new_pg_database(cluster, prefix):
    """A new database on ``cluster`` owned by a new NOLOGIN role of the same name, ``<prefix><random>``."""
    name = prefix + secrets.token_hex(4)
    cluster.psql('CREATE ROLE "%s" NOLOGIN' % name)
    cluster.psql('CREATE DATABASE "%s" OWNER "%s"' % (name, name))
    return name
