# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tests compare: the full content of a database or a file store, as plain Python values."""

from __future__ import annotations

import hashlib
import os
import sqlite3


def sqlite_snapshot(path):
    """Schema and every row of every table of an SQLite file."""
    connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        schema = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        rows = {name: connection.execute('SELECT * FROM "%s" ORDER BY 1' % name).fetchall()
                for kind, name, _sql in schema if kind == "table"}
        return schema, rows
    finally:
        connection.close()


def files_snapshot(path):
    """Relative path -> SHA-256 of every file below ``path`` (and the directories, as None)."""
    result = {}
    for root, dirs, files in os.walk(path):
        for name in dirs:
            result[os.path.relpath(os.path.join(root, name), path) + "/"] = None
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                result[os.path.relpath(os.path.join(root, name), path)] = hashlib.sha256(handle.read()).hexdigest()
    return result
