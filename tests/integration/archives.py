# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Damaged and hostile archives, built by the tests themselves."""

from __future__ import annotations

import io
import json
import os
import tarfile


def flip_byte(path, offset=None):
    """Flip one byte (by default in the middle of the file)."""
    size = os.path.getsize(path)
    offset = size // 2 if offset is None else offset
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def truncate(path, keep=0.5):
    with open(path, "r+b") as handle:
        handle.truncate(int(os.path.getsize(path) * keep))


def hostile_archive(path, kind, dump_path):
    """A tar that carries a real database dump plus one unsafe member of ``kind``."""
    with tarfile.open(path, "w") as tar:
        tar.add(dump_path, arcname="db/db.backup")
        if kind == "dotdot":
            _add_bytes(tar, "tree/../../escaped.txt", b"escape")
        elif kind == "absolute":
            _add_bytes(tar, "/tmp/lifeboat-escaped.txt", b"escape")
        elif kind == "symlink":
            info = tarfile.TarInfo("tree/link")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
        elif kind == "hardlink":
            info = tarfile.TarInfo("tree/link")
            info.type = tarfile.LNKTYPE
            info.linkname = "db/db.backup"
            tar.addfile(info)
        elif kind == "device":
            info = tarfile.TarInfo("tree/null")
            info.type = tarfile.CHRTYPE
            info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
        else:
            raise ValueError(kind)


def mendix_snapshot(path, dump_path, files=None):
    """A Mendix-style full snapshot: .metadata, db/db.backup and tree/, gzip-compressed, no manifest."""
    metadata = {"duration": "1", "dumpSize": str(os.path.getsize(dump_path)), "modelVersion": "1.0.0.42",
                "databaseSize": "0", "filesSize": "0"}
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, ".metadata", json.dumps(metadata).encode())
        tar.add(dump_path, arcname="db/db.backup")
        for name, content in (files or {}).items():
            _add_bytes(tar, "tree/" + name, content)


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
