# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_download through real ansible-playbook runs: round trip with checksum, idempotence, a damaged
archive, become over a real SSH connection, and a 300 MB archive up and down in flat memory."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import sys

import pytest

import archives
from inventory_play import run_play
from playbook import run_tasks
from sshd import Sshd, sshd_server, unprivileged_user  # noqa: F401  # pylint: disable=unused-import

from ansible_collections.lifeboat.backup.plugins.module_utils import archive

BIG_SIZE = 300 * 1024 * 1024
# Far below the archive's size: nothing may read it into memory (ansible-playbook alone takes ~60 MB).
MEMORY_LIMIT = 150 * 1024 * 1024


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sqlite_env(root, name="prod"):
    root.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(root / "app.db")
    connection.execute("CREATE TABLE t (v TEXT)")
    connection.execute("INSERT INTO t VALUES ('production data')")
    connection.commit()
    connection.close()
    (root / "files").mkdir()
    (root / "files" / "invoice.pdf").write_bytes(os.urandom(30000))
    return {"environment": name, "engine": "sqlite", "path": str(root / "app.db"), "files_path": str(root / "files"),
            "catalog": str(root / "catalog")}


def parts(directory):
    return [name for name in os.listdir(directory) if name.endswith(".part")] if os.path.isdir(directory) else []


FLIP = "import sys; from archives import flip_byte; flip_byte(sys.argv[1])"


def damage(path):
    """A task that flips one byte of ``path`` in place (same size, other SHA-256), between two others."""
    return {"ansible.builtin.command": {"argv": [sys.executable, "-c", FLIP, path],
                                        "chdir": os.path.dirname(os.path.abspath(archives.__file__))},
            "check_mode": False}


def test_download_round_trip_is_checked_and_idempotent(tmp_path):
    env = sqlite_env(tmp_path / "prod")
    dest = tmp_path / "downloads"
    fresh = tmp_path / "fresh"
    download = dict(env, dest=str(dest), backup="nightly")
    node_path = "{{ lifeboat_result_0.backup.path }}"
    local_path = "{{ lifeboat_result_3.dest }}"
    results = run_tasks([
        {"lifeboat.backup.backup_create": dict(env, label="nightly")},
        {"lifeboat.backup.backup_download": download, "check_mode": True},
        {"ansible.builtin.stat": {"path": str(dest)}, "check_mode": False},
        {"lifeboat.backup.backup_download": download},
        {"lifeboat.backup.backup_download": download},
        # A damaged local copy is replaced; a damaged archive on the node is refused and leaves nothing behind.
        damage(local_path),
        {"lifeboat.backup.backup_download": download},
        {"lifeboat.backup.backup_download": dict(download, backup="no-such-backup")},
        damage(node_path),
        {"lifeboat.backup.backup_download": dict(download, dest=str(fresh))},
    ], diff=True)
    created, check, after_check, done, again, _damage, repaired, missing, _damage, refused = results
    sha = created["backup"]["sha256"]

    assert check["changed"] is True and check["transferred"] is False, check
    assert check["diff"]["before"]["sha256"] is None and check["diff"]["after"]["sha256"] == sha
    assert after_check["stat"]["exists"] is False, "check mode writes nothing"

    assert done["changed"] is True and done["transferred"] is True, done
    assert done["dest"] == str(dest / os.path.basename(created["backup"]["path"]))
    assert done["backup"]["id"] == created["backup"]["id"] and done["size"] == created["backup"]["size"]
    assert done["sha256"] == sha and stat.S_IMODE(os.stat(dest).st_mode) == 0o700

    assert again["changed"] is False and again["transferred"] is False and again["dest"] == done["dest"], again

    assert _damage.get("rc") == 0, _damage
    assert repaired["changed"] is True and repaired["transferred"] is True, repaired
    assert missing["failed"] is True and "has no backup 'no-such-backup'" in missing["msg"], missing
    assert refused["failed"] is True, refused
    assert "SHA-256" in refused["msg"] and "damaged" in refused["msg"], refused["msg"]
    assert os.listdir(fresh) == [], "no partial file"

    # What the controller has is exactly the backup, as it was before the node's copy was damaged.
    assert sha256(done["dest"]) == sha and stat.S_IMODE(os.stat(done["dest"]).st_mode) == 0o600
    assert parts(dest) == []


@pytest.mark.ssh
def test_download_over_ssh_with_become_from_a_root_only_catalog(sshd_server, unprivileged_user, tmp_path):  # noqa: F811
    env = sqlite_env(tmp_path / "prod")
    dest = tmp_path / "downloads"
    download = dict(env, dest=str(dest))
    results, process, _peak = run_play([
        {"lifeboat.backup.backup_create": env},
        {"lifeboat.backup.backup_download": download},
        {"lifeboat.backup.backup_download": download},
    ], host_vars=sshd_server.host_vars(unprivileged_user.pw_name), become=True)
    created, done, again = results
    assert created["changed"] is True, (created, process.stdout[-2000:])
    node_path = created["backup"]["path"]
    info = os.stat(node_path)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600), "a catalog the SSH user cannot read"
    assert done["changed"] is True and done["transferred"] is True, done
    assert sha256(done["dest"]) == created["backup"]["sha256"]
    assert again["changed"] is False and again["transferred"] is False, again
    after = os.stat(node_path)
    assert (after.st_uid, after.st_mode, after.st_nlink) == (0, info.st_mode, 1), "the catalog's file is untouched"
    remote_tmp = os.path.join(unprivileged_user.pw_dir, ".ansible", "tmp")
    assert not os.path.isdir(remote_tmp) or os.listdir(remote_tmp) == [], "the handed-out copy is removed"


# ---------------------------------------------------------------------------------------------- memory


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    """A Lifeboat archive of about 300 MB: a small SQLite database and one big file in the file store."""
    root = tmp_path_factory.mktemp("big")
    env = sqlite_env(root / "source")
    block = os.urandom(1024 * 1024)
    with open(os.path.join(env["files_path"], "video.bin"), "wb") as handle:
        for index in range(BIG_SIZE // len(block)):
            handle.write(index.to_bytes(8, "big") + block[8:])
    path = str(root / "big.tar")
    with open(path, "wb") as handle:
        archive.write_archive(
            handle, manifest={"backup_id": "20260101T000000Z-b1b1b1", "environment": "source", "engine": "sqlite",
                              "created_at": "2026-01-01T00:00:00Z"},
            metadata=archive.mendix_metadata(1, 8192, "", 8192, BIG_SIZE), databases=[("db", env["path"])],
            files_path=env["files_path"])
    os.unlink(os.path.join(env["files_path"], "video.bin"))
    yield path, sha256(path)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("connection", ["local", "ssh"])
def test_large_archive_moves_in_flat_memory(big_archive, tmp_path, connection, request):
    path, digest = big_archive
    server = None
    if connection == "ssh":
        user = request.getfixturevalue("unprivileged_user")
        server = Sshd().start()  # its own: its peak_rss must count only this test's sessions
        host_vars, play_vars = server.host_vars(user.pw_name), {}
    else:
        # su from root to root needs no password: become without sudo, so the export branch runs.
        host_vars, play_vars = None, {"ansible_become_method": "su"}
    target = {"environment": "big", "engine": "sqlite", "path": str(tmp_path / "unused.db"),
              "catalog": str(tmp_path / "catalog")}
    try:
        results, process, controller_peak = run_play([
            {"lifeboat.backup.backup_upload": dict(target, src=path)},
            {"lifeboat.backup.backup_download": dict(target, backup="{{ lifeboat_result_0.backup.id }}",
                                                     dest=str(tmp_path / "downloads"))},
        ], host_vars=host_vars, play_vars=play_vars, become=True)
        uploaded, downloaded = results
        assert uploaded["changed"] is True and uploaded["transferred"] is True, (uploaded, process.stdout[-3000:])
        assert uploaded["backup"]["sha256"] == digest and uploaded["verification"] == "checksums"
        assert downloaded["changed"] is True and downloaded["transferred"] is True, downloaded
        assert downloaded["sha256"] == digest == sha256(downloaded["dest"])
        assert os.path.getsize(downloaded["dest"]) > BIG_SIZE
        print("%s: controller peak RSS %.0f MB" % (connection, controller_peak / 1e6))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp_path / "catalog", ignore_errors=True)
        shutil.rmtree(tmp_path / "downloads", ignore_errors=True)
    assert controller_peak < MEMORY_LIMIT, "controller peak RSS %.0f MB" % (controller_peak / 1e6)
    if server is not None:
        print("%s: node peak RSS %.0f MB" % (connection, (server.peak_rss or 0) / 1e6))
        assert server.peak_rss is not None and server.peak_rss < MEMORY_LIMIT, \
            "node peak RSS %.0f MB" % ((server.peak_rss or 0) / 1e6)
