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
from ansible_collections.lifeboat.backup.plugins.module_utils.backup_create import entry_result
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import JOURNAL_NAME, STATE_NAME, Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    SetupError,
    check_name,
    remove_path,
    sha256_file,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import derived_name

VERIFY_CHOICES = ["none", "checksum", "restore"]
# Scratch copies of verify: restore, beside the environment's database like the staging copies of a restore.
PG_VERIFY_SUFFIX = "__lb_verify"
VERIFY_SUFFIX = ".lb_verify"
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


def describe_previous(env, generation):
    return {
        "environment": env,
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
    entries, previous, current = [], [], {}
    for name in names:
        entries.extend(catalog.entries(name))
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
        damaged = _skipped(catalog, names, entries) + verify_checksums(catalog, entries)
        restored = None
        if verify == "restore" and not check_mode:
            restored, problem = verify_restore(params, damaged)
            if problem:
                damaged.append(problem)
        damaged.sort(key=lambda item: item["id"], reverse=True)  # ids sort by time: newest first
        result.update(damaged=damaged, verified={"checksum": [entry["id"] for entry in entries], "restore": restored})
    result["warnings"] = warnings + catalog.warnings
    return result


def _skipped(catalog, names, entries):
    """Entry files that the catalog could not list (archive missing, unreadable entry) count as damaged."""
    listed = {(entry["environment"], entry["id"]) for entry in entries}
    damaged = []
    for name in names:
        directory = catalog.env_dir(name)
        try:
            files = sorted(os.listdir(directory), reverse=True)
        except OSError:
            continue
        for file_name in files:
            if not file_name.endswith(".json") or file_name.startswith(".") or file_name in (STATE_NAME, JOURNAL_NAME):
                continue
            backup_id = file_name[:-len(".json")]
            if (name, backup_id) in listed:
                continue
            path = os.path.join(directory, file_name)
            reason = next((warning for warning in catalog.warnings if path + ":" in warning),
                          "its catalog entry %s cannot be read" % path)
            if os.path.exists(path):  # else removed by a prune since the listing
                damaged.append({"environment": name, "id": backup_id, "reason": reason})
    return damaged


def check_archive(catalog, entry):
    """None when the archive still has the SHA-256 its entry recorded, else why not."""
    path = catalog.archive_path(entry)
    if not entry.get("sha256"):
        return "its catalog entry records no SHA-256"
    try:
        digest = sha256_file(path)
    except FileNotFoundError:
        return "the archive %s is missing" % path
    except OSError as exc:
        return "the archive %s cannot be read (%s)" % (path, exc.strerror)
    if digest != entry["sha256"]:
        return "the archive %s is damaged: its SHA-256 is %s, the catalog says %s" % (path, digest, entry["sha256"])
    return None


def verify_checksums(catalog, entries):
    damaged = []
    for entry in entries:
        reason = check_archive(catalog, entry)
        entry_path = os.path.join(catalog.env_dir(entry["environment"]), entry["id"] + ".json")
        # A backup pruned while we read is gone, not damaged.
        if reason and os.path.exists(entry_path):
            damaged.append({"environment": entry["environment"], "id": entry["id"], "reason": reason})
    return damaged


def verify_restore(params, damaged):
    """Restore the chosen backup into a scratch copy and drop it: ``(verified, problem)``."""
    env = Environment(params)
    try:
        with env.catalog.lock(env.name, "verify"):
            entry = env.catalog.resolve(env.name, params.get("backup") or "latest")
            known = next((item for item in damaged if item["id"] == entry["id"]), None)
            if known:
                return None, None
            reason = check_archive(env.catalog, entry)
            if reason:
                return None, {"environment": env.name, "id": entry["id"], "reason": reason}
            return _restore_scratch(env, params, entry)
    finally:
        env.close()


def scratch_name(env, target):
    if env.engine.name == "postgresql":
        return derived_name(target, PG_VERIFY_SUFFIX)
    return target + VERIFY_SUFFIX


def _restore_scratch(env, params, entry):
    if entry.get("engine") and entry["engine"] != env.engine.name:
        raise LifeboatError("backup %s of environment %s was made with engine %s; set engine: %s (and its database "
                            "options) to verify it" % (entry["id"], env.name, entry["engine"], entry["engine"]))
    path = env.catalog.archive_path(entry)
    _require_key(path, params, entry)
    target = env.targets[MAIN]
    if env.engine.name == "sqlite" and not os.path.isdir(os.path.dirname(target)):
        raise LifeboatError("directory %s of SQLite database %s does not exist; the scratch copy is made there"
                            % (os.path.dirname(target), target))
    scratch = scratch_name(env, target)
    env.engine.drop(scratch)  # left by a verify that was killed
    env.engine.server_version()  # a server that cannot be reached fails the module, it does not damage the backup
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="verify-", dir=env.catalog.tmp_dir(env.name))
    try:
        contents = encryption.read_source(path, params, db_dir=os.path.join(work, "db"), tree_dir=None)
        if MAIN not in contents.databases:
            raise LifeboatError("archive %s holds no main database (db/db.backup)" % path)
        env.engine.stage(target, contents.databases[MAIN], scratch)
    except _KEY_ERRORS + (SetupError,):
        raise
    except LifeboatError as exc:
        return None, {"environment": env.name, "id": entry["id"], "reason": "cannot be restored: %s" % exc}
    finally:
        env.engine.drop(scratch)
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
