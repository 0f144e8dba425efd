# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL engine: connection options, checks and DDL with psycopg 3, data with pg_dump/pg_restore.

Needs PostgreSQL 13 or later (``DROP DATABASE ... WITH (FORCE)``). Importable without psycopg: check
``HAS_PSYCOPG`` and report ``PSYCOPG_IMPORT_ERROR``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import traceback
from urllib.parse import quote, urlencode

from ansible_collections.lifeboat.backup.plugins.module_utils import process
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, SetupError, remove_path

try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo
except ImportError:
    HAS_PSYCOPG = False
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_PSYCOPG = True
    PSYCOPG_IMPORT_ERROR = None

MAX_IDENTIFIER_BYTES = 63
SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]
CONNECT_TIMEOUT = 10
# How a custom-format dump (pg_dump -Fc) begins; the format's version (major, minor) follows.
PGDMP_MAGIC = b"PGDMP"
# Each version of the custom format and the first PostgreSQL major whose pg_dump writes it (pg_backup_archiver.h):
# a pg_restore reads the versions up to its own major's.
_DUMP_FORMATS = {(1, 14): 12, (1, 15): 16, (1, 16): 17}
_TOOL_VERSION = re.compile(r"\(PostgreSQL\)\s+((\d+)\S*)")
_LOCK_WAIT_TIMEOUT = re.compile(r"^\d+(us|ms|s|min|h|d)?$")
_DUMP_HEADER = re.compile(r";\s+(?:Archive created at (?P<created>.+)|(?P<key>[A-Za-z_ ]+):\s*(?P<value>.*))$")
_LIBPQ_ENV = {
    "host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
    "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME",
}
_PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin"}
# pg_dump's variable_is_guc_list_quote(): list settings whose elements are quoted one by one.
_LIST_SETTINGS = {
    "local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
    "temp_tablespaces", "unix_socket_directories",
}
_DUMP_INFO_KEYS = {
    "dbname": "dbname",
    "TOC Entries": "toc_entries",
    "Compression": "compression",
    "Dump Version": "archive_version",
    "Format": "format",
    "Dumped from database version": "server_version",
    "Dumped by pg_dump version": "pg_dump_version",
}
DEFAULT_TABLESPACE = "pg_default"
# pg_restore logs in as a short-lived role named RESTORE_ROLE_PREFIX + a hash of the environment + random hex.
RESTORE_ROLE_PREFIX = "lifeboat_restore_"
# Members of these read or write the server's files or run programs on it: as good as a superuser.
_SERVER_ACCESS_ROLES = ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"]
_TOC_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<entry>.*)$")
_IDENT = r'(?:"(?:[^"]|"")+"|[^\s";]+)'
_CREATE_EXTENSION = re.compile(r"^CREATE EXTENSION IF NOT EXISTS (?P<name>%s) WITH SCHEMA (?P<schema>%s);$"
                               % (_IDENT, _IDENT), re.MULTILINE)
_SUPERUSER_EXTENSION = re.compile(r'permission denied to create extension "([^"]+)"')
_HINTS = {
    "42501": "; connect as a superuser, or as a role with CREATEDB that is a member of the owning role",
    "55006": "; end those sessions first (terminate_sessions)",
    "42P04": "; drop it or choose another name",
}


def connection_argument_spec():
    """The connection options every PostgreSQL module accepts (a new dict: callers may update it)."""
    return dict(
        login_host=dict(type="str"),
        login_port=dict(type="int", default=5432),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", no_log=True),
        login_unix_socket=dict(type="str"),
        login_db=dict(type="str", default="postgres"),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="path"),
        pg_bin_dir=dict(type="path"),
    )


# For AnsibleModule(required_by=...) beside restore_argument_spec(): a password alone would be ignored.
RESTORE_REQUIRED_BY = {"restore_password": "restore_user"}


def restore_argument_spec():
    """Options of the modules that restore (doc fragment restore_privilege): the owner of the restored database, the
    login pg_restore uses, and the extensions login_user creates first."""
    return dict(
        owner=dict(type="str"),
        restore_user=dict(type="str"),
        restore_password=dict(type="str", no_log=True),
        extensions=dict(type="list", elements="str", default=[]),
    )


def restore_role_prefix(environment, database):
    """The names of an environment's short-lived restore roles start with this (the hash keeps it short). The
    database counts too: two catalogs on one server may each have an environment of the same name."""
    key = "%s\0%s" % (environment, database)
    return "%s%s_" % (RESTORE_ROLE_PREFIX, hashlib.sha256(key.encode("utf-8")).hexdigest()[:8])


def derived_name(base, suffix):
    """``base + suffix``, or, beyond PostgreSQL's 63 bytes, a truncated base, a hash of the base and the suffix."""
    name = base + suffix
    if len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES:
        return name
    tag = "_" + hashlib.sha256(base.encode("utf-8")).hexdigest()[:8]
    room = MAX_IDENTIFIER_BYTES - len((tag + suffix).encode("utf-8"))
    if room < 1:
        raise LifeboatError("suffix %r is too long for a PostgreSQL name" % suffix)
    head = base.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return head + tag + suffix


def like_escape(text):
    """``text`` as a literal prefix/part of a LIKE pattern ('_' and '%' are wildcards otherwise)."""
    return re.sub(r"([\\_%])", r"\\\1", text)


def _check_identifier(name, what):
    if not isinstance(name, str) or not name or "\x00" in name:
        raise LifeboatError("invalid %s name %r" % (what, name))
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        # PostgreSQL would silently truncate it and act on another name.
        raise LifeboatError("%s name %r is longer than PostgreSQL's %d bytes; choose a shorter name"
                            % (what, name, MAX_IDENTIFIER_BYTES))
    return name


def _unquote(identifier):
    """An identifier as pg_dump writes it (quoted when needed), unquoted."""
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def _split_list_setting(value):
    """Elements of a list setting as stored in pg_db_role_setting (pg_dump's SplitGUCList)."""
    items, pos = [], 0
    while pos < len(value):
        while pos < len(value) and value[pos].isspace():
            pos += 1
        if pos < len(value) and value[pos] == '"':
            end, item = pos + 1, []
            while end < len(value):
                if value[end] == '"':
                    if value[end + 1:end + 2] == '"':
                        item.append('"')
                        end += 2
                        continue
                    break
                item.append(value[end])
                end += 1
            items.append("".join(item))
            pos = value.find(",", end)
        else:
            comma = value.find(",", pos)
            items.append((value[pos:] if comma < 0 else value[pos:comma]).strip())
            pos = comma
        if pos < 0:
            break
        pos += 1
    return [item for item in items if item]


def _setting_value(key, value):
    if key.lower() in _LIST_SETTINGS:
        return sql.SQL(", ").join(sql.Literal(item) for item in _split_list_setting(value))
    return sql.Literal(value)


def _libpq_params(params):
    """libpq keywords for the connection options, without database and password."""
    keywords = {
        "user": params.get("login_user") or "postgres",
        "port": params.get("login_port") or 5432,
        "sslmode": params.get("ssl_mode") or "prefer",
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "lifeboat",
    }
    # Without login_host: the unix socket, libpq's default one if login_unix_socket is not set either.
    host = params.get("login_host") or params.get("login_unix_socket")
    if host:
        keywords["host"] = host
    if params.get("ca_cert"):
        keywords["sslrootcert"] = params["ca_cert"]
    return keywords


def database_url(params, dbname):
    """The connection options as a libpq URI for ``dbname`` (an application's DATABASE_URL), without the password:
    the child reads it from the passfile of ``PgTools.credentials``."""
    keywords = _libpq_params(params)
    query = {key: keywords[key] for key in ("sslmode", "sslrootcert") if key in keywords}
    host = keywords.get("host", "")
    if host.startswith("/"):
        # A unix socket directory cannot be the URI's host part.
        query["host"], host = host, ""
    elif ":" in host:
        host = "[%s]" % host
    return "postgresql://%s@%s:%s/%s?%s" % (
        quote(keywords["user"], safe=""), host, keywords["port"], quote(dbname, safe=""), urlencode(query))


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _failure_detail(text):
    """The server's reason in a libpq connection error."""
    return text.split(" failed: ", 1)[-1].splitlines()[0].replace("FATAL:  ", "")


class PostgresServer:
    """A PostgreSQL server reached with Lifeboat's connection options; DDL runs on ``login_db``."""

    def __init__(self, params):
        if not HAS_PSYCOPG:
            raise LifeboatError("the Python library psycopg (version 3) is required: pip install 'psycopg[binary]'")
        self.params = params
        self._conn = None
        self._version = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _param(self, key, default=None):
        value = self.params.get(key)
        return default if value is None or value == "" else value

    @property
    def user(self):
        return self._param("login_user", "postgres")

    def _where(self):
        port = self._param("login_port", 5432)
        if self._param("login_host"):
            return "%s port %s" % (self.params["login_host"], port)
        if self._param("login_unix_socket"):
            return "unix socket directory %s port %s" % (self.params["login_unix_socket"], port)
        return "the default unix socket port %s" % port

    def _scrub(self, text):
        password = self._param("login_password")
        return text.replace(password, "********") if password else text

    def connect(self, dbname=None, catalog_only=True):
        """A new autocommit connection to ``dbname`` (default ``login_db``); the caller closes it.

        With ``catalog_only`` the session looks names up in pg_catalog alone, whatever the database's settings say:
        a restored database's owner could otherwise slip in an operator or function that our queries then run
        with login_user's privileges (say an ``=`` on exactly the types we compare).
        """
        dbname = dbname or self._param("login_db", "postgres")
        kwargs = dict(_libpq_params(self.params), dbname=dbname, autocommit=True)
        if catalog_only:
            kwargs["options"] = (os.environ.get("PGOPTIONS", "") + " -c search_path=pg_catalog").strip()
        if self._param("login_password"):
            kwargs["password"] = self.params["login_password"]
        try:
            return psycopg.connect(**kwargs)
        except psycopg.Error as exc:
            raise LifeboatError(self._connect_error(exc, dbname)) from None

    def _connect_error(self, exc, dbname):
        text = self._scrub(str(exc))
        detail = _failure_detail(text)
        where = self._where()
        if 'database "%s" does not exist' % dbname in text:
            return "database %s does not exist on the PostgreSQL server at %s; check login_db" % (dbname, where)
        if "authentication failed" in text or "no password supplied" in text or "pg_hba.conf" in text:
            return (
                "authentication failed for user %s on the PostgreSQL server at %s (%s); check login_user, "
                "login_password and the server's pg_hba.conf" % (self.user, where, detail)
            )
        if re.search(r"refused|No such file|resolve host|translate host|timeout|unreachable|No route", text, re.I):
            return (
                "cannot reach the PostgreSQL server at %s (%s): is the server running and accepting connections there? "
                "Check login_host, login_port and login_unix_socket" % (where, detail)
            )
        return "cannot connect to the PostgreSQL server at %s as user %s (database %s): %s" % (
            where, self.user, dbname, detail)

    def _db(self):
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    @contextlib.contextmanager
    def sql_errors(self, action):
        """Turn a PostgreSQL error into an operator message naming ``action`` (what we did, on what)."""
        try:
            yield
        except psycopg.Error as exc:
            hint = _HINTS.get(getattr(exc, "sqlstate", None) or "", "")
            raise LifeboatError("%s failed: %s%s" % (action, self._scrub(first_line(exc)), hint)) from None

    def _rows(self, query, params=None, action="querying the server"):
        with self.sql_errors(action):
            return self._db().execute(query, params).fetchall()

    def _execute(self, statements, action, transaction=False):
        with self.sql_errors(action), self._db().transaction() if transaction else contextlib.nullcontext():
            for statement in statements:
                self._db().execute(statement)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def server_version(self):
        """``(major, full)``, e.g. ``(15, '15.18 (Debian 15.18-0+deb12u1)')``."""
        if self._version is None:
            full = self._rows("SHOW server_version")[0][0]
            self._version = (self._db().info.server_version // 10000, full)
        return self._version

    def data_directory(self):
        """The server's data directory, or None when this user may not read the setting."""
        try:
            rows = self._rows("SHOW data_directory", action="reading data_directory")
        except LifeboatError:
            return None
        return rows[0][0] if rows else None

    def _missing(self, name):
        return LifeboatError("database %s does not exist on the PostgreSQL server at %s" % (name, self._where()))

    def database_exists(self, name):
        return bool(self._rows("SELECT 1 FROM pg_database WHERE datname = %s", [name]))

    def role_exists(self, name):
        return bool(self._rows("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))

    def is_member(self, role, group):
        """Whether ``role`` is ``group`` or a member of it (so it can SET ROLE to it)."""
        return self._rows("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, group],
                          "checking whether role %s is a member of %s" % (role, group))[0][0]

    def superuser_powers(self, role):
        """What lets SQL run as ``role`` act as a superuser: being or becoming one, membership in a role that reads
        or writes the server's files or runs its programs, or (before PostgreSQL 16) CREATEROLE, which can grant
        itself those. Empty for an ordinary role."""
        action = "checking the privileges of role %s" % role
        if self._rows("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role], action)[0][0]:
            return ["a superuser"]
        rows = self._rows(
            "SELECT r.rolname, r.rolsuper FROM pg_roles r WHERE pg_has_role(%s, r.oid, 'MEMBER')"
            " AND (r.rolsuper OR r.rolname = ANY(%s) OR (r.rolcreaterole AND %s)) ORDER BY r.rolname",
            [role, _SERVER_ACCESS_ROLES, self.server_version()[0] < 16], action)
        powers = []
        for name, superuser in rows:
            via = "" if name == role else " through its membership in role %s" % name
            if name in _SERVER_ACCESS_ROLES:
                powers.append("a member of " + name)
            else:
                powers.append(("a superuser" if superuser else "CREATEROLE") + via)
        return powers

    def roles_like(self, prefix):
        return [row[0] for row in self._rows("SELECT rolname FROM pg_roles WHERE rolname LIKE %s ORDER BY 1",
                                             [like_escape(prefix) + "%"])]

    def create_login_role(self, name, password, member_of):
        """A login role without any power of its own, member of ``member_of``. Only a hash of the password is sent
        (the server may log the statement)."""
        action = "creating the restore role %s" % _check_identifier(name, "role")
        with self.sql_errors(action):
            verifier = self._db().pgconn.encrypt_password(password.encode(), name.encode()).decode()
        self._execute([
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
                    " PASSWORD {}").format(sql.Identifier(name), sql.Literal(verifier)),
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of), sql.Identifier(name)),
        ], action, transaction=True)

    def drop_role(self, name, reassign_to=None):
        """Drop role ``name`` with its privileges and, in every database, what it owns: given to ``reassign_to``
        first if set, else dropped. Each database's part is one transaction."""
        action = "dropping role %s" % name
        role = sql.Identifier(name)
        statements = [sql.SQL("DROP OWNED BY {}").format(role)]
        if reassign_to:
            statements.insert(0, sql.SQL("REASSIGN OWNED BY {} TO {}").format(role, sql.Identifier(reassign_to)))
        borrow, give_back = self._borrowed_membership(name, action)
        databases = self._rows(
            "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE s.refclassid = 'pg_authid'::regclass"
            " AND s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = %s)", [name], action)
        for (dbname,) in databases:
            with self.connect(dbname) as conn, self.sql_errors("%s (in database %s)" % (action, dbname)):
                with conn.transaction():
                    for statement in borrow + statements + give_back:
                        conn.execute(statement)
        # DROP OWNED here also revokes its privileges on shared objects (databases, tablespaces); DROP ROLE ends
        # a borrowed membership with the role.
        self._execute(borrow + statements + [sql.SQL("DROP ROLE {}").format(role)], action, transaction=True)

    def _borrowed_membership(self, name, action):
        """``(grants, revokes)`` to wrap REASSIGN OWNED and DROP OWNED in, which need the privileges of role
        ``name``. A login without them (a managed service's administrator: CREATEROLE, no superuser) is a member
        of ``name`` within each transaction only, so that no failure leaves the membership behind."""
        if self._rows("SELECT pg_has_role(current_user, %s, 'USAGE')", [name], action)[0][0]:
            return [], []
        role = sql.Identifier(name)
        # From PostgreSQL 16 the role's creator has ADMIN OPTION on it, without its privileges unless it grants
        # them to itself; before, CREATEROLE grants any role that is not a superuser.
        options = " WITH INHERIT TRUE, SET FALSE" if self.server_version()[0] >= 16 else ""
        return ([sql.SQL("GRANT {} TO CURRENT_USER" + options).format(role)],
                [sql.SQL("REVOKE {} FROM CURRENT_USER").format(role)])

    def available_extensions(self):
        return {row[0] for row in self._rows("SELECT name FROM pg_available_extensions")}

    def create_extensions(self, dbname, extensions, owner):
        """Create ``[(name, schema), ...]`` in ``dbname``; a missing schema is created owned by ``owner``."""
        with self.connect(dbname) as conn, self.sql_errors("creating extensions in database %s" % dbname):
            for name, schema in extensions:
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(owner)))
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                    sql.Identifier(name), sql.Identifier(schema)))

    def database_properties(self, name):
        """What a copy of database ``name`` must share with it: owner, locale, limits, settings, privileges."""
        major = self.server_version()[0]
        provider = sql.SQL("d.datlocprovider" if major >= 15 else "'c'")
        locale = sql.SQL("d.datlocale" if major >= 17 else "d.daticulocale" if major >= 15 else "NULL")
        rules = sql.SQL("d.daticurules" if major >= 16 else "NULL")
        rows = self._rows(
            sql.SQL(
                "SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,"
                " {provider}::text, {locale}, {rules}, d.datconnlimit, d.datallowconn, d.datistemplate, t.spcname,"
                " d.datacl::text[]"
                " FROM pg_database d JOIN pg_tablespace t ON t.oid = d.dattablespace WHERE d.datname = %s"
            ).format(provider=provider, locale=locale, rules=rules),
            [name], "reading the properties of database %s" % name,
        )
        if not rows:
            raise self._missing(name)
        row = rows[0]
        settings = self._rows(
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
            " LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = %s ORDER BY r.rolname NULLS FIRST", [name],
            "reading the settings of database %s" % name,
        )
        return {
            "owner": row[0],
            "encoding": row[1],
            "collate": row[2],
            "ctype": row[3],
            "locale_provider": _PROVIDERS.get(row[4], row[4]),
            "icu_locale": row[5],
            "icu_rules": row[6],
            "connection_limit": row[7],
            "allow_connections": row[8],
            "is_template": row[9],
            "tablespace": row[10],
            "acl": row[11],
            "settings": [(role, list(config)) for role, config in settings],
        }

    def database_size(self, name):
        """Size of database ``name`` on disk, in bytes."""
        rows = self._rows("SELECT pg_database_size(oid) FROM pg_database WHERE datname = %s", [name],
                          "measuring database %s" % name)
        if not rows:
            raise self._missing(name)
        return rows[0][0]

    def session_count(self, name):
        """Sessions on database ``name`` other than ours (autovacuum workers do not count: PostgreSQL ends them)."""
        return self._rows(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND backend_type <> 'autovacuum worker'", [name], "counting the sessions on database %s" % name,
        )[0][0]

    def terminate_sessions(self, name):
        """End the other sessions on database ``name``; returns how many ended."""
        # With a timeout (PostgreSQL 14+) the backends are gone when this returns.
        timeout = ", 5000" if self.server_version()[0] >= 14 else ""
        terminate = sql.SQL("pg_terminate_backend(pid%s)" % timeout)
        return self._rows(
            sql.SQL(
                "SELECT count(*) FROM (SELECT {terminate} AS ended FROM pg_stat_activity WHERE datname = %s"
                " AND pid <> pg_backend_pid() AND backend_type <> 'autovacuum worker') s WHERE ended"
            ).format(terminate=terminate),
            [name], "ending the sessions on database %s" % name,
        )[0][0]

    def set_allow_connections(self, name, allowed):
        self._execute(
            [sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allowed else "false"))],
            "%s connections to database %s" % ("allowing" if allowed else "refusing", name),
        )

    def create_database(self, name, owner=None, like=None):
        """Create ``name`` from template0; with ``like``, copy that database's owner (unless ``owner`` is given),
        encoding, locale, connection limit, tablespace, settings and privileges."""
        _check_identifier(name, "database")
        action = "creating database %s" % name
        options = [sql.SQL("TEMPLATE template0")]
        props = self.database_properties(like) if like else None
        owner = owner or (props and props["owner"])
        if owner:
            options.append(sql.SQL("OWNER {}").format(sql.Identifier(owner)))
        if props:
            options.append(sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {} CONNECTION LIMIT {}").format(
                sql.Literal(props["encoding"]), sql.Literal(props["collate"]), sql.Literal(props["ctype"]),
                sql.Literal(props["connection_limit"]),
            ))
            # Naming a tablespace needs CREATE on it, which a managed service's administrator lacks even on
            # pg_default: name it only when it is not template0's (pg_default), where the copy goes anyway.
            if props["tablespace"] != DEFAULT_TABLESPACE:
                options.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(props["tablespace"])))
            if self.server_version()[0] >= 15:
                options.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.Literal(props["locale_provider"])))
            if props["icu_locale"]:
                keyword = "BUILTIN_LOCALE" if props["locale_provider"] == "builtin" else "ICU_LOCALE"
                options.append(sql.SQL(keyword + " {}").format(sql.Literal(props["icu_locale"])))
            if props["icu_rules"]:
                options.append(sql.SQL("ICU_RULES {}").format(sql.Literal(props["icu_rules"])))
        self._execute([sql.SQL("CREATE DATABASE {} WITH {}").format(sql.Identifier(name), sql.SQL(" ").join(options))],
                      action)
        if not props:
            return
        statements = self._settings_statements(name, props["settings"])
        if props["acl"] is not None:
            statements += self._grant_statements(name, like, props["owner"], owner)
        try:
            self._execute(statements, action, transaction=True)
        except LifeboatError:
            # No half-made copy is left behind.
            self.drop_database(name)
            raise

    @staticmethod
    def _settings_statements(name, settings):
        statements = []
        for role, config in settings:
            target = sql.SQL("DATABASE {}").format(sql.Identifier(name))
            if role is not None:
                target = sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(name))
            for item in config:
                key, _sep, value = item.partition("=")
                statements.append(sql.SQL("ALTER {} SET {} = {}").format(
                    target, sql.Identifier(key), _setting_value(key, value)))
        return statements

    def _grant_statements(self, name, like, like_owner, owner):
        # Start from an empty ACL, then grant what ``like`` grants, its owner's privileges going to the new owner.
        # The grantor becomes the owner (as for any GRANT by a superuser or the owner): grants made by other
        # holders of a grant option are not kept apart.
        database = sql.Identifier(name)
        statements = [sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC, {}").format(database, sql.Identifier(owner))]
        grants = self._rows(
            "SELECT a.grantee = 0, pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable"
            " FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s", [like],
            "reading the privileges of database %s" % like,
        )
        for public, grantee, privilege, grantable in grants:
            grantee = owner if grantee == like_owner else grantee
            statements.append(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                sql.SQL(privilege), database, sql.SQL("PUBLIC") if public else sql.Identifier(grantee),
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            ))
        return statements

    def rename_databases(self, renames):
        """Rename ``[(old, new), ...]`` in one transaction: all of them or none."""
        statements = [
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(_check_identifier(new, "database")))
            for old, new in renames
        ]
        action = "renaming databases %s" % ", ".join("%s to %s" % pair for pair in renames)
        self._execute(statements, action, transaction=True)

    def drop_database(self, name):
        """Drop ``name``, ending its sessions; returns whether it existed."""
        if not self.database_exists(name):
            return False
        self._execute([sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))],
                      "dropping database %s" % name)
        return True


def _tool_version(path):
    """``(version, major)`` from ``path --version``, or None when it does not run."""
    try:
        output = process.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _TOOL_VERSION.search(output)
    return (match.group(1), int(match.group(2))) if match else None


def _toc_object(line, kind, object_kind=None):
    """The name in a ``pg_restore --list`` line for an object of ``kind`` without a schema (an EXTENSION, a
    SCHEMA, or with ``object_kind`` a COMMENT on one), else None."""
    entry = _TOC_ENTRY.match(line)
    prefix = "%s - %s" % (kind, object_kind + " " if object_kind else "")
    if not entry or not entry.group("entry").startswith(prefix):
        return None
    # The owner, if any, follows the name (extensions have none).
    rest = entry.group("entry")[len(prefix):]
    return rest.rsplit(" ", 1)[0] if " " in rest else rest


def _extension_hint(message):
    """What to do when pg_restore met an extension that only a superuser may create."""
    match = _SUPERUSER_EXTENSION.search(message)
    if not match:
        return ""
    return ("\nextension %s can only be created by a superuser: if you trust it, list it in the extensions option, "
            "and login_user creates it before the restore" % match.group(1))


def _major(version):
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


def _client_packages(major):
    return "Debian/Ubuntu: postgresql-client-%d, RHEL/PGDG: postgresql%d" % (major, major)


def _dump_format(path):
    """The custom format's version in the header of dump ``path``, e.g. ``(1, 16)``; None for another file."""
    size = len(PGDMP_MAGIC) + 2
    try:
        with open(path, "rb") as handle:
            head = handle.read(size)
    except OSError:
        return None
    return tuple(head[len(PGDMP_MAGIC):]) if len(head) == size and head.startswith(PGDMP_MAGIC) else None


def _format_major(dump_format):
    """The oldest PostgreSQL major whose pg_restore reads ``dump_format``: for a version newer than those known here,
    a major newer than theirs; None for an older one (any pg_restore found reads it)."""
    if dump_format in _DUMP_FORMATS:
        return _DUMP_FORMATS[dump_format]
    if dump_format and dump_format > max(_DUMP_FORMATS):
        return max(_DUMP_FORMATS.values()) + 1
    return None


class PgTools:
    """``pg_dump`` and ``pg_restore`` for a server: passwords reach them only through 0600 passfiles.

    ``tmp_dir`` is a function returning the environment's private directory for passfiles and list files.
    """

    def __init__(self, server, params, tmp_dir=None):
        self.server = server
        self.params = params
        self.tmp_dir = tmp_dir
        self._tools = {}

    def _candidates(self, name, major):
        if self.params.get("pg_bin_dir"):
            return [os.path.join(self.params["pg_bin_dir"], name)]
        paths = [
            "/usr/lib/postgresql/%d/bin/%s" % (major, name),
            "/usr/pgsql-%d/bin/%s" % (major, name),
            "/usr/local/pgsql/bin/%s" % name,
            shutil.which(name),
        ]
        newest_first = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/" + name) + glob.glob("/usr/pgsql-*/bin/" + name),
            key=lambda path: _major(re.sub(r"^\D+", "", path)) or 0, reverse=True,
        )
        candidates = []
        for path in paths + newest_first:
            if path and path not in candidates and os.access(path, os.X_OK):
                candidates.append(path)
        return candidates

    def tool(self, name):
        """``(path, version)`` of ``pg_dump`` or ``pg_restore``: the server's major version if found, else the
        newest that works (pg_dump cannot dump a newer server; pg_restore is checked against each dump)."""
        if name in self._tools:
            return self._tools[name]
        major, full = self.server.server_version()
        candidates = self._candidates(name, major)
        found = []
        for path in candidates:
            version = _tool_version(path)
            if version:
                found.append((path,) + version)
        usable = [item for item in found if name != "pg_dump" or item[2] >= major]
        usable.sort(key=lambda item: item[2] != major)
        if not usable:
            seen = "; ".join("%s is %s" % (path, version) for path, version, _major_found in found)
            raise LifeboatError(
                "%s for PostgreSQL %d (server %s) not found (looked at %s%s); install the PostgreSQL %d client "
                "tools (%s) or set pg_bin_dir"
                % (name, major, full, ", ".join(candidates) or "the usual places and PATH",
                   "; " + seen if seen else "", major, _client_packages(major))
            )
        self._tools[name] = usable[0][:2]
        return self._tools[name]

    def child_env(self):
        # Built on the inherited environment so that pg_dump sees what psycopg's libpq sees (PGSSLCERT, ...).
        child_env = dict(os.environ)
        child_env.pop("PGDATABASE", None)
        for keyword, value in _libpq_params(self.params).items():
            child_env[_LIBPQ_ENV[keyword]] = str(value)
        return child_env

    def _private_file(self, prefix, text):
        """A 0600 file holding ``text`` in the private directory; the caller removes it."""
        if self.tmp_dir is None:
            raise LifeboatError("internal error: no private directory for %s files (they never go to /tmp)" % prefix)
        fd, path = tempfile.mkstemp(prefix=prefix, dir=self.tmp_dir())
        # mkstemp creates the file 0600, which libpq requires of a passfile.
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return path

    @contextlib.contextmanager
    def credentials(self, child_env, user=None, password=None):
        """``child_env`` for a child that logs in as ``user`` with ``password`` (default: login_user, login_password).

        The password goes into a passfile; one a passfile cannot hold (a line break) into the child's PGPASSWORD
        instead, which only the child and root can read. Never into argv.
        """
        child_env = dict(child_env)
        if user is None:
            password = self.params.get("login_password")
        else:
            child_env["PGUSER"] = user
        if not password:
            yield child_env
            return
        # An inherited PGPASSWORD would win over our passfile.
        child_env.pop("PGPASSWORD", None)
        if "\n" in password or "\r" in password:
            yield dict(child_env, PGPASSWORD=password)
            return
        path = self._private_file("lifeboat-pgpass-", "*:*:*:*:%s\n" % re.sub(r"([\\:])", r"\\\1", password))
        try:
            yield dict(child_env, PGPASSFILE=path)
        finally:
            remove_path(path)

    @contextlib.contextmanager
    def list_file(self, lines):
        """A pg_restore ``--use-list`` file holding ``lines``."""
        path = self._private_file("lifeboat-toc-", "".join(line + "\n" for line in lines))
        try:
            yield path
        finally:
            remove_path(path)

    def _run(self, name, args, action, stdout=subprocess.DEVNULL, env_extra=None, connects=True, user=None,
             password=None):
        path = self.tool(name)[0]
        child_env = dict(self.child_env(), **(env_extra or {}))
        logged_in = self.credentials(child_env, user, password) if connects else contextlib.nullcontext(child_env)
        with logged_in as child_env:
            try:
                done = process.run([path] + args, env=child_env, stdin=subprocess.DEVNULL, stdout=stdout,
                                   stderr=subprocess.PIPE, check=False)
            except OSError as exc:
                raise LifeboatError("cannot run %s (%s) %s: %s" % (name, path, action, exc)) from None
        if done.returncode != 0:
            tail = process.tail(done.stderr, (self.params.get("login_password"), password))
            raise LifeboatError("%s failed %s (exit %d):\n%s" % (name, action, done.returncode, tail))
        return done

    def dump(self, dbname, dest_path, lock_wait_timeout="60s"):
        """Dump ``dbname`` in custom format, without owners and privileges, to ``dest_path``."""
        if not _LOCK_WAIT_TIMEOUT.match(str(lock_wait_timeout)):
            raise LifeboatError("invalid lock_wait_timeout %r: use a number with a unit, e.g. 60s or 2min"
                                % (lock_wait_timeout,))
        started = time.monotonic()
        try:
            self._run("pg_dump", [
                "--format=custom", "--no-owner", "--no-privileges", "--no-password",
                "--lock-wait-timeout=%s" % lock_wait_timeout, "--file=%s" % dest_path,
                "--dbname=%s" % make_conninfo(dbname=dbname),
            ], "dumping database %s to %s" % (dbname, dest_path))
        except LifeboatError:
            remove_path(dest_path)
            raise
        return {
            "path": dest_path,
            "size": os.path.getsize(dest_path),
            "seconds": round(time.monotonic() - started, 3),
            "pg_dump_version": self.tool("pg_dump")[1],
            "server_version": self.server.server_version()[1],
        }

    def toc(self, path):
        """The table of contents of a custom-format dump (``pg_restore --list``), as lines."""
        if not os.path.isfile(path):
            raise LifeboatError("dump file %s does not exist" % path)
        done = self._run("pg_restore", ["--list", path], "reading dump %s" % path, stdout=subprocess.PIPE,
                         connects=False)
        return done.stdout.decode("utf-8", errors="replace").splitlines()

    def dump_info(self, path, toc=None):
        """The header of a custom-format dump (``pg_restore -l``): versions, format, number of tables."""
        info = {"created_at": None, "tables": 0}
        info.update(dict.fromkeys(_DUMP_INFO_KEYS.values()))
        for line in self.toc(path) if toc is None else toc:
            header = _DUMP_HEADER.match(line)
            if header and header.group("created"):
                info["created_at"] = header.group("created").strip()
            elif header and header.group("key") in _DUMP_INFO_KEYS:
                info[_DUMP_INFO_KEYS[header.group("key")]] = header.group("value").strip()
            elif re.match(r"\d+; 1259 \d+ TABLE ", line):  # 1259 is pg_class; TABLE DATA entries have 0
                info["tables"] += 1
        if info["toc_entries"] is not None:
            info["toc_entries"] = int(info["toc_entries"])
        info["server_major"] = _major(info["server_version"])
        info["pg_dump_major"] = _major(info["pg_dump_version"])
        return info

    def readable(self, path):
        """``(toc, info)`` (``toc``, ``dump_info``) of a custom-format dump that this pg_restore reads. A dump of a
        newer pg_dump is refused with the client to install: by its format's version, which an older pg_restore
        cannot even list, then by the pg_dump version in the listing."""
        dump_format = _dump_format(path)
        needed = _format_major(dump_format)
        if needed:
            self._check_restore_major(needed, "a pg_dump of PostgreSQL %d or later (custom format %d.%d)"
                                      % (needed, dump_format[0], dump_format[1]))
        toc = self.toc(path)
        info = self.dump_info(path, toc)
        if info["pg_dump_major"]:
            self._check_restore_major(info["pg_dump_major"], "pg_dump %s (custom format %s)"
                                      % (info["pg_dump_version"], info["archive_version"]))
        return toc, info

    def _check_restore_major(self, needed, made_by):
        restore_path, restore_version = self.tool("pg_restore")
        if _major(restore_version) < needed:
            raise LifeboatError(
                "pg_restore %s (%s) cannot read a dump made by a newer pg_dump: this one was made by %s. Install "
                "the PostgreSQL %d client tools or newer where the module runs (%s) or set pg_bin_dir to their "
                "directory" % (restore_version, restore_path, made_by, needed, _client_packages(needed)))

    def restore(self, dump_path, dbname, role, listing=None):
        """Restore a dump into the (new, empty) database ``dbname``; every object is created by ``role``.

        No SQL of the dump runs with more privilege than ``role``: pg_restore logs in as restore_user or as a
        short-lived member of ``role``, never as login_user. Extensions allowed by the ``extensions`` option are
        created by login_user beforehand, and pg_restore skips them. ``listing``: ``readable(dump_path)`` when the
        caller has it already.
        """
        toc, info = listing or self.readable(dump_path)
        restore_version = self.tool("pg_restore")[1]
        self._check_owner(role, dbname)
        skipped = self._create_extensions(dump_path, toc, dbname, role)
        # A database-level default_transaction_read_only would make every statement of the restore fail.
        options = (os.environ.get("PGOPTIONS", "") + " -c default_transaction_read_only=off").strip()
        args = ["--exit-on-error", "--no-owner", "--no-privileges", "--no-password", "--role=%s" % role,
                "--dbname=%s" % make_conninfo(dbname=dbname), dump_path]
        started = time.monotonic()
        # Without skipped entries pg_restore needs no list file.
        use_list = self.list_file(";" + line if line in skipped else line for line in toc) if skipped else None
        with self._restore_login(dbname, role) as (user, password), use_list or contextlib.nullcontext() as path:
            try:
                self._run("pg_restore", args + ["--use-list=%s" % path] if path else args,
                          "restoring %s into database %s" % (dump_path, dbname), env_extra={"PGOPTIONS": options},
                          user=user, password=password)
            except LifeboatError as exc:
                raise LifeboatError(str(exc) + _extension_hint(str(exc))) from None
        return dict(info, seconds=round(time.monotonic() - started, 3), pg_restore_version=restore_version)

    def _check_owner(self, role, dbname):
        if not self.server.role_exists(role):
            raise SetupError("role %s does not exist on the PostgreSQL server; it must own the restored objects "
                             "of database %s" % (role, dbname))
        powers = self.server.superuser_powers(role)
        if powers:
            raise SetupError(
                "the restored database %s would be owned by role %s, which is %s; the archive's SQL runs with the "
                "owner's privileges, so it could act as a superuser (run programs, read or write the server's "
                "files). Set owner to an ordinary role (the application's own)" % (dbname, role, ", ".join(powers)))

    @contextlib.contextmanager
    def _restore_login(self, dbname, owner):
        """``(user, password)`` for pg_restore: restore_user, or a new role that is a member of ``owner`` and
        nothing more, dropped afterwards (or, if this process is killed, by the next restore of the environment:
        callers hold the environment's lock)."""
        prefix = restore_role_prefix(self.params["environment"], self.params.get("database"))
        for leftover in self.server.roles_like(prefix):
            self.server.drop_role(leftover)
        if self.params.get("restore_user"):
            self._check_restore_user(self.params["restore_user"], owner)
            yield self.params["restore_user"], self.params.get("restore_password")
            return
        name, password = prefix + secrets.token_hex(4), secrets.token_urlsafe(32)
        self.server.create_login_role(name, password, owner)
        try:
            self._probe_login(dbname, name, password, owner)
            yield name, password
        except BaseException:
            # The first error is the one to report; the next run drops a role this one could not.
            with contextlib.suppress(LifeboatError):
                self.server.drop_role(name, reassign_to=owner)
            raise
        # What the archive made after RESET ROLE belongs to the owner, as the rest.
        self.server.drop_role(name, reassign_to=owner)

    def _check_restore_user(self, user, owner):
        if not self.server.role_exists(user):
            raise SetupError("restore_user %s does not exist on the PostgreSQL server" % user)
        powers = self.server.superuser_powers(user)
        if powers:
            raise SetupError("restore_user %s is %s, so the archive's SQL could act as a superuser; set "
                             "restore_user to the login of the owner %s, or leave it unset" % (
                                 user, ", ".join(powers), owner))
        if not self.server.is_member(user, owner):
            raise SetupError("restore_user %s cannot create objects as role %s, which owns the restored "
                             "database: use that role's login, or GRANT %s TO %s" % (user, owner, owner, user))

    def _probe_login(self, dbname, user, password, owner):
        """Fail before pg_restore, with how to fix it, where the server does not let the restore role log in."""
        try:
            psycopg.connect(**dict(_libpq_params(self.params), user=user, password=password, dbname=dbname)).close()
        except psycopg.Error as exc:
            if self.params.get("login_host"):
                line = "host all +%s <address of this node> scram-sha-256" % owner
            else:
                line = "local all +%s scram-sha-256" % owner
            raise SetupError(
                "pg_restore runs as a short-lived role that is not a superuser (%s, a member of %s) so that the "
                "archive's SQL cannot act as one, but the PostgreSQL server at %s does not let it log in (%s). "
                "Allow password logins for the members of role %s in pg_hba.conf, before the lines that would refuse "
                "them, e.g. '%s', and reload the server; or set restore_user and restore_password to a login of "
                "role %s" % (user, owner, self.server._where(), _failure_detail(str(exc)), owner, line, owner)
            ) from None

    def _create_extensions(self, dump_path, toc, dbname, owner):
        """As login_user, create the dump's extensions that the ``extensions`` option allows and the server has;
        returns the TOC lines pg_restore must then skip (those extensions, their comments, and the schemas made
        for them)."""
        allowed = set(self.params.get("extensions") or []) & self.server.available_extensions()
        wanted = [line for line in toc if _toc_object(line, "EXTENSION") in allowed]
        if not wanted:
            return set()
        with self.list_file(wanted) as path:
            script = self._run("pg_restore", ["--use-list=%s" % path, "--file=-", dump_path],
                               "reading the extensions of dump %s" % dump_path, stdout=subprocess.PIPE,
                               connects=False).stdout.decode("utf-8", errors="replace")
        # Only the names are taken from the dump, never its SQL.
        extensions = [(_unquote(m.group("name")), _unquote(m.group("schema")))
                      for m in _CREATE_EXTENSION.finditer(script) if _unquote(m.group("name")) in allowed]
        self.server.create_extensions(dbname, extensions, owner)
        names = {name for name, _schema in extensions}
        schemas = {schema for _name, schema in extensions}
        return {line for line in toc if _toc_object(line, "EXTENSION") in names
                or _toc_object(line, "COMMENT", "EXTENSION") in names or _toc_object(line, "SCHEMA") in schemas}

    def check_database(self, dbname):
        """A cheap look at a restored database: it accepts connections; its tables, owners and size."""
        with self.server.connect(dbname) as conn, self.server.sql_errors("checking database %s" % dbname):
            tables, owners = conn.execute(
                "SELECT count(*), coalesce(array_agg(DISTINCT pg_get_userbyid(c.relowner)), '{}')"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
                " AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass"
                " AND e.objid = c.oid AND e.deptype = 'e')"
            ).fetchone()
        return {"database": dbname, "tables": tables, "table_owners": sorted(owners),
                "size": self.server.database_size(dbname)}

    def read_through(self, path):
        """Read a custom-format dump to its end and restore nothing: its table of contents (``--list``), then
        every data block into a script sent to /dev/null. A truncated or damaged dump fails here, not halfway
        through a restore (its header and table of contents alone can be intact)."""
        self.readable(path)
        self._run("pg_restore", ["--file=/dev/null", path], "reading dump %s to its end" % path, connects=False)
