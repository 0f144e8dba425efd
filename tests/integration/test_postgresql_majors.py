# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every installed PostgreSQL major version (pgcluster.installed_bin_dirs): a backup and restore round trip on
each, and a dump made by a newer pg_dump refused clearly by an older pg_restore.

Debian 12 offers only PostgreSQL 15; with the PostgreSQL project's packages installed beside it, each major runs
here. With a single major, the newer dump is that major's dump with the archive format version of a newer
pg_dump in its header, which is what an older pg_restore reads first."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest

from ansible_collections.lifeboat.backup.tests.integration.pgcluster import PgCluster, installed_bin_dirs
from datasets import damage_pg, make_pg_app, pg_snapshot
from playbook import run_module

MAJORS = installed_bin_dirs()
# Offset of the minor number of the custom format's version in a dump's header (after "PGDMP" and the major);
# pg_dump 17 writes 1.16, pg_dump 15 writes 1.14.
_FORMAT_MINOR = 6
_NEWER_FORMAT_MINOR = 16


@pytest.fixture(scope="module")
def clusters():
    """One started cluster per installed major, for every test of the module."""
    started = {}
    try:
        for major, bin_dir in MAJORS.items():
            started[major] = PgCluster(bin_dir).start()
        yield started
    finally:
        for each in started.values():
            each.stop()


@pytest.fixture(scope="module", params=sorted(MAJORS), ids=lambda major: "pg%d" % major)
def cluster(request, clusters):
    return clusters[request.param]


def environment(cluster, tmp_path, name):
    return dict(cluster.conn_params(), environment=name, engine="postgresql", database=name,
                catalog=str(tmp_path / "catalog"))


def test_round_trip(cluster, tmp_path):
    name = "app_" + uuid.uuid4().hex[:8]
    make_pg_app(cluster, name)
    env = environment(cluster, tmp_path, name)
    original = pg_snapshot(cluster, name)
    created = run_module("backup_create", dict(env, label="before"))
    assert created["changed"] is True, created
    damage_pg(cluster, name)
    restored = run_module("backup_restore", dict(env, backup="before"))
    assert restored["changed"] is True, restored
    assert pg_snapshot(cluster, name) == original


def newer_dump(newest, work):
    """A custom-format dump that the oldest installed pg_restore cannot read, made by the newest pg_dump."""
    name = "src_" + uuid.uuid4().hex[:8]
    make_pg_app(newest, name, rows=5)
    path = work / "newer.dump"
    subprocess.run([os.path.join(newest.bin_dir, "pg_dump"), "-Fc", "-h", newest.socket_dir, "-p",
                    str(newest.port), "-U", newest.superuser, "-f", str(path), name], check=True)
    if len(MAJORS) == 1:
        data = bytearray(path.read_bytes())
        assert data[:5] == b"PGDMP" and data[_FORMAT_MINOR] < _NEWER_FORMAT_MINOR
        data[_FORMAT_MINOR] = _NEWER_FORMAT_MINOR
        path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def refusal(tmp_path_factory, clusters):
    """``(result, databases)``: backup_restore of a newer dump on the oldest server, and the databases named
    like its target afterwards."""
    work = tmp_path_factory.mktemp("newer-dump")
    dump = newer_dump(clusters[max(MAJORS)], work)
    oldest = clusters[min(MAJORS)]
    target = "copy_" + uuid.uuid4().hex[:8]
    oldest.psql("CREATE ROLE %s" % target)
    env = dict(environment(oldest, work, target), owner=target, files_path=str(work / "files"))
    result = run_module("backup_restore", dict(env, src=str(dump)))
    return result, oldest.psql("SELECT datname FROM pg_database WHERE datname LIKE %s", params=[target + "%"])


def test_a_dump_of_a_newer_pg_dump_is_refused_by_an_older_pg_restore(refusal):
    result, databases = refusal
    assert result.get("failed") is True, result
    assert "cannot read a dump made by a newer pg_dump" in result["msg"], result
    assert databases == [], "a refused restore leaves no database behind"


def test_the_refusal_says_which_pg_restore_to_install(refusal):
    message = refusal[0]["msg"]
    # The dump's format and the pg_restore that cannot read it, in Lifeboat's words (not pg_restore's), and what
    # to install; not the catalog's staging paths.
    assert "pg_restore %d." % min(MAJORS) in message and "custom format 1." in message, message
    needed = re.search(r"PostgreSQL (\d+) client tools or newer", message)
    assert needed and min(MAJORS) < int(needed.group(1)) <= max([*MAJORS, 17]), message
    assert "postgresql-client-%s" % needed.group(1) in message and "pg_bin_dir" in message, message
    assert "unsupported version" not in message and ".tmp" not in message and "catalog" not in message, message
