# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_info: list the catalog's backups and previous copies, and prove that backups are intact and restorable.

Listing reads entry files and state only: no lock, no key, nothing written. ``verify: checksum`` re-hashes
every archive; ``verify: restore`` also restores one backup into a scratch database beside the environment's
own and drops it again, holding the environment lock so that no restore or prune runs meanwhile.
"""

from __future__ import annotations

import os
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import age, encryption
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog, entry_result
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    SetupError,
    check_name,
    remove_path,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment

VERIFY_CHOICES = ["none", "checksum", "restore"]
# Age errors that mean the operator gave no or the wrong key, not that the archive is damaged.
_KEY_ERRORS = (age.AgeNoMatch, age.AgeUnsupported)


def describe(entry):
    """What backup_info shows of a catalog entry."""
    result = entry_result(entry)
    result.update(
        environment=entry["environment"],
        engine=entry.get("engine"),
        compression=entry.get("compression"),
        encryption=_encryption_mode(entry),
        origin=entry.get("origin") or "created",
    )
    return result


def _encryption_mode(entry):
    value = entry.get("encryption")
    if isinstance(value, dict):
        return value.get("mode") or "none"
    if isinstance(value, str):
        return value
    return "unknown" if entry.get("file", "").endswith(".age") else "none"


def describe_previous(name, generation):
    return {
        "environment": name,
        "stamp": generation.get("stamp"),
        "backup": (generation.get("backup") or {}).get("id"),
        "databases": [database["previous"] for database in generation.get("databases") or []],
        "files": generation.get("files"),
    }


def info(params, check_mode=False):
    catalog = Catalog(params["catalog"])
    warnings = []
    if params.get("environment"):
        names = [check_name(params["environment"], "environment")]
        if not os.path.isdir(catalog.env_dir(names[0])):
            warnings.append("environment %s has no directory in catalog %s: no backups" % (names[0], catalog.root))
            names = []
    else:
        names = catalog.environments()
    entries, skipped, previous, current = [], [], [], {}
    for name in names:
        listed = catalog.entries(name)
        entries.extend(listed)
        skipped.extend(dict(item, environment=name) for item in listed.skipped)
        warnings.extend(listed.warnings)
        state = catalog.read_state(name) or {}
        current[name] = state.get("current")
        previous.extend(describe_previous(name, generation) for generation in state.get("previous") or [])
    entries.sort(key=lambda entry: (entry["created_at"], entry["id"]), reverse=True)
    result = {
        "changed": False,
        "environments": names,
        "backups": [describe(entry) for entry in entries],
        "current": current,
        "previous": previous,
    }
    verify = params.get("verify") or "none"
    if verify != "none":
        damaged = _skipped(skipped) + verify_checksums(catalog, entries)
        restored = None
        if verify == "restore" and not check_mode:
            restored, problem = verify_restore(params, damaged)
            if problem:
                damaged.append(problem)
        damaged.sort(key=lambda item: item["id"], reverse=True)  # ids sort by time: newest first
        result.update(damaged=damaged, verified={"checksum": [entry["id"] for entry in entries], "restore": restored})
    result["warnings"] = warnings
    return result


def _skipped(skipped):
    """Entry files that the catalog could not list (archive missing, unreadable entry) count as damaged."""
    # An entry file removed since the listing was pruned, not damaged.
    return [{"environment": item["environment"], "id": item["id"], "reason": item["warning"]}
            for item in skipped if os.path.exists(item["path"])]


def verify_checksums(catalog, entries):
    damaged = []
    for entry in entries:
        reason = catalog.check_archive(entry)
        entry_path = os.path.join(catalog.env_dir(entry["environment"]), entry["id"] + ".json")
        # A backup pruned while we read is gone, not damaged.
        if reason and os.path.exists(entry_path):
            damaged.append({"environment": entry["environment"], "id": entry["id"], "reason": reason})
    return damaged


def verify_restore(params, damaged):
    """Restore the chosen backup into a scratch copy and drop it: ``(verified, problem)``."""
    environment = Environment(params)
    try:
        with environment.catalog.lock(environment.name, "verify"):
            entry = environment.catalog.entries(environment.name).resolve(params.get("backup") or "latest")
            known = next((item for item in damaged if item["id"] == entry["id"]), None)
            if known:
                return None, None
            reason = environment.catalog.check_archive(entry)
            if reason:
                return None, {"environment": environment.name, "id": entry["id"], "reason": reason}
            return _restore_scratch(environment, params, entry)
    finally:
        environment.close()


def _restore_scratch(environment, params, entry):
    if entry.get("engine") and entry["engine"] != environment.engine.name:
        raise LifeboatError("backup %s of environment %s was made with engine %s; set engine: %s (and its database "
                            "options) to verify it"
                            % (entry["id"], environment.name, entry["engine"], entry["engine"]))
    path = environment.catalog.archive_path(entry)
    _require_key(path, params, entry)
    target = environment.targets[MAIN]
    # A server that cannot be reached fails the module: it does not make the backup damaged.
    environment.engine.check_copy_place(target)
    scratch = environment.engine.scratch_name(target)
    environment.engine.drop(scratch)  # left by a verify that was killed
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="verify-", dir=environment.catalog.tmp_dir(environment.name))
    try:
        contents = encryption.read_source(path, params, db_dir=os.path.join(work, "db"), tree_dir=None)
        if MAIN not in contents.databases:
            raise LifeboatError("archive %s holds no main database (db/db.backup)" % path)
        environment.engine.stage(target, contents.databases[MAIN], scratch)
    except _KEY_ERRORS + (SetupError,):
        raise
    except LifeboatError as exc:
        return None, {"environment": environment.name, "id": entry["id"], "reason": "cannot be restored: %s" % exc}
    finally:
        environment.engine.drop(scratch)
        remove_path(work)
    return {"id": entry["id"], "scratch": scratch, "duration": round(time.monotonic() - started, 3)}, None


def _require_key(path, params, entry):
    """No key for an encrypted archive is the operator's mistake, not damage: fail before reading."""
    try:
        with open(path, "rb") as handle:
            encrypted = age.is_age(handle.read(64))
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s" % (path, exc.strerror))
    if encrypted and encryption.reader_options(params) is None:
        raise LifeboatError("backup %s of environment %s is encrypted; give encryption.passphrase, "
                            "encryption.identity or encryption.identity_file to verify it"
                            % (entry["id"], entry["environment"]))
