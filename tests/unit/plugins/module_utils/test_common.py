# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import os
import types

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import common
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError

MiB = 1024 * 1024


@pytest.mark.parametrize("name", ["shop", "a", "prod-1.eu_west", "x" * 63])
def test_check_name_accepts(name):
    assert common.check_name(name, "environment") == name


@pytest.mark.parametrize("name", ["shop\n", "shop\r\n", "\nshop", "", "-shop", "a..b", "x" * 64, "a/b", "é", 5, None])
def test_check_name_refuses(name):
    with pytest.raises(LifeboatError, match="invalid environment"):
        common.check_name(name, "environment")


# ------------------------------------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    "data, message",
    [
        (b"[]", "x is not a JSON object"),
        (b'"text"', "x is not a JSON object"),
        (b"  \n", "x is not a JSON object"),
        (b'{"a": 1', "x is not valid JSON"),
        (b'{"a": "\xff"}', "x is not valid JSON .*utf-8"),
        (b'{"a": ' * 100000 + b"1" + b"}" * 100000, r"x is not valid JSON \(it nests too deeply\)"),
        (b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}", r"x is not valid JSON \(it nests too deeply\)"),
        (b'{"a": 1} x', "x is not valid JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "x is not valid JSON"),  # beyond int's digit limit
    ],
)
def test_parse_json_object_refuses(data, message):
    with pytest.raises(LifeboatError, match=message):
        common.parse_json_object(data, "x")


def test_parse_json_object():
    assert common.parse_json_object(b' \n{"a": [1, "\xc3\xa9"]}\n', "x") == {"a": [1, "é"]}


def test_parse_json_object_refuses_too_much_before_parsing():
    with pytest.raises(LifeboatError, match="x has more than 10 bytes"):
        common.parse_json_object(b'{"a": "0123456789"}', "x", limit=10)


# ------------------------------------------------------------------------------------------- free space


def fake_statvfs(monkeypatch, free, inodes=0):
    """``inodes`` free of 1,000,000; 0: a filesystem without an inode limit (it reports none)."""
    monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(
        f_bavail=free // 4096, f_frsize=4096, f_files=1000000 if inodes else 0, f_favail=inodes))


def test_check_free_space_counts_inodes(tmp_path, monkeypatch):
    fake_statvfs(monkeypatch, 200 * MiB, inodes=5000)
    assert common.check_free_space(str(tmp_path), MiB, "the files", inodes=3800) == 200 * MiB
    with pytest.raises(LifeboatError, match="not enough free inodes for the files on the filesystem mounted at / ?: "
                       "it needs 5200 .4000 plus a margin of 1200.*only 5000 are free"):
        common.check_free_space(str(tmp_path), MiB, "the files", inodes=4000)


def test_check_free_space(tmp_path, monkeypatch):
    fake_statvfs(monkeypatch, 200 * MiB)
    assert common.check_free_space(str(tmp_path / "not" / "yet"), 100 * MiB, "the dump") == 200 * MiB
    with pytest.raises(LifeboatError) as caught:
        common.check_free_space(str(tmp_path / "not" / "yet"), 130 * MiB, "the dump")
    mount = common.mount_point(str(tmp_path))
    assert str(caught.value) == (
        "not enough free space for the dump on the filesystem mounted at %s: it needs 200.50 MiB (130.00 MiB plus a "
        "margin of 70.50 MiB), only 200.00 MiB are free; free up space there or give it a larger filesystem" % mount
    )


def test_free_space_margin():
    assert common.free_space_margin(0) == 64 * MiB
    assert common.free_space_margin(20 * 1024 * MiB) == 1088 * MiB


def test_mount_point(tmp_path):
    mount = common.mount_point(str(tmp_path))
    assert os.path.ismount(mount) and str(tmp_path).startswith(mount)
    assert common.mount_point("/") == "/"
    assert common.mount_point("/proc/self") == "/proc"


@pytest.mark.parametrize(
    "size, text",
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.50 KiB"), (1000 * MiB, "1000.00 MiB"), (2**50, "1024.00 TiB")],
)
def test_format_size(size, text):
    assert common.format_size(size) == text


# ------------------------------------------------------------------------------------------- durability


def make_tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"x")
    (root / "g").write_bytes(b"y")


def test_sync_tree_uses_one_syncfs(tmp_path, monkeypatch):
    make_tree(tmp_path)
    fsynced = []
    monkeypatch.setattr(os, "fsync", fsynced.append)
    common.sync_tree(str(tmp_path))
    assert fsynced == []
    assert common._syncfs() is not None  # Linux: syncfs(2) does it all


def test_sync_tree_without_syncfs_fsyncs_each_file_and_directory(tmp_path, monkeypatch):
    make_tree(tmp_path)
    synced = []
    real = os.fsync
    monkeypatch.setattr(common, "_syncfs", lambda: None)
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink("/proc/self/fd/%d" % fd)) or real(fd))
    common.sync_tree(str(tmp_path))
    assert sorted(synced) == sorted(str(tmp_path / rel) for rel in ("", "a", "a/b", "a/b/f", "g"))


def test_sync_tree_reports_a_failed_syncfs(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "_syncfs", lambda: lambda fd: -1)
    monkeypatch.setattr(common.ctypes, "get_errno", lambda: 5)
    with pytest.raises(OSError, match="Input/output error"):
        common.sync_tree(str(tmp_path))
