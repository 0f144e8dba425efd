# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration file names, ordering, drift/newer planning, options: pure functions."""

from __future__ import annotations

import hashlib

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import migrations
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SqliteEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.migrations import (
    Migration,
    command_argv,
    history_table_name,
    parse_name,
    plan,
    project_version,
    scan,
)


@pytest.mark.parametrize("name, expected", [
    ("V1__init.sql", (1, "init")),
    ("V2__add_invoice_table.sql", (2, "add invoice table")),
    ("V010__leading_zeros.sql", (10, "leading zeros")),
    ("V20260102120000__timestamp_version.sql", (20260102120000, "timestamp version")),
    ("V3__dots.and-dashes.sql", (3, "dots.and-dashes")),
    ("V4__ünïcode.sql", (4, "ünïcode")),
    ("V5___leading_underscore.sql", (5, "leading underscore")),
])
def test_parse_name_accepts_migrations(name, expected):
    assert parse_name(name) == expected


@pytest.mark.parametrize("name", [
    "README.md", "notes.txt", "Makefile", "alembic.ini", ".V1__hidden.sql", ".gitkeep", ".V1__x.sql.swp",
    "Version.txt", "v_notes.md",
])
def test_parse_name_ignores_other_files(name):
    assert parse_name(name) is None


@pytest.mark.parametrize("name", [
    "V1_single_underscore.sql",  # one underscore
    "v1__lowercase_v.sql",
    "V1__upper_extension.SQL",
    "V1.1__dotted_version.sql",
    "V__no_version.sql",
    "V1__.sql",  # no description
    "V1__   .sql",
    "R__repeatable.sql",  # Flyway's repeatable and undo migrations are not supported
    "U2__undo.sql",
    "schema.sql",
    "V1__editor_backup.sql.bak",
    "V1__editor_backup.sql~",
    "V9223372036854775808__too_large.sql",
    "1__no_v.sql",
])
def test_parse_name_refuses_malformed_migrations(name):
    with pytest.raises(LifeboatError, match="V<version>__<description>.sql|too large"):
        parse_name(name)


def test_largest_bigint_version_is_accepted():
    assert parse_name("V9223372036854775807__max.sql")[0] == 2 ** 63 - 1


def write(directory, name, text="SELECT 1;\n"):
    path = directory / name
    path.write_text(text)
    return path


def test_scan_orders_by_number_not_by_name(tmp_path):
    for name in ["V10__ten.sql", "V9__nine.sql", "V100__hundred.sql", "V1__one.sql", "README.md"]:
        write(tmp_path, name, "-- %s\n" % name)
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "V2__in_a_subdirectory.sql")
    found = scan(str(tmp_path))
    assert [m.version for m in found] == [1, 9, 10, 100]
    assert found[0].name == "V1__one.sql" and found[0].path == str(tmp_path / "V1__one.sql")
    assert found[0].sha256 == hashlib.sha256(b"-- V1__one.sql\n").hexdigest()
    assert found[0].sql == "-- V1__one.sql\n"
    assert project_version(str(tmp_path)) == 100


def test_scan_names_every_malformed_file(tmp_path):
    write(tmp_path, "V1__ok.sql")
    write(tmp_path, "V2_bad.sql")
    write(tmp_path, "v3__bad.sql")
    with pytest.raises(LifeboatError) as raised:
        scan(str(tmp_path))
    assert "V2_bad.sql" in str(raised.value) and "v3__bad.sql" in str(raised.value)
    assert "V1__ok.sql" not in str(raised.value)


def test_scan_refuses_duplicate_versions(tmp_path):
    write(tmp_path, "V2__first.sql")
    write(tmp_path, "V02__second.sql")
    write(tmp_path, "V3__fine.sql")
    with pytest.raises(LifeboatError, match=r"version 2: V02__second.sql, V2__first.sql"):
        scan(str(tmp_path))


def test_scan_checksums_raw_bytes_and_strips_the_bom(tmp_path):
    data = b"\xef\xbb\xbfCREATE TABLE t (x int);\r\n"
    (tmp_path / "V1__bom.sql").write_bytes(data)
    migration = scan(str(tmp_path))[0]
    assert migration.sha256 == hashlib.sha256(data).hexdigest()
    assert migration.sql == "CREATE TABLE t (x int);\r\n"


def test_scan_refuses_non_utf8_and_missing_directories(tmp_path):
    (tmp_path / "V1__latin1.sql").write_bytes(b"SELECT '\xe9';")
    with pytest.raises(LifeboatError, match="V1__latin1.sql is not UTF-8"):
        scan(str(tmp_path))
    with pytest.raises(LifeboatError, match="does not exist"):
        scan(str(tmp_path / "missing"))


def test_empty_directory_has_no_version(tmp_path):
    assert scan(str(tmp_path)) == [] and project_version(str(tmp_path)) is None


def migration(version, text="SELECT %d;"):
    sql = text % version if "%d" in text else text
    return Migration(version, "m%d" % version, "V%d__m%d.sql" % (version, version), "/m/V%d.sql" % version,
                     hashlib.sha256(sql.encode()).hexdigest(), sql)


PROJECT = [migration(1), migration(2), migration(3)]


def history(*versions, changed=()):
    return {v: ("0" * 64 if v in changed else migration(v).sha256) for v in versions}


@pytest.mark.parametrize("applied, pending, current", [
    ((), [1, 2, 3], None),
    ((1,), [2, 3], 1),
    ((1, 2, 3), [], 3),
])
def test_plan_lists_pending_migrations_in_order(applied, pending, current):
    steps = plan(PROJECT, history(*applied))
    assert [m.version for m in steps["pending"]] == pending
    assert steps["current"] == current and steps["project"] == 3 and steps["warnings"] == []


@pytest.mark.parametrize("applied, changed, expected", [
    ((1, 2), (2,), "V2__m2.sql was changed after it was applied"),
    ((1, 2, 3), (1, 3), "V1__m1.sql was changed"),
])
def test_plan_refuses_changed_files(applied, changed, expected):
    with pytest.raises(LifeboatError, match=expected) as raised:
        plan(PROJECT, history(*applied, changed=changed), target="database shop")
    assert "nothing was applied" in str(raised.value) and "allow_drift" in str(raised.value)
    assert "database shop" in str(raised.value)


def test_plan_allow_drift_warns_and_applies_the_rest():
    steps = plan(PROJECT, history(1, 2, changed=(2,)), allow_drift=True, target="database shop")
    assert [m.version for m in steps["pending"]] == [3]
    assert len(steps["warnings"]) == 1 and "V2__m2.sql was changed" in steps["warnings"][0]


def test_plan_refuses_a_missing_applied_file():
    with pytest.raises(LifeboatError, match="version 2 was applied but has no file any more"):
        plan([migration(1), migration(3)], history(1, 2))


def test_plan_refuses_out_of_order_pending_unless_drift_is_allowed():
    with pytest.raises(LifeboatError, match="V2__m2.sql is not applied but the database is already at version 3"):
        plan(PROJECT, history(1, 3))
    steps = plan(PROJECT, history(1, 3), allow_drift=True)
    assert [m.version for m in steps["pending"]] == [2]


def test_plan_refuses_a_newer_database():
    with pytest.raises(LifeboatError, match="at version 5, newer than the project's migrations") as raised:
        plan(PROJECT, history(1, 2, 3, 4, 5))
    assert "allow_newer" in str(raised.value) and "allow_drift" not in str(raised.value)
    steps = plan(PROJECT, history(1, 2, 3, 4, 5), allow_newer=True)
    assert steps["pending"] == [] and steps["current"] == 5 and "version 4, 5 unknown" in steps["warnings"][0]


def test_plan_newer_database_and_no_migrations_at_all():
    with pytest.raises(LifeboatError, match="there are none"):
        plan([], {1: "x"})
    assert plan([], {})["pending"] == []


def test_plan_names_both_problems_and_both_remedies():
    with pytest.raises(LifeboatError) as raised:
        plan(PROJECT, history(1, 2, changed=(1,)) | history(7))
    assert "allow_drift" in str(raised.value) and "allow_newer" in str(raised.value)
    # Allowing one still refuses the other.
    with pytest.raises(LifeboatError, match="allow_newer"):
        plan(PROJECT, history(1, 2, changed=(1,)) | history(7), allow_drift=True)


@pytest.mark.parametrize("value, default_schema, expected", [
    (None, "public", ("public", "lifeboat_schema_history")),
    ("history", "public", ("public", "history")),
    ("ops.history", "public", ("ops", "history")),
    (None, None, (None, "lifeboat_schema_history")),
    ("_h1", None, (None, "_h1")),
])
def test_history_table_name(value, default_schema, expected):
    assert history_table_name(value, default_schema) == expected


@pytest.mark.parametrize("value, default_schema", [
    ("ops.history", None),
    ("a.b.c", "public"),
    ("bad name", "public"),
    ('x"; DROP TABLE y; --', "public"),
    ("1starts_with_digit", None),
    ("x" * 64, "public"),
])
def test_history_table_name_refuses(value, default_schema):
    with pytest.raises(LifeboatError, match="invalid history_table"):
        history_table_name(value, default_schema)


@pytest.mark.parametrize("command, argv", [
    ("alembic upgrade head", ["alembic", "upgrade", "head"]),
    ("app --update-db --config '/etc/my app.conf'", ["app", "--update-db", "--config", "/etc/my app.conf"]),
    (["python3", "manage.py", "migrate"], ["python3", "manage.py", "migrate"]),
    (["app", 42, True], ["app", "42", "True"]),
])
def test_command_argv(command, argv):
    assert command_argv(command) == argv


@pytest.mark.parametrize("command", ["", "   ", [], [""], "app 'unclosed", ["app", None], ["app", ["x"]], 5, {"a": 1}])
def test_command_argv_refuses(command):
    with pytest.raises(LifeboatError):
        command_argv(command)


def test_update_needs_exactly_one_of_migrations_and_command(tmp_path):
    for kwargs in ({}, {"migrations": str(tmp_path), "command": "true"}):
        with pytest.raises(LifeboatError, match="either migrations"):
            migrations.update(SqliteEngine({}), str(tmp_path / "x.db"), **kwargs)
