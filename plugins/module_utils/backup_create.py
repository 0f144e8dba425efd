# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_create: dump an environment's databases and file store into one archive in its catalog."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive, encryption, migrations
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import entry_result, planned_result
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    isoformat,
    new_backup_id,
    fsync_dir,
    remove_path,
    sha256_file,
    tree_size,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment


def create(params, check_mode=False):
    environment = Environment(params)
    try:
        return _create(environment, params, check_mode)
    finally:
        environment.close()


def _create(environment, params, check_mode):
    # A key that cannot be used fails first: in check mode as for real, and before anything connects.
    encryption.writer_options(params)
    label = params.get("label")
    if params.get("layout") == "per_project" and not os.path.isdir(os.path.dirname(os.path.abspath(params["dest"]))):
        raise LifeboatError("the directory of dest %s does not exist" % params["dest"])
    existing, warnings = _labelled(environment, label)
    if existing:
        return {"changed": False, "backup": entry_result(existing), "warnings": warnings}
    for target in environment.targets.values():
        if not environment.engine.exists(target):
            raise LifeboatError("database %s of environment %s does not exist" % (target, environment.name))
    if environment.files_path and not os.path.isdir(environment.files_path):
        raise LifeboatError("files_path %s of environment %s is not a directory"
                            % (environment.files_path, environment.name))
    if check_mode:
        planned = planned_result(label=label, comment=params.get("comment"),
                                 databases=[{"name": name, "size": None, "sha256": None}
                                            for name in environment.targets])
        return {"changed": True, "backup": planned, "warnings": warnings}
    with environment.catalog.lock(environment.name, "backup"):
        existing, warnings = _labelled(environment, label)
        if existing:
            return {"changed": False, "backup": entry_result(existing), "warnings": warnings}
        environment.catalog.clean_tmp(environment.name)
        work = tempfile.mkdtemp(prefix="backup-", dir=environment.catalog.tmp_dir(environment.name))
        try:
            entry, written = _write(environment, params, work)
        finally:
            remove_path(work)
    return {"changed": True, "backup": entry_result(entry), "warnings": warnings + written}


def _labelled(environment, label):
    """The backup that has ``label`` already, or None; and the warnings of listing the catalog for it."""
    catalog, name = environment.catalog, environment.name
    if not label or environment.params.get("layout") == "per_project" or not os.path.isdir(catalog.env_dir(name)):
        return None, []
    entries = catalog.entries(name)
    return entries.find_by_label(label), entries.warnings


def _write(environment, params, work):
    started = time.monotonic()
    created = utcnow()
    backup_id = new_backup_id(created)
    dumps = []
    database_size = 0
    for name, target in environment.targets.items():
        path = os.path.join(work, name + ".backup")
        environment.engines[name].dump(target, path)
        database_size += environment.engine.database_size(target)
        dumps.append((name, path))
    files_size = tree_size(environment.files_path)[1] if environment.files_path else 0
    manifest = {
        "backup_id": backup_id,
        "label": params.get("label"),
        "comment": params.get("comment"),
        "created_at": isoformat(created),
        "environment": environment.name,
        "engine": environment.engine.name,
        "server_version": environment.engine.server_version(),
        "tool_version": params.get("_tool_version"),  # the collection's, from the action plugin
    }
    versions = {name: migrations.current_version(environment.engines[name], target)
                for name, target in environment.targets.items()}
    if versions[MAIN] is not None:
        manifest["structure_version"] = versions[MAIN]
    linked = {name: version for name, version in versions.items() if name != MAIN and version is not None}
    if linked:
        manifest["linked_structure_versions"] = linked
    metadata = archive.mendix_metadata(
        time.monotonic() - started, sum(os.path.getsize(p) for _n, p in dumps), params.get("model_version") or "",
        database_size, files_size)
    sealed = encryption.writer_options(params)
    suffix = archive.suffix_for(params["compression"], encrypted=sealed is not None)
    if params.get("layout") == "per_project":
        return _write_per_project(environment, params, dumps, manifest, metadata, versions, sealed), []
    # Beside, not inside, the work directory: the catalog takes finished archives from .tmp only.
    tmp_archive = os.path.join(os.path.dirname(work), backup_id + suffix + ".part")
    manifest, warnings = _write_file(tmp_archive, params, sealed, manifest, metadata, dumps, environment.files_path)
    entry = dict(manifest)
    entry.update(
        id=backup_id,
        databases=[{"name": d["name"], "database": environment.targets[d["name"]], "size": d["size"],
                    "sha256": d["sha256"]} for d in manifest["databases"]],
        files={"count": manifest["files"]["count"], "size": manifest["files"]["size"]} if manifest["files"] else None,
        compression=params["compression"],
        encryption=encryption.recipients_of(params),
        origin="created",
        duration=round(time.monotonic() - started, 3),
    )
    for key in ("backup_id", "format", "format_version", "metadata_sha256"):
        entry.pop(key, None)
    try:
        return environment.catalog.add(environment.name, entry, tmp_archive, suffix), warnings
    finally:
        remove_path(tmp_archive)


def _write_file(path, params, sealed, manifest, metadata, dumps, files_path):
    """One archive at ``path``, flushed to disk; removed again if anything fails."""
    try:
        with open(path, "wb") as handle:
            # The whole archive is encrypted as it streams out: no plaintext copy ever reaches the disk.
            with age.AgeWriter(handle, **sealed) if sealed else contextlib.nullcontext(handle) as sink:
                written = archive.write_archive(sink, manifest=manifest, metadata=metadata, databases=dumps,
                                                files_path=files_path, compression=params["compression"])
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        remove_path(path)
        raise
    return written


def _write_per_project(environment, params, dumps, manifest, metadata, versions, sealed):
    """``dest`` for the main database (and the file store), ``<dest root>.<name><ext>`` for each linked project,
    each a complete archive of its one database: for tools that exchange one file per project."""
    written = []
    for name, dump in dumps:
        dest = params["dest"] if name == MAIN else archive.per_project_path(params["dest"], name)
        part = dest + ".lb_part"
        own = dict(manifest, project=name)
        own.pop("structure_version", None)
        own.pop("linked_structure_versions", None)
        if versions[name] is not None:
            own["structure_version"] = versions[name]
        files_path = environment.files_path if name == MAIN else None
        _write_file(part, params, sealed, own, metadata, [(MAIN, dump)], files_path)
        os.chmod(part, 0o600)
        os.replace(part, dest)
        fsync_dir(os.path.dirname(os.path.abspath(dest)))
        written.append({"name": name, "path": dest, "size": os.path.getsize(dest), "sha256": sha256_file(dest)})
    main = written[0]
    return dict(manifest, id=manifest["backup_id"], path=main["path"], size=main["size"], sha256=main["sha256"],
                databases=[{"name": w["name"], "size": w["size"], "sha256": w["sha256"]} for w in written],
                projects=written, encryption=encryption.recipients_of(params))
