# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which engine serves an environment: the one place that maps an engine's name to its code."""

from __future__ import annotations

from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql import PostgresEngine
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.sqlite import SqliteEngine


def open_engine(params, tmp_dir=None):
    """``tmp_dir``: a function returning the environment's private directory for temporary files."""
    if params["engine"] == "sqlite":
        return SqliteEngine(params)
    return PostgresEngine(params, tmp_dir)
