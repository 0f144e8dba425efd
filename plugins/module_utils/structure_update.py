# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""structure_update: bring a database's structure to what the deployed project expects.

Either versioned SQL migrations (``V<version>__<description>.sql``, each applied in its own transaction and
recorded in a history table), or the application's own updater run with the connection in its environment.
Works on any database, not only an environment's: restore runs it on staging copies. See
docs/structure-update.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import time
from typing import NamedTuple
from urllib.parse import quote, urlencode

from ansible_collections.lifeboat.backup.plugins.module_utils import process
from ansible_collections.lifeboat.backup.plugins.module_utils.engines import sqlite
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    isoformat,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SqliteEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment, private_tmp
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import (
    HAS_PSYCOPG,
    STDERR_LINES,
    PgTools,
    PostgresServer,
    first_line,
)

try:
    import psycopg
    from psycopg import sql
    from psycopg.pq import TransactionStatus
except ImportError:
    pass  # postgres.HAS_PSYCOPG tells, and modules report it before anything runs

DEFAULT_HISTORY_TABLE = "lifeboat_schema_history"
# Versions are stored as PostgreSQL bigint; time stamps such as 20260102120000 fit.
MAX_VERSION = 2 ** 63 - 1
NAME_FORMAT = "V<version>__<description>.sql"
_MIGRATION = re.compile(r"^V(?P<version>[0-9]+)__(?P<description>.*\S.*)\.sql$", re.DOTALL)
# Names an operator meant as migrations: refused when malformed rather than silently skipped.
_LOOKS_LIKE_MIGRATION = re.compile(r"(^[Vv][0-9])|(\.sql$)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
# How long a run waits for another structure update of the same database (advisory lock, SQLite busy lock).
LOCK_WAIT_SECONDS = 60
SQLITE_BUSY_SECONDS = 10
# One advisory lock key for every database (PostgreSQL scopes advisory locks to the database).
_ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"lifeboat.structure_update").digest()[:8], "big", signed=True)


class Migration(NamedTuple):
    version: int
    description: str
    name: str
    path: str
    sha256: str
    sql: str


# --- migration files (pure) -----------------------------------------------------------------------

def parse_name(name):
    """``(version, description)`` of a migration file name; None for a file that is no migration (README,
    hidden files); LifeboatError for a name that looks like a migration but does not follow NAME_FORMAT."""
    if name.startswith("."):
        return None
    match = _MIGRATION.match(name)
    if match:
        version = int(match.group("version"))
        if version > MAX_VERSION:
            raise LifeboatError("%s: version %d is too large (at most %d)" % (name, version, MAX_VERSION))
        # As Flyway does: underscores in the description stand for spaces.
        return version, match.group("description").replace("_", " ").strip()
    if _LOOKS_LIKE_MIGRATION.search(name):
        raise LifeboatError("%s is not named %s" % (name, NAME_FORMAT))
    return None


def scan(directory):
    """The migrations in ``directory`` (not its subdirectories), in version order."""
    if not os.path.isdir(directory):
        raise LifeboatError("migrations directory %s does not exist or is not a directory" % directory)
    found, errors = [], []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            parsed = parse_name(name)
        except LifeboatError as exc:
            errors.append(str(exc))
            continue
        if parsed is None:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            errors.append("%s is not UTF-8 text (%s)" % (name, exc.reason))
            continue
        found.append(Migration(parsed[0], parsed[1], name, path, hashlib.sha256(data).hexdigest(), text))
    if errors:
        raise LifeboatError("migrations directory %s: %s; rename or move these files (a migration is named %s, "
                            "for example V3__add_invoice_table.sql)" % (directory, "; ".join(errors), NAME_FORMAT))
    return _check_unique(found, directory)


def _check_unique(migrations, directory):
    by_version = {}
    for migration in migrations:
        by_version.setdefault(migration.version, []).append(migration.name)
    duplicates = ["version %d: %s" % (version, ", ".join(names))
                  for version, names in sorted(by_version.items()) if len(names) > 1]
    if duplicates:
        raise LifeboatError("migrations directory %s has more than one file for the same version (%s); give each "
                            "migration its own version" % (directory, "; ".join(duplicates)))
    return sorted(migrations, key=lambda migration: migration.version)


def project_version(migrations_dir):
    """The highest version among the migration files of ``migrations_dir``; None when it holds none."""
    migrations = scan(migrations_dir)
    return migrations[-1].version if migrations else None


def plan(migrations, history, allow_drift=False, allow_newer=False, target="the database"):
    """What to apply, given the project's ``migrations`` and the ``history`` ({version: sha256}) of ``target``.

    Refuses (LifeboatError, nothing applied) when the database's past differs from the project's (a changed
    or missing applied file, or a pending migration older than the database's version: drift), or when the
    database is newer than every migration of the project, unless the operator allows it.
    """
    files = {migration.version: migration for migration in migrations}
    project = max(files) if files else None
    current = max(history) if history else None
    newer = sorted(v for v in history if project is None or v > project)
    changed = sorted(v for v in history if v in files and files[v].sha256 != history[v])
    missing = sorted(v for v in history if v not in files and v not in newer)
    pending = [migration for migration in migrations if migration.version not in history]
    late = [migration.version for migration in pending if current is not None and migration.version < current]
    drift = (["%s was changed after it was applied (sha256 %s... recorded, %s... now)"
              % (files[v].name, history[v][:12], files[v].sha256[:12]) for v in changed]
             + ["version %d was applied but has no file any more" % v for v in missing]
             + ["%s is not applied but the database is already at version %d" % (files[v].name, current)
                for v in late])
    problems, warnings = [], []
    if drift:
        (warnings if allow_drift else problems).append("; ".join(drift))
    if newer:
        (warnings if allow_newer else problems).append(
            "the database is at version %d, newer than the project's migrations (%s): it comes from a newer release "
            "(version %s unknown here)" % (current, "there are none" if project is None else "up to %d" % project,
                                           ", ".join(map(str, newer))))
    if problems:
        remedies = [remedy for condition, remedy in (
            (drift and not allow_drift, "restore the migration files as they were applied, or set allow_drift: "
                                        "true to accept the difference (changed files are not run again, "
                                        "pending ones run in version order)"),
            (newer and not allow_newer, "deploy the matching release, or set allow_newer: true to keep the "
                                        "newer structure"),
        ) if condition]
        raise LifeboatError("structure of %s does not match the project: %s; nothing was applied. To go on: %s"
                            % (target, "; ".join(problems), "; ".join(remedies)))
    return {
        "pending": pending,
        "current": current,
        "project": project,
        "warnings": ["%s: %s" % (target, warning) for warning in warnings],
    }


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


def history_table_name(value, engine_name):
    """``(schema, table)`` of the history table option; the schema is None on SQLite, ``public`` by default."""
    value = value or DEFAULT_HISTORY_TABLE
    parts = value.split(".")
    if len(parts) > (2 if engine_name == "postgresql" else 1) or not all(_IDENTIFIER.match(p) for p in parts):
        raise LifeboatError(
            "invalid history_table %r: use a table name of letters, digits and '_'%s" % (
                value, " optionally prefixed with a schema (schema.table)" if engine_name == "postgresql" else "")
        )
    if engine_name != "postgresql":
        return None, parts[0]
    return (parts[0], parts[1]) if len(parts) == 2 else ("public", parts[0])


def command_argv(command):
    """The updater command as argv: a list as given, a string split like a shell would (but run without one)."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise LifeboatError("cannot split command %r into arguments: %s" % (command, exc))
    elif isinstance(command, (list, tuple)):
        if any(item is None or isinstance(item, (dict, list, tuple)) for item in command):
            raise LifeboatError("command must be a list of strings, got %r" % (command,))
        argv = [str(item) for item in command]
    else:
        raise LifeboatError("command must be a string or a list of strings, got %r" % (command,))
    if not argv or not argv[0]:
        raise LifeboatError("command is empty; give the updater to run, for example [alembic, upgrade, head]")
    return argv


def pg_database_url(params, dbname):
    """A libpq connection URI without password (the password is in the passfile)."""
    user = params.get("login_user") or "postgres"
    port = params.get("login_port") or 5432
    query = {"sslmode": params.get("ssl_mode") or "prefer"}
    host = params.get("login_host") or ""
    if not host and params.get("login_unix_socket"):
        query["host"] = params["login_unix_socket"]
    if ":" in host:
        host = "[%s]" % host
    if params.get("ca_cert"):
        query["sslrootcert"] = params["ca_cert"]
    return "postgresql://%s@%s:%s/%s?%s" % (
        quote(user, safe=""), host, port, quote(dbname, safe=""), urlencode(query))


def pg_option_value(value):
    """``value`` escaped for one ``-c name=value`` of PGOPTIONS (spaces and backslashes)."""
    return re.sub(r"([\\\s])", r"\\\1", value)


def _tail(data, secret):
    text = "\n".join(data.decode("utf-8", errors="replace").rstrip().splitlines()[-STDERR_LINES:])
    return text.replace(secret, "********") if secret else text


# --- the engines ----------------------------------------------------------------------------------

class _Postgres:
    """Migrations on one PostgreSQL database, as ``role`` (by default the database's owner)."""

    def __init__(self, params, dbname, history_table, role):
        if not HAS_PSYCOPG:
            raise LifeboatError("the Python library psycopg (version 3) is required: pip install 'psycopg[binary]'")
        self.params = params
        self.dbname = dbname
        self.label = "database %s" % dbname
        self.schema, self.table = history_table_name(history_table, "postgresql")
        self.history_sql = sql.Identifier(self.schema, self.table)
        self.requested_role = role
        self.role = None
        self.server = PostgresServer(params)
        self.conn = None

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
            raise _Failed(migration, "%s%s: %s" % (self.label, where, first_line(exc))) from None
        return seconds

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.server.close()

    @contextlib.contextmanager
    def command_env(self):
        """The updater's environment: libpq variables and the password as ``PgTools.credentials`` hands it to a
        child (a 0600 passfile in the environment's private directory), nowhere else."""
        tools = PgTools(self.server, self.params, private_tmp(self.params))
        env = tools.child_env()
        options = (env.get("PGOPTIONS", "") + " -c role=" + pg_option_value(self.role)).strip()
        env.update(PGDATABASE=self.dbname, PGOPTIONS=options, LIFEBOAT_ENGINE="postgresql",
                   LIFEBOAT_DATABASE=self.dbname, LIFEBOAT_ROLE=self.role,
                   DATABASE_URL=pg_database_url(self.params, self.dbname))
        with tools.credentials(env) as env:
            yield env


class _Failed(Exception):
    def __init__(self, migration, detail):
        super().__init__(detail)
        self.migration = migration
        self.detail = detail


class _Sqlite:
    """Migrations on one SQLite file: ``BEGIN IMMEDIATE`` per migration, statements one by one."""

    def __init__(self, path, history_table):
        self.path = path
        self.label = "SQLite database %s" % path
        _schema, self.table = history_table_name(history_table, "sqlite")
        self.quoted = '"%s"' % self.table
        self.conn = None
        self.role = None

    def open(self, read_only=False):
        SqliteEngine({}).check_target(self.path)
        self.conn = sqlite.connect_existing(self.path, timeout=SQLITE_BUSY_SECONDS)

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
            raise _Failed(migration, "%s%s: %s" % (self.label, where, exc)) from None
        return seconds

    def close(self):
        if self.conn is not None:
            self.conn.close()

    @contextlib.contextmanager
    def command_env(self):
        env = dict(os.environ, LIFEBOAT_ENGINE="sqlite", LIFEBOAT_DATABASE=self.path, LIFEBOAT_SQLITE_PATH=self.path,
                   DATABASE_URL="sqlite:///" + self.path)
        yield env


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


def _open(engine_name, params, target, history_table, role):
    if engine_name == "postgresql":
        return _Postgres(params, target, history_table, role)
    if engine_name != "sqlite":
        raise LifeboatError("unknown engine %r: use postgresql or sqlite" % (engine_name,))
    if role:
        raise LifeboatError("option role applies to PostgreSQL only; remove it for SQLite database %s" % target)
    return _Sqlite(target, history_table)


# --- the operation --------------------------------------------------------------------------------

def current_version(engine_name, params, target, history_table=None):
    """The highest migration version recorded in ``target``'s history table; None without one."""
    database = _open(engine_name, params, target, history_table, None)
    try:
        # Reading needs no SET ROLE: the connecting user reads the table, whoever owns it.
        database.open(read_only=True)
        history = database.history()
    finally:
        database.close()
    return max(history) if history else None


def update(engine_name, params, target, migrations=None, command=None, allow_drift=False, allow_newer=False,
           role=None, check_mode=False, history_table=None, chdir=None):
    """Bring ``target`` (a PostgreSQL database name or an SQLite path) to the project's structure.

    ``migrations`` is a directory of migration files, ``command`` the application's own updater (argv list or
    string); exactly one of them. Returns the module result: ``changed``, ``applied``, ``pending``,
    ``version_before``, ``version_after``, ``diff``, ``warnings`` and more (see the module's RETURN).
    """
    if (migrations is None) == (command is None):
        raise LifeboatError("give either migrations (a directory of SQL files) or command (the app's updater)")
    started = time.monotonic()
    # Files first: a malformed directory fails before anything connects.
    files = scan(migrations) if migrations is not None else None
    argv = command_argv(command) if command is not None else None
    database = _open(engine_name, params, target, history_table, role)
    try:
        database.open()
        if files is not None:
            result = _migrate(database, files, allow_drift, allow_newer, check_mode)
        else:
            result = _command(database, argv, chdir, params.get("login_password"), check_mode)
    finally:
        database.close()
    result["role"] = database.role
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def _migrate(database, files, allow_drift, allow_newer, check_mode):
    lock = contextlib.nullcontext() if check_mode else database.lock()
    with lock:
        history = database.history()
        steps = plan(files, history or {}, allow_drift, allow_newer, database.label)
        pending = steps["pending"]
        # Parse every pending file before the first one runs: a malformed V3 must not leave V2 alone applied.
        prepared = [(migration, database.prepare(migration)) for migration in pending]
        before = steps["current"]
        applied = []
        if not check_mode:
            create_history = history is None
            for migration, statements in prepared:
                try:
                    seconds = database.apply(migration, statements, create_history)
                except _Failed as exc:
                    raise LifeboatError(
                        "migration %s failed on %s; it was rolled back, none of it is applied or recorded%s. Fix the "
                        "file (or the database) and run again" % (
                            migration.name, exc.detail,
                            "; applied before it in this run: %s" % ", ".join(map(str, applied)) if applied else ""),
                    ) from None
                create_history = False
                if seconds is not None:
                    applied.append(migration.version)
    versions = sorted(set(history or {}) | {migration.version for migration in pending})
    after = versions[-1] if versions else None
    return {
        "changed": bool(pending),
        "applied": applied,
        "pending": [] if not check_mode else [migration.version for migration in pending],
        "version_before": before,
        "version_after": after,
        "project_version": steps["project"],
        "command_result": None,
        "diff": {"before": {"version": before}, "after": {"version": after}},
        "warnings": steps["warnings"],
    }


def _resolve(argv, chdir, env):
    if chdir and not os.path.isdir(chdir):
        raise LifeboatError("chdir %s does not exist or is not a directory" % chdir)
    program = argv[0]
    if "/" in program:
        path = os.path.join(chdir or os.getcwd(), program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return
        raise LifeboatError("command %s is not an executable file%s" % (program, " (in %s)" % chdir if chdir else ""))
    if not shutil.which(program, path=env.get("PATH", os.defpath)):
        raise LifeboatError("command %s not found in PATH (%s); give its full path" % (program, env.get("PATH", "")))


def _command(database, argv, chdir, password, check_mode):
    _resolve(argv, chdir, os.environ)
    before_history = database.history() or {}
    before = max(before_history) if before_history else None
    result = {
        "changed": True,
        "applied": [],
        "pending": [],
        "version_before": before,
        "version_after": before,
        "project_version": None,
        "command_result": None,
        # What the updater will do is unknown before it runs: no diff in check mode.
        "diff": None,
        "warnings": [],
    }
    if check_mode:
        return result
    with database.lock(), database.command_env() as env:
        started = time.monotonic()
        try:
            done = process.run(argv, env=env, cwd=chdir, stdin=subprocess.DEVNULL, capture_output=True,
                               check=False)
        except OSError as exc:
            raise LifeboatError("cannot run command %s on %s: %s" % (argv[0], database.label, exc.strerror or exc))
        seconds = round(time.monotonic() - started, 3)
        if done.returncode != 0:
            raise LifeboatError("command %s failed on %s (exit %d):\n%s" % (
                argv[0], database.label, done.returncode,
                _tail(done.stderr, password) or _tail(done.stdout, password)))
        after_history = database.history() or {}
    after = max(after_history) if after_history else None
    result.update(
        applied=sorted(set(after_history) - set(before_history)),
        version_after=after,
        command_result={"rc": done.returncode, "stdout": _tail(done.stdout, password),
                        "stderr": _tail(done.stderr, password), "duration": seconds},
        diff={"before": {"version": before}, "after": {"version": after}},
    )
    return result


UPDATE_KEYS = ("migrations", "command", "chdir", "allow_drift", "allow_newer", "role", "history_table")


def update_options():
    """The options of an update: structure_update's own, and backup_restore's ``structure_update`` suboptions."""
    return dict(
        migrations=dict(type="path"),
        command=dict(type="raw"),
        chdir=dict(type="path"),
        allow_drift=dict(type="bool", default=False),
        allow_newer=dict(type="bool", default=False),
        role=dict(type="str"),
        history_table=dict(type="str", default=DEFAULT_HISTORY_TABLE),
    )


# For AnsibleModule and for dict suboptions alike.
UPDATE_CONSTRAINTS = dict(mutually_exclusive=[("migrations", "command")], required_one_of=[("migrations", "command")])


def update_environment(params, check_mode=False):
    """The module's operation: ``update`` on the environment's database, then on each linked project that has
    its own migrations directory (reported under ``projects``)."""
    env = Environment(params)
    try:
        result = update(env.engine.name, params, env.targets[MAIN], check_mode=check_mode,
                        **{key: params.get(key) for key in UPDATE_KEYS})
        result["projects"] = {}
        for name, migrations in env.migrations.items():
            options = {key: params.get(key) for key in UPDATE_KEYS}
            options.update(migrations=migrations, command=None, chdir=None)
            done = update(env.engine.name, env.engines[name].params, env.targets[name], check_mode=check_mode,
                          **options)
            result["changed"] = result["changed"] or done["changed"]
            result["warnings"] = result.get("warnings", []) + done.get("warnings", [])
            result["projects"][name] = {key: done.get(key) for key in
                                        ("changed", "applied", "pending", "version_before", "version_after")}
        return result
    finally:
        env.close()
