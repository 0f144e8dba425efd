# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_restore: put a backup in place of an environment's data without ever losing the data it replaces.

See docs/internals.md ("Restore, step by step") for the sequence and the swap journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import archive, encryption, structure_update
from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import STATE_NAME
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    atomic_write_json,
    copy_owner_mode,
    isoformat,
    remove_path,
    sha256_file,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.base import (
    PREVIOUS_SUFFIX,
    apply_op,
    op_done,
    swap_path_ops,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN, Environment


# --- the swap journal -----------------------------------------------------------------------------

def _write_journal(env, journal):
    atomic_write_json(env.journal_path(), journal)


def _run_ops(env, journal, terminate):
    ops = journal["ops"]
    while journal["progress"] < len(ops):
        op = ops[journal["progress"]]
        if op["kind"] == "pg_swap":
            if not env.engine.swap_done(op):
                env.engine.apply_swap(op, terminate)
        else:
            apply_op(op)
        journal["progress"] += 1
        _write_journal(env, journal)


@contextlib.contextmanager
def _cleanup_on_error(cleanup, errors=BaseException):
    """Run ``cleanup`` when the block raises ``errors``. The block's error stays the one reported: a cleanup that
    fails too (say the server went away) is added to its message, never put in its place."""
    try:
        yield
    except errors as exc:
        try:
            cleanup()
        except Exception as problem:  # pylint: disable=broad-exception-caught  # reported with the cause
            if isinstance(exc, LifeboatError):
                raise LifeboatError("%s\n(cleaning up afterwards failed too: %s; the next run cleans up)"
                                    % (exc, problem)) from exc
            raise exc from None
        raise


def _swap(env, journal, terminate, discard):
    """Journal, then swap. A swap refused at its first step (sessions came back) undoes itself at once."""
    _write_journal(env, journal)
    with _cleanup_on_error(lambda: _undo_unstarted(env, journal, discard), LifeboatError):
        _run_ops(env, journal, terminate)


def _undo_unstarted(env, journal, discard):
    first = journal["ops"][0]
    started = env.engine.swap_done(first) if first["kind"] == "pg_swap" else op_done(first)
    if journal["progress"] == 0 and not started:
        os.unlink(env.journal_path())
        discard(env)


def _finish(env, journal):
    """After the commit point: open the new data, record it, drop copies beyond keep_previous."""
    generation = journal["generation"]
    prev_names = [d["previous"] for d in generation["databases"]]
    env.engine.after_swap([d["target"] for d in journal["targets"]], prev_names)
    state = checked_state(env)
    previous = list(state.get("previous", []))
    if journal.get("consumes"):
        previous = [g for g in previous if g["stamp"] != journal["consumes"]]
    if generation["databases"] or generation["files"]:
        previous.insert(0, generation)
    kept, dropped = previous[:journal["keep_previous"]], previous[journal["keep_previous"]:]
    for old in dropped:
        drop_generation(env, old)
    state.update(current=journal["backup"], previous=kept)
    env.catalog.write_state(env.name, state)
    os.unlink(env.journal_path())
    return generation if generation in kept else None


def drop_generation(env, generation):
    for database in generation["databases"]:
        env.engine.drop(database["previous"])
    if generation["files"]:
        remove_path(generation["files"])


def recover(env):
    """Finish or undo a swap that an earlier run left half done. Returns a warning or None."""
    journal = env.catalog.read_journal(env.name)
    if journal is None:
        return None
    if journal.get("engine") != env.engine.name:
        raise LifeboatError("the swap journal %s was written for engine %s; run again with that engine"
                            % (env.journal_path(), journal.get("engine")))
    check_journal(env, journal)
    first = journal["ops"][0] if journal["ops"] else None
    if journal["progress"] == 0 and first and first["kind"] == "pg_swap" and not env.engine.swap_done(first):
        # The commit point was never reached: the environment still runs on its old data.
        for target, _staging, previous in first["pairs"]:
            if previous and env.engine.exists(target):
                env.engine.server.set_allow_connections(target, True)
        os.unlink(env.journal_path())
        return "an interrupted restore of backup %s was undone; the environment kept its data" % journal["backup"]["id"]
    _run_ops(env, journal, terminate=True)
    _finish(env, journal)
    return "an interrupted restore of backup %s was completed" % journal["backup"]["id"]


# --- what a journal or the state may name -----------------------------------------------------------
# Both are files in the catalog and are acted on as root: a name in them is used only when the environment
# derives it itself (a target or the file store, their staging copy, or a previous copy with a time stamp).

_STAMP = re.compile(r"[0-9]{14}\Z")
_PATH_OPS = ("rename", "link", "replace")


def _derives(env, base, name, staging):
    stamp = _STAMP.search(name)
    return name in (base, staging) or bool(stamp) and name == (
        env.files_path + PREVIOUS_SUFFIX + stamp.group() if base == env.files_path
        else env.engine.previous_name(base, stamp.group()))


def own_name(env, name, base=None):
    """True when ``name`` is the environment's own (derived from ``base``, or from any of its targets or files)."""
    if not isinstance(name, str):
        return False
    bases = [base] if base is not None else list(env.targets.values()) + ([env.files_path] if env.files_path else [])
    for candidate in bases:
        staging = env.staging_files() if candidate == env.files_path else env.engine.staging_name(candidate)
        names = [name] + [name[:-len(s)] for s in env.engine.companion_suffixes
                          if candidate != env.files_path and name.endswith(s)]
        if any(_derives(env, candidate, each, staging) for each in names):
            return True
    return False


def _copy_of(env, name, base):
    """True when ``name`` is a staging or previous copy of ``base`` (a target or the file store), not ``base``."""
    return name != base and own_name(env, name, base)


def _refuse(path, value):
    raise LifeboatError("%s names %r, which is not one of this environment's databases or paths (a target, the file "
                        "store, or their staging or previous copies): refusing to act on it; was the catalog tampered "
                        "with? Check the file and move it aside" % (path, value))


def check_generation(env, generation, path):
    """A previous copy from the state or a journal: only the environment's own previous copies."""
    if not isinstance(generation, dict) or not isinstance(generation.get("databases"), list):
        _refuse(path, generation)
    for database in generation["databases"]:
        target = database.get("target") if isinstance(database, dict) else None
        if target not in env.targets.values() or not _copy_of(env, database.get("previous"), target):
            _refuse(path, database)
    files = generation.get("files")
    if files is not None and not (env.files_path and _copy_of(env, files, env.files_path)):
        _refuse(path, files)


def checked_state(env):
    """The environment's state, its previous copies checked (they are dropped or swapped back in)."""
    state = env.state()
    previous = state.get("previous") or []
    path = os.path.join(env.catalog.env_dir(env.name), STATE_NAME)
    if not isinstance(previous, list):
        _refuse(path, previous)
    for generation in previous:
        check_generation(env, generation, path)
    return state


def check_journal(env, journal):
    """Refuse a journal that names anything the environment would not derive itself, before any step is taken."""
    path = env.journal_path()
    ops = journal.get("ops")
    if not isinstance(ops, list) or not isinstance(journal.get("progress"), int) \
            or not 0 <= journal["progress"] <= len(ops) or not isinstance(journal.get("keep_previous"), int) \
            or not isinstance(journal.get("backup"), dict):
        _refuse(path, sorted(journal))
    targets = [item.get("target") for item in journal.get("targets") or [] if isinstance(item, dict)]
    if sorted(targets) != sorted(env.targets.values()):
        _refuse(path, targets)
    check_generation(env, journal.get("generation"), path)
    for op in ops:
        kind = op.get("kind") if isinstance(op, dict) else None
        if kind == "pg_swap" and isinstance(op.get("pairs"), list):
            for pair in op["pairs"]:
                target, staging, previous = pair if isinstance(pair, list) and len(pair) == 3 else (None,) * 3
                if target not in env.targets.values() or not _copy_of(env, staging, target) \
                        or previous is not None and not _copy_of(env, previous, target):
                    _refuse(path, pair)
        elif kind in _PATH_OPS:
            for key in ("src", "dst"):
                if not own_name(env, op.get(key)):
                    _refuse(path, op.get(key))
            if kind == "replace" and not isinstance(op.get("inode"), int):
                _refuse(path, op)
        else:
            _refuse(path, op)


def _begin(env):
    """Under the lock, before anything else: settle an interrupted swap, clear leftovers. Returns warnings."""
    warning = recover(env)
    remove_leftovers(env)
    return [warning] if warning else []


def remove_leftovers(env):
    """Staging copies and temporary files of runs that died before their swap began."""
    for target in env.targets.values():
        for name in env.engine.leftover_staging(target):
            env.engine.drop(name)
    staging = env.staging_files()
    if staging and os.path.lexists(staging):
        remove_path(staging)
    env.catalog.clean_tmp(env.name)


# --- what to restore --------------------------------------------------------------------------------

def resolve_source(env, params, verify):
    """The archive to restore: a catalog entry or a file on the node, with what identifies it."""
    if params.get("src"):
        src = params["src"]
        if not os.path.isfile(src):
            raise LifeboatError("archive %s does not exist on this node" % src)
        digests = [sha256_file(src)]
        # Per-project files beside it are part of what is restored: a changed one is a different restore.
        for name in list(env.targets)[1:]:
            project = archive.per_project_path(src, name)
            if os.path.isfile(project):
                digests.append(name + ":" + sha256_file(project))
        digest = digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest()
        return {"id": None, "label": None, "src": src, "sha256": digest, "path": src}
    if not os.path.isdir(env.catalog.env_dir(env.name)):
        raise LifeboatError("environment %s has no backups in catalog %s" % (env.name, env.catalog.root))
    entry = env.catalog.resolve(env.name, params.get("backup") or "latest")
    path = env.catalog.archive_path(entry)
    if not os.path.isfile(path):
        raise LifeboatError("the archive of backup %s is missing: %s" % (entry["id"], path))
    if verify and sha256_file(path) != entry["sha256"]:
        raise LifeboatError("the archive of backup %s is damaged: its SHA-256 no longer matches the catalog (%s)"
                            % (entry["id"], path))
    return {"id": entry["id"], "label": entry.get("label"), "src": None, "sha256": entry["sha256"], "path": path}


def _same(current, source):
    return bool(current) and current.get("sha256") == source["sha256"]


def _name(backup):
    """How --diff names a backup: its id, or the archive it came from."""
    return (backup.get("id") or backup.get("src")) if backup else None


def _describe(backup):
    if not backup:
        return None
    return {"id": backup.get("id"), "label": backup.get("label"), "src": backup.get("src")}


# --- the two operations -------------------------------------------------------------------------

def restore(params, check_mode=False):
    env = Environment(params)
    try:
        if params.get("rollback"):
            return _rollback(env, params, check_mode)
        return _restore(env, params, check_mode)
    finally:
        env.close()


def _check_sessions(env, terminate):
    for target in env.targets.values():
        count = env.engine.session_count(target)
        if count and not terminate:
            raise LifeboatError(
                "database %s is in use, %d session(s) connected (is the app still running?); stop the app or set "
                "terminate_sessions: true" % (target, count))
        if count and terminate and not env.engine.atomic_swap:
            env.engine.terminate_sessions(target)


def _restore(env, params, check_mode):
    started = time.monotonic()
    if check_mode:
        source = resolve_source(env, params, verify=True)
        # Opening the stream proves the key: a wrong one fails here, as it would for real.
        with encryption.open_source(source["path"], params):
            pass
        current = env.state().get("current")
        changed = params["force"] or not _same(current, source)
        return _result(changed, current, source, None, started, [])
    with env.catalog.lock(env.name, "restore"):
        warnings = _begin(env)
        source = resolve_source(env, params, verify=False)
        # Checked before anything is staged: _finish drops previous copies that the state names.
        current = checked_state(env).get("current")
        if not params["force"] and _same(current, source):
            return _result(False, current, source, None, started, warnings)
        _check_sessions(env, params["terminate_sessions"])
        with _cleanup_on_error(lambda: _discard_staging(env)):
            journal = _stage(env, params, source, warnings)
        _swap(env, journal, params["terminate_sessions"], _discard_staging)
        kept = _finish(env, journal)
        env.catalog.clean_tmp(env.name)
    result = _result(True, current, source, kept, started, warnings)
    result.update(structure=journal["structure"], created_empty=journal["created_empty"])
    return result


def _stage(env, params, source, warnings):
    """Open the archive and build every staging copy. Touches nothing the environment runs on."""
    work = tempfile.mkdtemp(prefix="restore-", dir=env.catalog.tmp_dir(env.name))
    staging_files = env.staging_files()
    if staging_files and not os.path.isdir(os.path.dirname(staging_files)):
        raise LifeboatError("the parent directory of files_path %s does not exist" % env.files_path)
    # A catalog archive is checked against its entry as it streams: one swapped for another valid archive is refused.
    contents = encryption.read_source(source["path"], params, sha256=source["sha256"] if source["id"] else None,
                                      db_dir=os.path.join(work, "db"), tree_dir=staging_files,
                                      keep_unsafe_modes=params.get("keep_unsafe_modes", False))
    if MAIN not in contents.databases:
        raise LifeboatError("archive %s holds no main database (db/db.backup)" % source["path"])
    update = params.get("structure_update")
    if update:
        _check_structure_version(contents.manifest or {}, update, params["force"])
    dumps = _project_dumps(env, params, source, contents, work)
    pairs = []
    updates = {}
    created_empty = []
    stamp = env.stamp()
    for name, target in env.targets.items():
        staging = env.engine.staging_name(target)
        if dumps.get(name):
            env.engines[name].stage(target, dumps[name], staging, owner=params.get("owner"))
        else:
            env.engines[name].stage_empty(target, staging, owner=params.get("owner"))
            created_empty.append(name)
            warnings.append("linked project %s has no dump in the backup; it gets a new, empty database" % name)
        options = _update_options(env, name, update, params["force"])
        if options:
            # On the staging copy: a migration that fails leaves the environment untouched.
            updated = structure_update.update(env.engine.name, env.engines[name].params, staging, **options)
            warnings.extend(updated.pop("warnings", []))
            updates[name] = {key: updated.get(key) for key in ("applied", "version_before", "version_after")}
        previous = env.engine.previous_name(target, stamp) if env.engine.exists(target) else None
        pairs.append((target, staging, previous))
    ops = env.engine.swap_ops(pairs)
    files_previous = None
    if staging_files and contents.tree is not None:
        if os.path.lexists(env.files_path):
            copy_owner_mode(env.files_path, staging_files, recursive=True)
            files_previous = env.files_path + PREVIOUS_SUFFIX + stamp
        ops.extend(swap_path_ops(staging_files, env.files_path, files_previous))
    elif env.files_path:
        warnings.append("the archive has no file store; %s was left as it is" % env.files_path)
    remove_path(work)
    backup = {"id": source["id"], "label": source["label"], "src": source["src"], "sha256": source["sha256"],
              "restored_at": isoformat(utcnow())}
    journal = _journal(env, params, pairs, ops, stamp, files_previous, backup=backup,
                       replaced=env.state().get("current"))
    journal["structure"] = updates
    journal["created_empty"] = created_empty
    return journal


def _project_dumps(env, params, source, contents, work):
    """Each database's dump: from the archive, or (linked projects) from its per-project file beside ``src``."""
    dumps = {}
    for name in env.targets:
        if name in contents.databases:
            dumps[name] = contents.databases[name]
            continue
        project = archive.per_project_path(source["path"], name) if source["src"] else None
        if project and os.path.isfile(project):
            own = encryption.read_source(project, params, db_dir=os.path.join(work, "project-" + name), tree_dir=None)
            if MAIN not in own.databases:
                raise LifeboatError("per-project file %s holds no database (db/db.backup)" % project)
            dumps[name] = own.databases[MAIN]
    return dumps


def _update_options(env, name, update, force):
    """structure_update's options for one database: linked projects bring their own migrations, or none."""
    if not update:
        return None
    options = {key: update.get(key) for key in structure_update.UPDATE_KEYS}
    if name != MAIN:
        if name not in env.migrations:
            return None
        options.update(migrations=env.migrations[name], command=None)
    # force already said yes to a backup from a newer release.
    options["allow_newer"] = options["allow_newer"] or force
    return options


def _check_structure_version(manifest, update, force):
    """A backup from a newer release would break the app that runs now: refuse it unless forced."""
    backup_version = manifest.get("structure_version")
    if backup_version is not None and (not isinstance(backup_version, int) or isinstance(backup_version, bool)):
        raise LifeboatError("the archive's manifest gives structure_version as %.60r, not an integer: the archive was "
                            "altered or made by another tool; nothing was changed" % (backup_version,))
    project = structure_update.project_version(update["migrations"]) if update.get("migrations") else None
    if backup_version is not None and project is not None and backup_version > project and not force:
        raise LifeboatError(
            "backup %s has structure version %d, newer than the project's migrations (%d): restoring it would "
            "break the running app; deploy the newer release first, or set force: true to restore anyway"
            % (manifest.get("backup_id"), backup_version, project))


def _journal(env, params, pairs, ops, stamp, files_previous, backup, replaced, consumes=None):
    return {
        "engine": env.engine.name,
        "ops": ops,
        "progress": 0,
        "backup": backup,
        "consumes": consumes,
        "keep_previous": params["keep_previous"],
        "targets": [{"name": name, "target": target} for name, target in env.targets.items()],
        "generation": {
            "stamp": stamp,
            "backup": replaced,
            "databases": [{"target": t, "previous": p} for t, _s, p in pairs if p],
            "files": files_previous,
        },
    }


def _discard_staging(env):
    for target in env.targets.values():
        env.engine.drop(env.engine.staging_name(target))
    staging = env.staging_files()
    if staging and os.path.lexists(staging):
        remove_path(staging)
    env.catalog.clean_tmp(env.name)


def _rollback(env, params, check_mode):
    started = time.monotonic()
    state = checked_state(env)
    previous = state.get("previous") or []
    if not previous:
        raise LifeboatError("environment %s has no previous copy to roll back to" % env.name)
    generation = previous[0]
    current = state.get("current")
    target_back = generation.get("backup")
    if check_mode:
        return _result(True, current, target_back or {}, None, started, [])
    with env.catalog.lock(env.name, "rollback"):
        warnings = _begin(env)
        generation = (checked_state(env).get("previous") or [generation])[0]
        _check_sessions(env, params["terminate_sessions"])
        stamp = env.stamp()
        pairs = []
        for database in generation["databases"]:
            target = database["target"]
            if not env.engine.exists(database["previous"]):
                raise LifeboatError("previous copy %s of %s is gone; cannot roll back" % (database["previous"], target))
            newer = env.engine.previous_name(target, stamp) if env.engine.exists(target) else None
            pairs.append((target, database["previous"], newer))
        ops = env.engine.swap_ops(pairs)
        files_previous = None
        if generation["files"]:
            if os.path.lexists(env.files_path):
                files_previous = env.files_path + PREVIOUS_SUFFIX + stamp
            ops.extend(swap_path_ops(generation["files"], env.files_path, files_previous))
        journal = _journal(env, params, pairs, ops, stamp, files_previous, backup=target_back,
                           replaced=current, consumes=generation["stamp"])
        # A rollback keeps what it replaces, whatever keep_previous says: it is how to undo the rollback.
        journal["keep_previous"] = max(params["keep_previous"], 1)
        _swap(env, journal, params["terminate_sessions"], lambda _env: None)
        kept = _finish(env, journal)
    return _result(True, current, target_back or {}, kept, started, warnings)


def _result(changed, current, source, kept, started, warnings):
    restored = _describe(source)
    return {
        "changed": changed,
        "restored": restored,
        "previous": {
            "databases": [d["previous"] for d in kept["databases"]] if kept else [],
            "files": kept["files"] if kept else None,
        },
        "duration": round(time.monotonic() - started, 3),
        "warnings": warnings,
        "diff": {"before": {"backup": _name(current)}, "after": {"backup": _name(restored)}},
    }
