# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from ansible_collections.lifeboat.backup.tests.databases import sqlite_db
from ansible_collections.lifeboat.backup.tests.unit.plugins.module_utils.uploads import (
    PASSPHRASE,
    PGDUMP,
    lifeboat_archive,
    mendix_snapshot,
)


@pytest.fixture
def sources(tmp_path):
    """One archive of every accepted kind, plus the SQLite database and file store they hold."""
    db = sqlite_db(tmp_path / "source.db")
    store = tmp_path / "store"
    (store / "ab").mkdir(parents=True)
    (store / "ab" / "file.bin").write_bytes(os.urandom(5000))
    made = {
        "lifeboat": lifeboat_archive(tmp_path / "plain.tar", db, str(store)),
        "lifeboat-gzip": lifeboat_archive(tmp_path / "gz.tar.gz", db, str(store), compression="gzip"),
        "mendix": mendix_snapshot(tmp_path / "snapshot.tar.gz", PGDUMP, {"tree/ab/c.txt": b"hello"}),
        "pgdump": str(tmp_path / "export.db"),
    }
    (tmp_path / "export.db").write_bytes(PGDUMP)
    made["age"] = str(tmp_path / "sealed.tar.age")
    age.encrypt_file(made["lifeboat"], made["age"], passphrase=PASSPHRASE, work_factor=10)
    made["age-dump"] = str(tmp_path / "dump.age")
    age.encrypt_file(made["pgdump"], made["age-dump"], passphrase=PASSPHRASE, work_factor=10)
    return made
