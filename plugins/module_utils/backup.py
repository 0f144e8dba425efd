# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create: dump an environment's databases and file store into one archive in its catalog."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive, encryption, structure
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    isoformat,
    new_backup_id,
    remove_path,
    tree_size,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment

TOOL_VERSION = "0.1.0"
# What a backup result and backup_info show of a catalog entry.
RESULT_KEYS = ("id", "label", "comment", "path", "size", "sha256", "created_at", "databases", "files", "encryption",
               "duration")


def entry_result(entry):
    return {key: entry.get(key) for key in RESULT_KEYS}


def create(params, check_mode=False):
    env = Environment(params)
    try:
        return _create(env, params, check_mode)
    finally:
        env.close()


def _create(env, params, check_mode):
    # A key that cannot be used fails first: in check mode as for real, and before anything connects.
    encryption.writer_options(params)
    label = params.get("label")
    existing = _labelled(env, label)
    if existing:
        return {"changed": False, "backup": entry_result(existing), "warnings": []}
    for target in env.targets.values():
        if not env.engine.exists(target):
            raise LifeboatError("database %s of environment %s does not exist" % (target, env.name))
    if env.files_path and not os.path.isdir(env.files_path):
        raise LifeboatError("files_path %s of environment %s is not a directory" % (env.files_path, env.name))
    if check_mode:
        planned = {key: None for key in RESULT_KEYS}
        planned.update(label=label, comment=params.get("comment"),
                       databases=[{"name": name, "size": None, "sha256": None} for name in env.targets])
        return {"changed": True, "backup": planned, "warnings": []}
    with env.catalog.lock(env.name, "backup"):
        existing = _labelled(env, label)
        if existing:
            return {"changed": False, "backup": entry_result(existing), "warnings": []}
        env.catalog.clean_tmp(env.name)
        work = tempfile.mkdtemp(prefix="backup-", dir=env.catalog.tmp_dir(env.name))
        try:
            entry, warnings = _write(env, params, work)
        finally:
            remove_path(work)
    return {"changed": True, "backup": entry_result(entry), "warnings": warnings}


def _labelled(env, label):
    if not label or not os.path.isdir(env.catalog.env_dir(env.name)):
        return None
    return env.catalog.find_by_label(env.name, label)


def _write(env, params, work):
    started = time.monotonic()
    created = utcnow()
    backup_id = new_backup_id(created)
    dumps = []
    database_size = 0
    for name, target in env.targets.items():
        path = os.path.join(work, name + ".backup")
        env.engine.dump(target, path)
        database_size += env.engine.database_size(target)
        dumps.append((name, path))
    files_size = tree_size(env.files_path)[1] if env.files_path else 0
    manifest = {
        "backup_id": backup_id,
        "label": params.get("label"),
        "comment": params.get("comment"),
        "created_at": isoformat(created),
        "environment": env.name,
        "engine": env.engine.name,
        "server_version": env.engine.server_version(),
        "tool_version": TOOL_VERSION,
    }
    structure_version = structure.current_version(env.engine.name, params, env.targets[MAIN])
    if structure_version is not None:
        manifest["structure_version"] = structure_version
    metadata = archive.mendix_metadata(
        time.monotonic() - started, sum(os.path.getsize(p) for _n, p in dumps), params.get("model_version") or "",
        database_size, files_size)
    sealed = encryption.writer_options(params)
    suffix = archive.suffix_for(params["compression"], encrypted=sealed is not None)
    # Beside, not inside, the work directory: the catalog takes finished archives from .tmp only.
    tmp_archive = os.path.join(os.path.dirname(work), backup_id + suffix + ".part")
    try:
        with open(tmp_archive, "wb") as handle:
            # The whole archive is encrypted as it streams out: no plaintext copy ever reaches the disk.
            with age.AgeWriter(handle, **sealed) if sealed else contextlib.nullcontext(handle) as sink:
                manifest, warnings = archive.write_archive(
                    sink, manifest=manifest, metadata=metadata, databases=dumps, files_path=env.files_path,
                    compression=params["compression"])
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        remove_path(tmp_archive)
        raise
    entry = dict(manifest)
    entry.update(
        id=backup_id,
        databases=[{"name": d["name"], "database": env.targets[d["name"]], "size": d["size"], "sha256": d["sha256"]}
                   for d in manifest["databases"]],
        files={"count": manifest["files"]["count"], "size": manifest["files"]["size"]} if manifest["files"] else None,
        compression=params["compression"],
        encryption=encryption.recipients_of(params),
        origin="created",
        duration=round(time.monotonic() - started, 3),
    )
    for key in ("backup_id", "format", "format_version", "metadata_sha256"):
        entry.pop(key, None)
    try:
        return env.catalog.add(env.name, entry, tmp_archive, suffix), warnings
    finally:
        remove_path(tmp_archive)
