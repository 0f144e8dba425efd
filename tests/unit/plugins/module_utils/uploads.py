# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tests of backup_upload and backup_download share: archives of every kind, the module's parameters, and
an upload as the action plugin makes it."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import archive, backup_upload
from ansible_collections.lifeboat.backup.plugins.module_utils.common import sha256_file

PASSPHRASE = "correct horse battery staple"
PGDUMP = b"PGDMP\x01\x0e\x00" + bytes(range(256)) * 40
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changes file owners: needs root")


def lifeboat_archive(path, dump, files=None, compression="none", **extra):
    """An archive as backup_create writes it; ``extra`` adds or replaces manifest keys (checksums stay valid)."""
    manifest = {"backup_id": "20250101T000000Z-abcdef", "label": "nightly", "comment": None,
                "created_at": "2025-01-01T00:00:00Z", "environment": "prod", "engine": "sqlite",
                "server_version": "3.40", "tool_version": "0.1.0", "structure_version": 7}
    manifest.update(extra)
    metadata = archive.mendix_metadata(1, os.path.getsize(dump), "", 0, 0)
    with open(path, "wb") as handle:
        archive.write_archive(handle, manifest=manifest, metadata=metadata, databases=[("db", dump)],
                              files_path=files, compression=compression)
    return str(path)


def mendix_snapshot(path, dump_bytes, files=None):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(".metadata", b'{"modelVersion": "9.24.1"}'), ("db/db.backup", dump_bytes)] + sorted(
                (files or {}).items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def params(tmp_path, **extra):
    """backup_upload's parameters as AnsibleModule hands them over (defaults included)."""
    values = {
        "environment": "acc", "engine": "sqlite", "database": None, "path": str(tmp_path / "acc.db"),
        "files_path": None, "catalog": str(tmp_path / "catalog"), "src": "/controller/upload.tar",
        "label": None, "comment": None, "restore": False, "owner": None, "keep_previous": 1,
        "terminate_sessions": False, "force": False, "encryption": {"mode": "none"},
        "login_host": None, "login_port": 5432, "login_user": "postgres", "login_password": None,
        "login_unix_socket": None, "login_db": "postgres", "ssl_mode": "prefer", "ca_cert": None, "pg_bin_dir": None,
        "_sha256": None, "_size": None, "_uploaded": None,
    }
    values.update(extra)
    return values


def send(tmp_path, source, **extra):
    """What the action plugin does: checksum on the 'controller', probe, 'transfer' into a tmp dir, import."""
    values = params(tmp_path, src=source, _sha256=sha256_file(source), _size=os.path.getsize(source), **extra)
    probe = backup_upload.upload(values)
    if not probe.get("upload_needed"):
        return probe, None
    remote_tmp = tmp_path / "remote-tmp"
    remote_tmp.mkdir(exist_ok=True)
    uploaded = remote_tmp / "lifeboat-upload"
    uploaded.write_bytes(open(source, "rb").read())
    return backup_upload.upload(dict(values, _uploaded=str(uploaded))), str(uploaded)
