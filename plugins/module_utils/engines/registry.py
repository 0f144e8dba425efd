# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which engine serves an environment: the one place that maps an engine's name to its code."""

from __future__ import annotations

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql import PostgresEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SqliteEngine

ENGINE_CLASSES = {engine.name: engine for engine in (PostgresEngine, SqliteEngine)}
ENGINES = list(ENGINE_CLASSES)
DEFAULT_ENGINE = PostgresEngine.name
# The longest magic is enough to tell any engine's bare dump.
_HEAD_SIZE = max(len(engine.dump_magic) for engine in ENGINE_CLASSES.values())


def engine_class(name):
    if name not in ENGINE_CLASSES:
        raise LifeboatError("unknown engine %r: use %s" % (name, " or ".join(ENGINES)))
    return ENGINE_CLASSES[name]


def open_engine(params, tmp_dir=None):
    """``tmp_dir``: a function returning the environment's private directory for temporary files."""
    return engine_class(params["engine"])(params, tmp_dir)


def dump_engine(path):
    """The name of the engine whose bare dump the file at ``path`` is, or None."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_SIZE)
    return next((name for name, engine in ENGINE_CLASSES.items() if engine.is_dump(head)), None)
