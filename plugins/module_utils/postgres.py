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
import shutil
import subprocess
import tempfile
import time
import traceback

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, remove_path

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
STDERR_LINES = 20
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


def first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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

    def connect(self, dbname=None):
        """A new autocommit connection to ``dbname`` (default ``login_db``); the caller closes it."""
        dbname = dbname or self._param("login_db", "postgres")
        kwargs = dict(_libpq_params(self.params), dbname=dbname, autocommit=True)
        if self._param("login_password"):
            kwargs["password"] = self.params["login_password"]
        try:
            return psycopg.connect(**kwargs)
        except psycopg.Error as exc:
            raise LifeboatError(self._connect_error(exc, dbname)) from None

    def _connect_error(self, exc, dbname):
        text = self._scrub(str(exc))
        detail = text.split(" failed: ", 1)[-1].splitlines()[0].replace("FATAL:  ", "")
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

    def _missing(self, name):
        return LifeboatError("database %s does not exist on the PostgreSQL server at %s" % (name, self._where()))

    def database_exists(self, name):
        return bool(self._rows("SELECT 1 FROM pg_database WHERE datname = %s", [name]))

    def role_exists(self, name):
        return bool(self._rows("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]))

    def list_databases(self, like_pattern=None):
        """Names of the non-template databases, optionally matching a LIKE pattern (see ``like_escape``)."""
        rows = self._rows(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND (%s::text IS NULL OR datname LIKE %s)"
            " ORDER BY datname", [like_pattern, like_pattern],
        )
        return [row[0] for row in rows]

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
            options.append(sql.SQL("ENCODING {} LC_COLLATE {} LC_CTYPE {} CONNECTION LIMIT {} TABLESPACE {}").format(
                sql.Literal(props["encoding"]), sql.Literal(props["collate"]), sql.Literal(props["ctype"]),
                sql.Literal(props["connection_limit"]), sql.Identifier(props["tablespace"]),
            ))
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
        output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _TOOL_VERSION.search(output)
    return (match.group(1), int(match.group(2))) if match else None


def _major(version):
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


class PgTools:
    """``pg_dump`` and ``pg_restore`` for a server: the password reaches them only through a 0600 passfile."""

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
                "tools (Debian/Ubuntu: postgresql-client-%d, RHEL/PGDG: postgresql%d) or set pg_bin_dir"
                % (name, major, full, ", ".join(candidates) or "the usual places and PATH",
                   "; " + seen if seen else "", major, major, major)
            )
        self._tools[name] = usable[0][:2]
        return self._tools[name]

    def child_env(self):
        # Built on the inherited environment so that pg_dump sees what psycopg's libpq sees (PGSSLCERT, ...).
        env = dict(os.environ)
        env.pop("PGDATABASE", None)
        if self.params.get("login_password"):
            # An inherited PGPASSWORD would win over our passfile.
            env.pop("PGPASSWORD", None)
        for keyword, value in _libpq_params(self.params).items():
            env[_LIBPQ_ENV[keyword]] = str(value)
        return env

    @contextlib.contextmanager
    def passfile(self, env, connects):
        password = self.params.get("login_password")
        if not password or not connects:
            yield env
            return
        fd, path = tempfile.mkstemp(prefix="lifeboat-pgpass-", dir=self.tmp_dir)
        try:
            # mkstemp creates the file 0600, which libpq requires.
            with os.fdopen(fd, "w") as handle:
                handle.write("*:*:*:*:%s\n" % re.sub(r"([\\:])", r"\\\1", password))
            yield dict(env, PGPASSFILE=path)
        finally:
            remove_path(path)

    def _run(self, name, args, action, stdout=subprocess.DEVNULL, env_extra=None, connects=True):
        path = self.tool(name)[0]
        with self.passfile(dict(self.child_env(), **(env_extra or {})), connects) as env:
            try:
                done = subprocess.run([path] + args, env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                      stderr=subprocess.PIPE, check=False)
            except OSError as exc:
                raise LifeboatError("cannot run %s (%s) %s: %s" % (name, path, action, exc)) from None
        if done.returncode != 0:
            stderr = done.stderr.decode("utf-8", errors="replace").strip().splitlines()[-STDERR_LINES:]
            password = self.params.get("login_password")
            tail = "\n".join(stderr)
            raise LifeboatError("%s failed %s (exit %d):\n%s" % (
                name, action, done.returncode, tail.replace(password, "********") if password else tail))
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

    def dump_info(self, path):
        """The header of a custom-format dump (``pg_restore -l``): versions, format, number of tables."""
        if not os.path.isfile(path):
            raise LifeboatError("dump file %s does not exist" % path)
        done = self._run("pg_restore", ["--list", path], "reading dump %s" % path, stdout=subprocess.PIPE,
                         connects=False)
        info = {"created_at": None, "tables": 0}
        info.update(dict.fromkeys(_DUMP_INFO_KEYS.values()))
        for line in done.stdout.decode("utf-8", errors="replace").splitlines():
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

    def restore(self, dump_path, dbname, role):
        """Restore a dump into the (new, empty) database ``dbname``; every object is created by ``role``."""
        info = self.dump_info(dump_path)
        restore_path, restore_version = self.tool("pg_restore")
        if info["pg_dump_major"] and _major(restore_version) < info["pg_dump_major"]:
            raise LifeboatError(
                "pg_restore %s (%s) is older than the pg_dump %s that made %s and may not read it; install "
                "postgresql-client-%d or newer, or point pg_bin_dir at it"
                % (restore_version, restore_path, info["pg_dump_version"], dump_path, info["pg_dump_major"])
            )
        if not self.server.role_exists(role):
            raise LifeboatError("role %s does not exist on the PostgreSQL server; it must own the restored objects "
                                "of database %s" % (role, dbname))
        # A database-level default_transaction_read_only would make every statement of the restore fail.
        options = (os.environ.get("PGOPTIONS", "") + " -c default_transaction_read_only=off").strip()
        started = time.monotonic()
        self._run("pg_restore", [
            "--exit-on-error", "--no-owner", "--no-privileges", "--no-password", "--role=%s" % role,
            "--dbname=%s" % make_conninfo(dbname=dbname), dump_path,
        ], "restoring %s into database %s" % (dump_path, dbname), env_extra={"PGOPTIONS": options})
        return dict(info, seconds=round(time.monotonic() - started, 3), pg_restore_version=restore_version)

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
