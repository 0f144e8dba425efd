# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQLite statement splitting and transaction control in migration files: pure functions."""

from __future__ import annotations

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite_migrator import (
    sqlite_statements,
    split_sqlite,
    transaction_control,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import Migration


@pytest.mark.parametrize("script, expected", [
    ("CREATE TABLE a (x);", [(1, "CREATE TABLE a (x);")]),
    ("CREATE TABLE a (x); CREATE TABLE b (y);", [(1, "CREATE TABLE a (x);"), (1, "CREATE TABLE b (y);")]),
    ("INSERT INTO a VALUES ('x;y');\n-- a comment; with a semicolon\nINSERT INTO a VALUES (1)",
     [(1, "INSERT INTO a VALUES ('x;y');"), (3, "INSERT INTO a VALUES (1)")]),
    ("/* header; */\n\nCREATE TABLE a (x);\n", [(3, "CREATE TABLE a (x);")]),
    ("CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\n  INSERT INTO b VALUES (2);\nEND;\n"
     "SELECT 1;",
     [(1, "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  INSERT INTO b VALUES (1);\n  INSERT INTO b VALUES (2);\nEND;"),
      (5, "SELECT 1;")]),
    ("", []),
    ("-- only a comment\n", []),
    (";;\n;", []),
    ('CREATE TABLE "semi;colon" (x);', [(1, 'CREATE TABLE "semi;colon" (x);')]),
])
def test_split_sqlite(script, expected):
    assert split_sqlite(script) == expected


@pytest.mark.parametrize("statement, keyword", [
    ("BEGIN;", "BEGIN"),
    ("begin transaction;", "BEGIN"),
    ("COMMIT", "COMMIT"),
    ("END TRANSACTION;", "END"),
    ("ROLLBACK;", "ROLLBACK"),
    ("rollback transaction", "ROLLBACK"),
    ("ROLLBACK TO sp;", None),
    ("ROLLBACK TRANSACTION TO SAVEPOINT sp;", None),
    ("SAVEPOINT sp;", None),
    ("CREATE TABLE begin_dates (x);", None),
    ("SELECT CASE WHEN 1 THEN 2 END;", None),
])
def test_transaction_control(statement, keyword):
    assert transaction_control(statement) == keyword


def test_sqlite_statements_refuse_transaction_control_with_its_line():
    bad = Migration(4, "x", "V4__x.sql", "/m/V4__x.sql", "0", "CREATE TABLE a (x);\n-- c\nCOMMIT;\nSELECT 1;")
    with pytest.raises(LifeboatError, match="V4__x.sql has a COMMIT statement at line 3"):
        sqlite_statements(bad)
