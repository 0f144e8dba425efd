# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""structure_update on one SQLite file: ``BEGIN IMMEDIATE`` per migration, statements one by one.

The engine-independent part (files, plan, the updater) is module_utils/migrations.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, isoformat, utcnow
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import (
    MigrationFailed,
    Migrator,
    history_table_name,
)

# How long a run waits for another program's lock on the file (another structure update, the application).
SQLITE_BUSY_SECONDS = 10
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)


def split_sqlite(script):
    """The statements of an SQLite script as ``[(line, statement), ...]`` (``line`` where each starts).

    ``sqlite3.complete_statement`` decides where a statement ends, so semicolons in strings, comments and
    trigger bodies do not split. A last statement without ``;`` counts too.
    """
    statements, start = [], 0
    position = script.find(";")
    while position != -1:
        chunk = script[start:position + 1]
        if sqlite3.complete_statement(chunk):
            _add_statement(statements, script, start, chunk)
            start = position + 1
        position = script.find(";", position + 1)
    _add_statement(statements, script, start, script[start:])
    return statements


def _add_statement(statements, script, start, chunk):
    noise = _LEADING_NOISE.match(chunk).end()
    body = chunk[noise:].strip()
    if body and body != ";":
        statements.append((script.count("\n", 0, start + noise) + 1, body))


def transaction_control(statement):
    """The keyword if ``statement`` would end or start a transaction (BEGIN, COMMIT, END, ROLLBACK), else None."""
    words = statement.split(None, 3)
    first = words[0].upper().rstrip(";") if words else ""
    if first in ("BEGIN", "COMMIT", "END"):
        return first
    # ROLLBACK TO [SAVEPOINT] name stays inside the transaction.
    if first == "ROLLBACK" and "TO" not in [word.upper() for word in words[1:3]]:
        return first
    return None


def sqlite_statements(migration):
    """The statements of ``migration``, refused up front if one would break its transaction."""
    statements = split_sqlite(migration.sql)
    for line, statement in statements:
        keyword = transaction_control(statement)
        if keyword:
            raise LifeboatError(
                "migration %s has a %s statement at line %d; Lifeboat runs each migration in its own transaction, "
                "so remove the transaction control from the file (nothing was applied)"
                % (migration.name, keyword, line)
            )
    return statements


class SqliteMigrator(Migrator):
    """Migrations on the SQLite file ``path``; ``connect(path, timeout)`` opens it (``sqlite.connect_existing``,
    passed in because engines/sqlite.py imports this module)."""

    def __init__(self, path, history_table, connect):
        self.path = path
        self.label = "SQLite database %s" % path
        _schema, self.table = history_table_name(history_table)
        self.quoted = '"%s"' % self.table
        self.connect = connect

    def open(self, read_only=False):
        self.conn = self.connect(self.path, timeout=SQLITE_BUSY_SECONDS)

    def _errors(self, action):
        return _sqlite_errors(self.path, action)

    def history(self):
        with self._errors("reading table %s of" % self.table):
            exists = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       [self.table]).fetchone()
            if not exists:
                return None
            rows = self.conn.execute("SELECT version, sha256 FROM %s" % self.quoted).fetchall()
        return {int(version): checksum for version, checksum in rows}

    def lock(self):
        # BEGIN IMMEDIATE serialises writers; apply() checks the history again inside it.
        return contextlib.nullcontext()

    def prepare(self, migration):
        return sqlite_statements(migration)

    def apply(self, migration, statements, create_history):
        conn = self.conn
        with self._errors("locking"):
            conn.execute("BEGIN IMMEDIATE")
        line = None
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS %s (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                         " sha256 TEXT NOT NULL, applied_at TEXT NOT NULL, duration REAL NOT NULL)" % self.quoted)
            if conn.execute("SELECT 1 FROM %s WHERE version = ?" % self.quoted, [migration.version]).fetchone():
                conn.execute("ROLLBACK")
                return None  # another run applied it meanwhile
            applied_at = isoformat(utcnow())
            started = time.monotonic()
            for line, statement in statements:
                conn.execute(statement)
                if not conn.in_transaction:
                    raise sqlite3.OperationalError("the statement ended the migration's transaction")
            seconds = round(time.monotonic() - started, 3)
            line = None
            conn.execute("INSERT INTO %s (version, description, sha256, applied_at, duration) VALUES (?, ?, ?, ?, ?)"
                         % self.quoted, [migration.version, migration.description, migration.sha256, applied_at,
                                         seconds])
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            where = " at line %s" % line if line else ""
            raise MigrationFailed(migration, "%s%s: %s" % (self.label, where, exc)) from None
        return seconds

    @contextlib.contextmanager
    def command_env(self):
        yield dict(os.environ, LIFEBOAT_ENGINE="sqlite", LIFEBOAT_DATABASE=self.path, LIFEBOAT_SQLITE_PATH=self.path,
                   DATABASE_URL="sqlite:///" + self.path)


@contextlib.contextmanager
def _sqlite_errors(path, action):
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise LifeboatError("SQLite database %s is in use (locked by another program for more than %d seconds); "
                                "stop the application and run again" % (path, SQLITE_BUSY_SECONDS)) from None
        raise LifeboatError("%s SQLite database %s failed: %s" % (action, path, exc)) from None
    except sqlite3.DatabaseError as exc:
        raise LifeboatError("SQLite database %s is not usable: %s" % (path, exc)) from None
