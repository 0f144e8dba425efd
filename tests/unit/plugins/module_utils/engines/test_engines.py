# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the engines tell the engine-agnostic code without a server: names, journal operations, dump magic."""

from __future__ import annotations


from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql import PostgresEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.registry import (
    ENGINE_CLASSES,
    dump_engine,
    open_engine,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SQLITE_MAGIC, SqliteEngine


def postgres():
    return open_engine({"engine": "postgresql", "environment": "app", "login_user": "postgres"})


def test_every_engine_says_how_it_names_its_targets_and_copies(tmp_path):
    assert {name: engine.target_option for name, engine in ENGINE_CLASSES.items()} == {
        "postgresql": "database", "sqlite": "path"}
    sqlite = SqliteEngine({})
    target = str(tmp_path / "app.db")
    copies = {sqlite.staging_name(target), sqlite.previous_name(target, "20240101000000"), sqlite.scratch_name(target)}
    assert len(copies) == 3 and all(name.startswith(target + ".lb_") for name in copies)
    engine = postgres()
    copies = {engine.staging_name("app"), engine.previous_name("app", "20240101000000"), engine.scratch_name("app")}
    assert len(copies) == 3 and all(name.startswith("app__lb_") for name in copies)


def test_the_one_step_swap_touches_only_copies_of_its_targets():
    engine = postgres()
    op = engine.swap_ops([("app", "app__lb_stage", "app__lb_prev_1"), ("crm", "crm__lb_stage", None)])[0]
    assert engine.touches(op) == [("app__lb_stage", "app"), ("app__lb_prev_1", "app"), ("crm__lb_stage", "crm")]
    for pairs in ("app", ["app"], [["app", "app__lb_stage"]], [("app", "app__lb_stage", None)]):
        assert engine.touches(dict(op, pairs=pairs)) is None, pairs
    assert engine.touches({"kind": "rename", "src": "a", "dst": "b"}) == [("a", None), ("b", None)]
    assert engine.touches({"kind": "replace", "src": "a", "dst": "b"}) is None  # no inode
    assert SqliteEngine({}).touches(op) is None  # another engine's operation


def test_a_bare_dump_is_known_by_its_first_bytes(tmp_path):
    for name, head in (("postgresql", b"PGDMP\x01\x0e\x00"), ("sqlite", SQLITE_MAGIC), (None, b"SQLite format 2"),
                       (None, b"")):
        path = tmp_path / "dump"
        path.write_bytes(head + b"\x00" * 10)
        assert dump_engine(str(path)) == name, head


def test_only_postgresql_needs_a_library():
    assert SqliteEngine.missing_library() is None
    assert PostgresEngine.missing_library() is None  # psycopg is installed here
