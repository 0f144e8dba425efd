# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""structure_update on one PostgreSQL database: each migration in its own transaction, as the database's owner.

The engine-independent part (files, plan, the updater) is module_utils/migrations.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import (
    database_url,
    first_line,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import (
    MigrationFailed,
    Migrator,
    history_table_name,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.pq import TransactionStatus
except ImportError:
    pass  # postgresql_server.HAS_PSYCOPG tells, and modules report it before anything runs

# How long a run waits for another structure update of the same database.
LOCK_WAIT_SECONDS = 60
# One advisory lock key for every database (PostgreSQL scopes advisory locks to the database).
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"lifeboat.structure_update").digest()[:8], "big", signed=True)


def pg_option_value(value):
    """``value`` escaped for one ``-c name=value`` of PGOPTIONS (spaces and backslashes)."""
    return re.sub(r"([\\\s])", r"\\\1", value)


class PostgresMigrator(Migrator):
    """Migrations on database ``dbname`` of ``server``, as ``role`` (by default the database's owner)."""

    def __init__(self, server, tools, dbname, history_table, role):
        # The engine's: it closes the server's connection, close() only this migrator's own.
        self.server = server
        self.tools = tools
        self.dbname = dbname
        self.label = "database %s" % dbname
        self.schema, self.table = history_table_name(history_table, default_schema="public")
        self.history_sql = sql.Identifier(self.schema, self.table)
        self.requested_role = role

    def open(self, read_only=False):
        if not self.server.database_exists(self.dbname):
            raise LifeboatError("database %s does not exist on the PostgreSQL server; nothing to update (check the "
                                "database name)" % self.dbname)
        # Migrations run in this session as the owner, with the database's own search_path; a read-only look
        # stays login_user, so it sees pg_catalog alone.
        self.conn = self.server.connect(self.dbname, catalog_only=read_only)
        if read_only:
            return
        with self.server.sql_errors("reading the owner of database %s" % self.dbname):
            owner = self.conn.execute(
                # Qualified: this runs as login_user, before SET ROLE, under the database's search_path.
                "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database"
                " WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()").fetchone()[0]
        self.role = self.requested_role or owner
        if not self.server.role_exists(self.role):
            raise LifeboatError("role %s does not exist on the PostgreSQL server; check option role" % self.role)
        # Checked in check mode too: the run would fail at the first migration otherwise.
        self._set_role()

    def _set_role(self):
        try:
            self.conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))
        except psycopg.Error as exc:
            raise LifeboatError(
                "cannot act as role %s on database %s (%s); connect as a superuser or as a member of role %s "
                "(GRANT %s TO %s), or choose another role" % (
                    self.role, self.dbname, first_line(exc), self.role, self.role, self.server.user)) from None

    def history(self):
        """{version: sha256}, or None when the history table does not exist."""
        with self.server.sql_errors("reading %s.%s of database %s" % (self.schema, self.table, self.dbname)):
            exists = self.conn.execute(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')", [self.schema, self.table],
            ).fetchone()
            if not exists:
                return None
            rows = self.conn.execute(sql.SQL("SELECT version, sha256 FROM {}").format(self.history_sql)).fetchall()
        return {int(version): checksum for version, checksum in rows}

    @contextlib.contextmanager
    def lock(self):
        """One structure update per database at a time; a second run waits, then finds nothing pending."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        with self.server.sql_errors("locking database %s for the structure update" % self.dbname):
            while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", [_ADVISORY_KEY]).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise LifeboatError("another structure update of database %s is still running after %d seconds "
                                        "of waiting; wait for it to end and run again"
                                        % (self.dbname, LOCK_WAIT_SECONDS))
                time.sleep(0.5)
        try:
            yield
        finally:
            # Closing the connection releases the lock too.
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_KEY])

    def prepare(self, migration):
        return None

    def apply(self, migration, statements, create_history):
        """Run ``migration`` and record it in one transaction; the seconds it took."""
        conn = self.conn
        # Each migration starts from the same session state, whatever the one before it SET.
        with self.server.sql_errors("resetting the session on database %s before %s" % (self.dbname, migration.name)):
            conn.execute("RESET ALL")
        self._set_role()
        try:
            with conn.transaction():
                if create_history:
                    conn.execute(sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (version bigint PRIMARY KEY, description text NOT NULL,"
                        " sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
                        " duration double precision NOT NULL)").format(self.history_sql))
                started = time.monotonic()
                if migration.sql.strip():
                    conn.execute(migration.sql)
                seconds = round(time.monotonic() - started, 3)
                if conn.info.transaction_status != TransactionStatus.INTRANS:
                    raise LifeboatError(
                        "migration %s ended its own transaction (COMMIT or ROLLBACK in the file), so it is not "
                        "recorded and what it did before that may be committed in database %s; remove the "
                        "transaction control from the file and check the database" % (migration.name, self.dbname))
                conn.execute(sql.SQL("INSERT INTO {} (version, description, sha256, duration)"
                                     " VALUES (%s, %s, %s, %s)").format(self.history_sql),
                             [migration.version, migration.description, migration.sha256, seconds])
        except psycopg.Error as exc:
            position = getattr(exc.diag, "statement_position", None)
            where = ""
            if position and str(position).isdigit() and exc.diag.message_primary:
                where = " at line %d" % (migration.sql.count("\n", 0, int(position) - 1) + 1)
            raise MigrationFailed(migration, "%s%s: %s" % (self.label, where, first_line(exc))) from None
        return seconds

    @contextlib.contextmanager
    def command_env(self):
        """The updater's environment: libpq variables and the password as ``PgTools.credentials`` hands it to a
        child (a 0600 passfile in the environment's private directory), nowhere else."""
        child_env = self.tools.child_env()
        options = (child_env.get("PGOPTIONS", "") + " -c role=" + pg_option_value(self.role)).strip()
        child_env.update(PGDATABASE=self.dbname, PGOPTIONS=options, LIFEBOAT_ENGINE="postgresql",
                         LIFEBOAT_DATABASE=self.dbname, LIFEBOAT_ROLE=self.role,
                         DATABASE_URL=database_url(self.tools.params, self.dbname))
        with self.tools.credentials(child_env) as child_env:
            yield child_env
