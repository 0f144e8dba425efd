# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL engine against real clusters (see tests/integration/pgcluster.py)."""

from __future__ import annotations

import os
import secrets
import socket
import stat

import psycopg
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from psycopg import sql

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import (
    PgTools,
    PostgresServer,
    connection_argument_spec,
    derived_name,
    like_escape,
)

pytestmark = pytest.mark.postgres


def unique(prefix):
    return "%s_%s" % (prefix, secrets.token_hex(4))


@pytest.fixture
def server(pg_cluster):
    with PostgresServer(pg_cluster.conn_params()) as srv:
        yield srv


@pytest.fixture
def roles(pg_cluster):
    """A NOLOGIN owner role and an app role that logs in with a password and is a member of the owner role."""
    owner, app, password = unique("lb_owner"), unique("lb_app"), secrets.token_hex(8)
    pg_cluster.psql("CREATE ROLE %s NOLOGIN; CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT %s TO %s"
                    % (owner, app, password, owner, app))
    return {"owner": owner, "app": app, "app_password": password}


def wrapper_dir(tmp_path, bin_dir, fake_versions=None):
    """A pg_bin_dir whose pg_dump/pg_restore log their argv and environment, then run the real tool."""
    directory = tmp_path / "bin"
    directory.mkdir()
    log = tmp_path / "calls.log"
    for tool in ("pg_dump", "pg_restore"):
        fake = ""
        if tool in (fake_versions or {}):
            fake = 'if [ "$1" = --version ]; then echo "%s (PostgreSQL) %s"; exit 0; fi\n' % (tool, fake_versions[tool])
        script = directory / tool
        script.write_text(
            "#!/bin/sh\n"
            "{ printf 'ARGV'; for a in \"$0\" \"$@\"; do printf ' %%s' \"$a\"; done; printf '\\n'\n"
            "  env | sed 's/^/ENV /'\n"
            "  [ -n \"$PGPASSFILE\" ] &&\n"
            "    printf 'PASSFILE %%s %%s\\n' \"$PGPASSFILE\" \"$(stat -c %%a \"$PGPASSFILE\")\"\n"
            "} >> %s\n%sexec %s \"$@\"\n" % (log, fake, os.path.join(bin_dir, tool))
        )
        script.chmod(0o755)
    return str(directory), log


def new_tools(server, params, tmp_path):
    """PgTools as an environment's engine has them: passfiles and list files in a private directory."""
    return PgTools(server, dict(params, environment="lb_tools"), tmp_dir=lambda: str(tmp_path))


def table_counts(cluster, db):
    return cluster.psql(
        "SELECT (SELECT count(*) FROM items), (SELECT count(*) FROM notes), (SELECT sum(qty) FROM items)", db=db)[0]


def test_connection_argument_spec():
    spec = connection_argument_spec()
    assert sorted(spec) == sorted(["login_host", "login_port", "login_user", "login_password", "login_unix_socket",
                                   "login_db", "ssl_mode", "ca_cert", "pg_bin_dir"])
    assert spec["login_password"]["no_log"] is True
    assert not any("aliases" in option for option in spec.values())
    spec["extra"] = {}
    assert "extra" not in connection_argument_spec()
    result = ArgumentSpecValidator(connection_argument_spec()).validate({"login_password": "s3cret", "ssl_mode": "x"})
    assert result.validated_parameters["login_port"] == 5432 and result.validated_parameters["login_db"] == "postgres"
    assert [message for message in result.error_messages if "ssl_mode" in message]


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "socket"])
def test_server_version(pg_cluster, tcp):
    with PostgresServer(pg_cluster.conn_params(tcp=tcp)) as srv:
        major, full = srv.server_version()
    assert major == pg_cluster.major
    assert full == pg_cluster.psql("SHOW server_version")[0][0]


def test_clusters_from_the_factory_are_separate(pg_cluster, pg_cluster_factory):
    first, second = pg_cluster_factory(2)
    assert len({pg_cluster.port, first.port, second.port}) == 3
    assert len({pg_cluster.socket_dir, first.socket_dir, second.socket_dir}) == 3
    name = unique("lb_node")
    first.psql("CREATE DATABASE %s" % name)
    assert PostgresServer(first.conn_params()).database_exists(name)
    assert not PostgresServer(second.conn_params()).database_exists(name)


# Each case: how the source database is made, extra statements on it.
LIKE_CASES = {
    "latin1-libc": (
        "ENCODING 'LATIN1' LOCALE 'C' CONNECTION LIMIT 7",
        [
            "ALTER DATABASE {db} SET search_path = \"$user\", public, 'odd, name'",
            "ALTER DATABASE {db} SET work_mem = '8MB'",
            "ALTER DATABASE {db} SET lifeboat.tenant = 'a b'",
            "ALTER ROLE {app} IN DATABASE {db} SET statement_timeout = '5s'",
            "REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC",
            "GRANT CONNECT, CREATE ON DATABASE {db} TO {app}",
        ],
    ),
    "icu": (
        "LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C.UTF-8'",
        [
            "ALTER DATABASE {db} SET default_transaction_isolation = 'repeatable read'",
            "GRANT CONNECT ON DATABASE {db} TO {app} WITH GRANT OPTION",
        ],
    ),
    "defaults": ("", []),
}


@pytest.mark.parametrize("case", sorted(LIKE_CASES))
def test_create_database_like_copies_properties(pg_cluster, server, roles, case):
    options, statements = LIKE_CASES[case]
    source, copy = unique("lb_src"), unique("lb_copy")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s TEMPLATE template0 %s" % (source, roles["owner"], options))
    for statement in statements:
        pg_cluster.psql(statement.format(db=source, app=roles["app"]))

    server.create_database(copy, like=source)

    expected = server.database_properties(source)
    got = server.database_properties(copy)
    assert got["owner"] == roles["owner"]
    assert sorted(got.pop("acl") or []) == sorted(expected.pop("acl") or [])
    assert got == expected
    # The copy behaves like the source for the app: it may connect and gets the same settings.
    show = "SELECT current_setting('search_path'), current_setting('work_mem'), current_setting('statement_timeout')"
    with pg_cluster.connect(source, tcp=True, user=roles["app"], password=roles["app_password"]) as conn:
        source_settings = conn.execute(show).fetchone()
    with pg_cluster.connect(copy, tcp=True, user=roles["app"], password=roles["app_password"]) as conn:
        assert conn.execute(show).fetchone() == source_settings


def test_create_database_privileges_take_effect(pg_cluster, server, roles):
    source, copy, outsider = unique("lb_src"), unique("lb_copy"), unique("lb_outsider")
    pg_cluster.psql("CREATE ROLE %s LOGIN PASSWORD 'outsider'" % outsider)
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (source, roles["owner"]))
    pg_cluster.psql("REVOKE CONNECT ON DATABASE %s FROM PUBLIC" % source)
    pg_cluster.psql("GRANT CONNECT, CREATE ON DATABASE %s TO %s" % (source, roles["app"]))

    server.create_database(copy, like=source)

    with pg_cluster.connect(copy, tcp=True, user=roles["app"], password=roles["app_password"]) as conn:
        conn.execute("CREATE SCHEMA app_schema")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        pg_cluster.connect(copy, tcp=True, user=outsider, password="outsider")


def test_create_database_with_other_owner_moves_owner_privileges(pg_cluster, server, roles):
    source, copy, other = unique("lb_src"), unique("lb_copy"), unique("lb_other")
    pg_cluster.psql("CREATE ROLE %s NOLOGIN" % other)
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (source, roles["owner"]))
    pg_cluster.psql("REVOKE TEMPORARY ON DATABASE %s FROM PUBLIC" % source)

    server.create_database(copy, owner=other, like=source)

    props = server.database_properties(copy)
    assert props["owner"] == other
    assert sorted(props["acl"]) == sorted(["=c/%s" % other, "%s=CTc/%s" % (other, other)])


@pytest.mark.parametrize("name, message", [
    ("x" * 64, "longer than PostgreSQL's 63 bytes"),
    ("postgres", "already exists; drop it or choose another name"),
])
def test_create_database_refused(server, name, message):
    with pytest.raises(LifeboatError, match=message):
        server.create_database(name)


def test_create_database_needs_privilege(pg_cluster):
    weak = unique("lb_weak")
    pg_cluster.psql("CREATE ROLE %s LOGIN PASSWORD 'weak'" % weak)
    params = dict(pg_cluster.conn_params(), login_user=weak, login_password="weak")
    with PostgresServer(params) as srv, pytest.raises(LifeboatError) as caught:
        srv.create_database(unique("lb_denied"))
    assert "permission denied to create database" in str(caught.value)
    assert "connect as a superuser" in str(caught.value)


def test_rename_databases_in_one_transaction(pg_cluster, server):
    names = [unique("lb_ren") for dummy in range(4)]
    for name in names[:2]:
        pg_cluster.psql("CREATE DATABASE %s" % name)
    # The swap of the restore: target -> previous, staging -> target, atomically.
    server.rename_databases([(names[0], names[2]), (names[1], names[0]), (names[2], names[3])])
    assert [server.database_exists(name) for name in names] == [True, False, False, True]


# PostgreSQL waits 5 s for the other sessions to go before it refuses to rename a database in use.
@pytest.mark.parametrize("failure", ["missing", "taken", pytest.param("in-use", marks=pytest.mark.slow), "too-long"])
def test_failed_rename_undoes_the_earlier_ones(pg_cluster, server, failure):
    first, first_new, second, taken = (unique("lb_ren") for dummy in range(4))
    for name in (first, second, taken):
        pg_cluster.psql("CREATE DATABASE %s" % name)
    second_pair = {
        "missing": (unique("lb_missing"), unique("lb_new")),
        "taken": (second, taken),
        "in-use": (second, unique("lb_new")),
        "too-long": (second, "y" * 64),
    }[failure]
    session = pg_cluster.connect(second) if failure == "in-use" else None
    try:
        with pytest.raises(LifeboatError, match="renaming databases|longer than") as caught:
            server.rename_databases([(first, first_new), second_pair])
    finally:
        if session:
            session.close()
    if failure == "in-use":
        assert "being accessed by other users" in str(caught.value)
    assert server.database_exists(first) and not server.database_exists(first_new)


def test_sessions_counted_and_terminated(pg_cluster, server, roles):
    name = unique("lb_sess")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (name, roles["owner"]))
    held = [pg_cluster.connect(name), pg_cluster.connect(name, tcp=True, user=roles["app"],
                                                         password=roles["app_password"])]
    try:
        assert server.session_count(name) == 2
        server.set_allow_connections(name, False)
        with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
            pg_cluster.connect(name)
        assert server.terminate_sessions(name) == 2
        assert server.session_count(name) == 0
        for conn in held:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT 1")
        assert server.terminate_sessions(name) == 0
    finally:
        for conn in held:
            conn.close()
    server.set_allow_connections(name, True)
    pg_cluster.connect(name).close()


def test_session_count_ignores_our_own_session(pg_cluster):
    name = unique("lb_own")
    pg_cluster.psql("CREATE DATABASE %s" % name)
    with PostgresServer(dict(pg_cluster.conn_params(), login_db=name)) as srv:
        assert srv.session_count(name) == 0
        with pg_cluster.connect(name):
            assert srv.session_count(name) == 1


def test_drop_database(pg_cluster, server):
    name = unique("lb_drop")
    pg_cluster.psql("CREATE DATABASE %s" % name)
    with pg_cluster.connect(name):
        assert server.drop_database(name) is True
    assert not server.database_exists(name)
    assert server.drop_database(name) is False


def test_roles_like_escapes_the_prefix(pg_cluster, server):
    base = unique("lb_like")
    wanted = [base + "_a", base + "_b"]
    for name in wanted + [base + "Xa"]:
        pg_cluster.psql('CREATE ROLE "%s"' % name)
    try:
        assert server.roles_like(base + "_") == wanted
        assert like_escape("a_b%c\\") == "a\\_b\\%c\\\\"
    finally:
        for name in wanted + [base + "Xa"]:
            pg_cluster.psql('DROP ROLE "%s"' % name)


def test_role_and_database_lookups(server, roles):
    assert server.role_exists(roles["owner"]) and not server.role_exists(unique("lb_nobody"))
    assert server.database_exists("postgres") and not server.database_exists(unique("lb_nodb"))
    for lookup in (server.database_properties, server.database_size):
        with pytest.raises(LifeboatError, match="database lb_nodb does not exist on the PostgreSQL server at 127.0"):
            lookup("lb_nodb")


@pytest.mark.parametrize("read_only_target", [False, True], ids=["plain", "read-only-default"])
def test_dump_and_restore_round_trip(pg_cluster, server, roles, tmp_path, read_only_target):
    source, target = unique("lb_src"), unique("lb_dst")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (source, roles["owner"]))
    pg_cluster.psql(
        "CREATE SCHEMA app;"
        "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, qty int);"
        "CREATE TABLE app.notes (id bigint GENERATED ALWAYS AS IDENTITY, item int REFERENCES items, body text);"
        "CREATE VIEW notes AS SELECT * FROM app.notes;"
        "INSERT INTO items (name, qty) SELECT 'item ' || g, g FROM generate_series(1, 500) g;"
        "INSERT INTO app.notes (item, body) SELECT g, repeat('x', g) FROM generate_series(1, 500, 7) g;",
        db=source,
    )
    if read_only_target:
        pg_cluster.psql("ALTER DATABASE %s SET default_transaction_read_only = on" % source)
    tools = new_tools(server, pg_cluster.conn_params(), tmp_path)
    dump = str(tmp_path / "src.dump")

    dumped = tools.dump(source, dump)
    server.create_database(target, like=source)
    restored = tools.restore(dump, target, roles["owner"])

    assert dumped["size"] == os.path.getsize(dump) > 0
    assert restored["pg_dump_major"] == restored["server_major"] == pg_cluster.major
    assert restored["format"] == "CUSTOM" and restored["dbname"] == source
    check = tools.check_database(target)
    assert check["size"] == server.database_size(target) > server.database_size("template0")
    assert check["tables"] == restored["tables"] == 2
    assert check["table_owners"] == [roles["owner"]]
    assert table_counts(pg_cluster, target) == table_counts(pg_cluster, source)
    # The app (not a superuser, a member of the owner role) reads and writes the restored tables.
    with pg_cluster.connect(target, tcp=True, user=roles["app"], password=roles["app_password"]) as conn:
        if read_only_target:
            conn.execute("SET default_transaction_read_only = off")
        conn.execute("INSERT INTO items (name, qty) VALUES ('new', 1)")
        conn.execute("INSERT INTO app.notes (item, body) VALUES (501, 'new')")
        assert conn.execute("SELECT max(id) FROM items").fetchone()[0] == 501
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 73
    assert not [name for name in os.listdir(tmp_path) if name.startswith("lifeboat-pgpass-")]


@pytest.mark.parametrize("case", ["missing-database", "bad-timeout"])
def test_dump_failures(pg_cluster, server, tmp_path, case):
    tools = new_tools(server, pg_cluster.conn_params(), tmp_path)
    dest = tmp_path / "out.dump"
    if case == "missing-database":
        with pytest.raises(LifeboatError, match=r'pg_dump failed dumping database lb_nodb .*\n.*"lb_nodb" does not'):
            tools.dump("lb_nodb", str(dest))
    else:
        with pytest.raises(LifeboatError, match="invalid lock_wait_timeout"):
            tools.dump("postgres", str(dest), lock_wait_timeout="1; DROP")
    assert not dest.exists()


@pytest.mark.parametrize("content", [b"", b"-- plain SQL\nSELECT 1;\n"], ids=["empty", "plain-sql"])
def test_restore_refuses_what_is_not_a_custom_dump(pg_cluster, server, roles, tmp_path, content):
    bad = tmp_path / "bad.dump"
    bad.write_bytes(content)
    with pytest.raises(LifeboatError, match="pg_restore failed reading dump"):
        new_tools(server, pg_cluster.conn_params(), tmp_path).restore(str(bad), "postgres", roles["owner"])


def test_restore_refuses_missing_role(pg_cluster, server, tmp_path):
    tools = new_tools(server, pg_cluster.conn_params(), tmp_path)
    dump = str(tmp_path / "postgres.dump")
    tools.dump("postgres", dump)
    with pytest.raises(LifeboatError, match="role lb_norole does not exist"):
        tools.restore(dump, "postgres", "lb_norole")


@pytest.mark.parametrize("password", ["wrong-Secret-123", "with:colon\\and-backslash"])
def test_wrong_password_over_tcp(pg_cluster, server, tmp_path, password):
    params = dict(pg_cluster.conn_params(tcp=True), login_password=password)
    with pytest.raises(LifeboatError) as caught:
        PostgresServer(params).server_version()
    message = str(caught.value)
    assert "authentication failed for user postgres" in message and "port %d" % pg_cluster.port in message
    assert password not in message
    # pg_dump gets the same password through its passfile and fails the same way.
    with pytest.raises(LifeboatError) as caught:
        new_tools(server, params, tmp_path).dump("postgres", str(tmp_path / "x.dump"))
    assert "password authentication failed" in str(caught.value) and password not in str(caught.value)


def test_password_with_special_characters_reaches_pg_dump(pg_cluster, server, tmp_path):
    role, password = unique("lb_special"), "p:a\\s*s wörd"
    pg_cluster.psql(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(role), sql.Literal(password)))
    params = dict(pg_cluster.conn_params(tcp=True), login_user=role, login_password=password)
    assert new_tools(server, params, tmp_path).dump("postgres", str(tmp_path / "x.dump"))["size"] > 0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "socket"])
def test_unreachable_server(pg_cluster, tmp_path, tcp):
    port = free_port()
    params = dict(pg_cluster.conn_params(tcp=tcp), login_port=port)
    if not tcp:
        params["login_unix_socket"] = str(tmp_path)
    with pytest.raises(LifeboatError) as caught:
        PostgresServer(params).server_version()
    message = str(caught.value)
    assert "cannot reach the PostgreSQL server at" in message and "port %d" % port in message
    assert "is the server running" in message
    assert ("127.0.0.1" if tcp else str(tmp_path)) in message
    assert pg_cluster.password not in message


def test_connect_to_missing_database(server):
    with pytest.raises(LifeboatError, match="database lb_nodb does not exist on the PostgreSQL server at 127.0.0.1"):
        server.connect("lb_nodb")


def test_password_only_in_a_passfile(pg_cluster, server, roles, tmp_path):
    bin_dir, log = wrapper_dir(tmp_path, pg_cluster.bin_dir)
    params = dict(pg_cluster.conn_params(tcp=True), pg_bin_dir=bin_dir)
    tools = new_tools(server, params, tmp_path)
    source, target = unique("lb_src"), unique("lb_dst")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (source, roles["owner"]))
    dump = str(tmp_path / "src.dump")

    tools.dump(source, dump)
    server.create_database(target, like=source)
    tools.restore(dump, target, roles["owner"])

    lines = log.read_text().splitlines()
    calls = [line for line in lines if line.startswith("ARGV")]
    assert any("--format=custom" in line and "dbname=%s" % source in line for line in calls)
    assert any("--role=%s" % roles["owner"] in line and "dbname=%s" % target in line for line in calls)
    assert pg_cluster.password not in log.read_text()
    assert not [line for line in lines if line.startswith("ENV PGPASSWORD=")]
    assert {"ENV PGHOST=127.0.0.1", "ENV PGPORT=%d" % pg_cluster.port, "ENV PGUSER=postgres"} <= set(lines)
    passfiles = [line.split() for line in lines if line.startswith("PASSFILE")]
    assert len(passfiles) == 2  # dump and restore connect; --version and --list do not get one
    for _tag, path, mode in passfiles:
        assert mode == "600" and not os.path.exists(path)


def test_pg_restore_older_than_the_dump_is_refused(pg_cluster, server, roles, tmp_path):
    bin_dir, log = wrapper_dir(tmp_path, pg_cluster.bin_dir, {"pg_restore": "%d.0" % (pg_cluster.major - 1)})
    tools = new_tools(server, dict(pg_cluster.conn_params(), pg_bin_dir=bin_dir), tmp_path)
    dump = str(tmp_path / "postgres.dump")
    tools.dump("postgres", dump)
    target = unique("lb_dst")
    server.create_database(target)
    with pytest.raises(LifeboatError) as caught:
        tools.restore(dump, target, roles["owner"])
    assert "pg_restore %d.0" % (pg_cluster.major - 1) in str(caught.value)
    made_by = "cannot read a dump made by a newer pg_dump: this one was made by pg_dump %d." % pg_cluster.major
    assert made_by in str(caught.value)
    assert "postgresql-client-%d" % pg_cluster.major in str(caught.value) and dump not in str(caught.value)
    restores = [line for line in log.read_text().splitlines() if line.startswith("ARGV %s/pg_restore " % bin_dir)]
    assert restores and not [line for line in restores if "--dbname" in line]


@pytest.mark.parametrize("minor, restore_major, needed", [(16, 16, 17), (99, 17, 18)], ids=["known", "unknown"])
def test_dump_format_newer_than_pg_restore_is_refused(pg_cluster, server, roles, tmp_path, minor, restore_major,
                                                      needed):
    """A newer pg_dump's format, which an older pg_restore cannot even list: refused from the header alone."""
    bin_dir, log = wrapper_dir(tmp_path, pg_cluster.bin_dir, {"pg_restore": "%d.2" % restore_major})
    tools = new_tools(server, dict(pg_cluster.conn_params(), pg_bin_dir=bin_dir), tmp_path)
    dump = tmp_path / "postgres.dump"
    tools.dump("postgres", str(dump))
    data = bytearray(dump.read_bytes())
    data[6] = minor  # after "PGDMP" and the format's major
    dump.write_bytes(bytes(data))
    for attempt in (tools.read_through, lambda path: tools.restore(path, "postgres", roles["owner"])):
        with pytest.raises(LifeboatError) as caught:
            attempt(str(dump))
        message = str(caught.value)
        assert message.startswith("pg_restore %d.2 (%s/pg_restore) cannot read a dump made by a newer pg_dump: this "
                                  "one was made by a pg_dump of PostgreSQL %d or later (custom format 1.%d)"
                                  % (restore_major, bin_dir, needed, minor)), message
        assert "PostgreSQL %d client tools or newer" % needed in message and str(dump) not in message
    restores = [line for line in log.read_text().splitlines() if line.startswith("ARGV %s/pg_restore " % bin_dir)]
    assert [line.split()[2:] for line in restores] == [["--version"]]


@pytest.fixture
def administrator(pg_cluster, roles):
    """Connection options of a managed service's administrator: CREATEDB and CREATEROLE, not a superuser, a member
    of the owner role."""
    name, password = unique("lb_admin"), secrets.token_hex(8)
    pg_cluster.psql("CREATE ROLE %s LOGIN CREATEDB CREATEROLE PASSWORD '%s'; GRANT %s TO %s"
                    % (name, password, roles["owner"], name))
    return dict(pg_cluster.conn_params(), login_user=name, login_password=password, environment="lb_admin")


def memberships(cluster, member):
    return cluster.psql("SELECT roleid::regrole::text FROM pg_auth_members WHERE member = %s::regrole ORDER BY 1",
                        params=[member])


def test_restore_as_a_createrole_administrator(pg_cluster, roles, administrator, tmp_path):
    source, target = unique("lb_src"), unique("lb_dst")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (source, roles["owner"]))
    pg_cluster.psql("SET ROLE %s; CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2)" % roles["owner"],
                    db=source)
    with PostgresServer(administrator) as admin:
        tools = new_tools(admin, administrator, tmp_path)
        dump = str(tmp_path / "src.dump")
        tools.dump(source, dump)
        # Without CREATE on pg_default, which naming it would need.
        admin.create_database(target, like=source)
        tools.restore(dump, target, roles["owner"])
        assert tools.check_database(target)["table_owners"] == [roles["owner"]]
    assert pg_cluster.psql("SELECT count(*) FROM items", db=target) == [(2,)]
    assert pg_cluster.psql("SELECT 1 FROM pg_roles WHERE rolname LIKE 'lifeboat\\_restore\\_%'") == []
    assert memberships(pg_cluster, administrator["login_user"]) == [(roles["owner"],)]


def test_administrator_drops_a_role_without_keeping_its_membership(pg_cluster, roles, administrator):
    """REASSIGN OWNED and DROP OWNED need the privileges of the role: the administrator is its member only within
    each transaction, also when one fails."""
    target, other, leftover = unique("lb_dst"), unique("lb_other"), unique("lb_leftover")
    pg_cluster.psql("CREATE DATABASE %s OWNER %s" % (target, roles["owner"]))
    pg_cluster.psql("CREATE ROLE %s NOLOGIN" % other)
    with PostgresServer(administrator) as admin:
        admin.create_login_role(leftover, "secret-" + secrets.token_hex(4), roles["owner"])
        # What an archive's SQL makes after RESET ROLE belongs to the restore role.
        pg_cluster.psql("SET ROLE %s; CREATE TABLE made_after_reset (x int)" % leftover, db=target)
        with pytest.raises(LifeboatError, match="dropping role %s .*permission denied" % leftover):
            admin.drop_role(leftover, reassign_to=other)
        assert memberships(pg_cluster, administrator["login_user"]) == [(roles["owner"],)]
        admin.drop_role(leftover, reassign_to=roles["owner"])
    assert pg_cluster.psql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'made_after_reset'",
                           db=target) == [(roles["owner"],)]
    assert pg_cluster.psql("SELECT 1 FROM pg_roles WHERE rolname = %s", params=[leftover]) == []
    assert memberships(pg_cluster, administrator["login_user"]) == [(roles["owner"],)]


@pytest.mark.parametrize("case", ["empty-dir", "pg_dump-too-old"])
def test_missing_or_unusable_tools(pg_cluster, server, tmp_path, case):
    if case == "empty-dir":
        bin_dir = str(tmp_path)
    else:
        bin_dir = wrapper_dir(tmp_path, pg_cluster.bin_dir, {"pg_dump": "%d.3" % (pg_cluster.major - 1)})[0]
    tools = new_tools(server, dict(pg_cluster.conn_params(), pg_bin_dir=bin_dir), tmp_path)
    with pytest.raises(LifeboatError) as caught:
        tools.dump("postgres", str(tmp_path / "x.dump"))
    message = str(caught.value)
    assert "pg_dump for PostgreSQL %d" % pg_cluster.major in message
    assert "postgresql-client-%d" % pg_cluster.major in message and bin_dir in message
    if case == "pg_dump-too-old":
        assert "is %d.3" % (pg_cluster.major - 1) in message


def test_tools_found_without_pg_bin_dir(pg_cluster, server):
    tools = PgTools(server, dict(pg_cluster.conn_params(), pg_bin_dir=None))
    for name in ("pg_dump", "pg_restore"):
        path, version = tools.tool(name)
        assert os.path.basename(path) == name and version.startswith("%d." % pg_cluster.major)
        assert os.stat(path).st_mode & stat.S_IXUSR


@pytest.mark.parametrize("base, suffix", [
    ("app", "__lb_stage"),
    ("a" * 53, "__lb_stage"),
    ("a" * 54, "__lb_stage"),
    ("a" * 63, "__lb_prev_20240101120000"),
    ("ü" * 40, "__lb_stage"),
    ("name_" * 20, "__lb_prev_20240101120000"),
])
def test_derived_name(pg_cluster, server, base, suffix):
    name = derived_name(base, suffix)
    assert len(name.encode("utf-8")) <= 63 and name.endswith(suffix)
    assert name == derived_name(base, suffix)
    if len((base + suffix).encode("utf-8")) <= 63:
        assert name == base + suffix
    else:
        assert name != derived_name(base + "x", suffix)
        assert base.startswith(name[:-len(suffix) - 9])
    # PostgreSQL keeps the name as it is.
    server.create_database(name)
    assert server.database_exists(name)
    server.drop_database(name)


def test_derived_name_refuses_a_suffix_without_room():
    with pytest.raises(LifeboatError, match="too long"):
        derived_name("a" * 80, "_" * 60)
