# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put a backup, or a kept previous copy, in place of an environment's data without ever losing the data it replaces.

Under the environment lock: settle a swap an earlier run left half done, clear leftovers, build every staging copy
(touching nothing the environment runs on), write the swap journal, run its operations, then record the result.
The journal knows no engine: the engine that emitted an operation says whether it is done, applies it, undoes one
that never began and names what it touches (see engines/base.py). restoring.py builds the staging copies from an
archive and swaps them in through here; a rollback swaps a kept previous copy back; backup_prune drops previous
copies through here. See docs/internals.md ("Restore, step by step").
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import STATE_NAME
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    atomic_write_json,
    remove_path,
)


# --- the swap journal -----------------------------------------------------------------------------

def write_journal(environment, journal):
    atomic_write_json(environment.journal_path(), journal)


def run_ops(environment, journal, terminate):
    ops = journal["ops"]
    while journal["progress"] < len(ops):
        op = ops[journal["progress"]]
        if not environment.engine.done(op):
            environment.engine.apply(op, terminate)
        journal["progress"] += 1
        write_journal(environment, journal)


@contextlib.contextmanager
def cleanup_on_error(cleanup, errors=BaseException):
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


@contextlib.contextmanager
def _begun(journal):
    """A full disk once an operation is done is no "nothing was changed" (what runner says of one): say what is."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC or not journal["progress"]:
            raise
        raise LifeboatError("no space left on device (%s) in the middle of the swap of backup %s: the swap has begun "
                            "and the next run finishes it; free some space and run again"
                            % (exc.filename or "disk", _name(journal["backup"]))) from exc


def swap(environment, journal, terminate, discard):
    """Journal, then swap. A swap refused at its first step (sessions came back) undoes itself at once."""
    write_journal(environment, journal)
    with _begun(journal), cleanup_on_error(lambda: _undo_unstarted(environment, journal, discard), LifeboatError):
        run_ops(environment, journal, terminate)
    with _begun(journal):
        return finish(environment, journal)


def _unstarted(environment, journal):
    return journal["progress"] == 0 and bool(journal["ops"]) and not environment.engine.done(journal["ops"][0])


def _undo_unstarted(environment, journal, discard):
    if _unstarted(environment, journal):
        _undo(environment, journal)
        discard(environment)


def _undo(environment, journal):
    environment.engine.undo(journal["ops"][0])
    os.unlink(environment.journal_path())


def finish(environment, journal):
    """After the commit point: open the new data, record it, drop copies beyond keep_previous."""
    generation = journal["generation"]
    prev_names = [d["previous"] for d in generation["databases"]]
    environment.engine.after_swap([d["target"] for d in journal["targets"]], prev_names)
    state = checked_state(environment)
    previous = list(state.get("previous", []))
    if journal.get("consumes"):
        previous = [g for g in previous if g["stamp"] != journal["consumes"]]
    # A run that died after writing the state finishes again: the generation is recorded once, not kept and dropped.
    previous = [g for g in previous if g != generation]
    if generation["databases"] or generation["files"]:
        previous.insert(0, generation)
    kept, dropped = previous[:journal["keep_previous"]], previous[journal["keep_previous"]:]
    for old in dropped:
        drop_generation(environment, old)
    state.update(current=journal["backup"], previous=kept)
    environment.catalog.write_state(environment.name, state)
    os.unlink(environment.journal_path())
    return generation if generation in kept else None


def drop_generation(environment, generation):
    for database in generation["databases"]:
        environment.engine.drop(database["previous"])
    if generation["files"]:
        remove_path(generation["files"])


def recover(environment):
    """Finish or undo a swap that an earlier run left half done. Returns a warning or None."""
    journal = environment.catalog.read_journal(environment.name)
    if journal is None:
        return None
    if journal.get("engine") != environment.engine.name:
        raise LifeboatError("the swap journal %s was written for engine %s; run again with that engine"
                            % (environment.journal_path(), journal.get("engine")))
    check_journal(environment, journal)
    if _unstarted(environment, journal):
        # The swap never began: the environment still runs on its old data.
        _undo(environment, journal)
        return "an interrupted restore of backup %s was undone; the environment kept its data" % journal["backup"]["id"]
    with _begun(journal):
        run_ops(environment, journal, terminate=True)
        finish(environment, journal)
    return "an interrupted restore of backup %s was completed" % journal["backup"]["id"]


# --- what a journal or the state may name -----------------------------------------------------------
# Both are files in the catalog and are acted on as root: a name in them is used only when the environment
# derives it itself (a target or the file store, their staging copy, or a previous copy with a time stamp).

_STAMP = re.compile(r"[0-9]{14}\Z")


def _namers(environment, base=None):
    """``(base, staging, previous_of(stamp), companion suffixes)`` of each target and of the file store."""
    engine = environment.engine
    namers = [(target, engine.staging_name(target), lambda stamp, target=target: engine.previous_name(target, stamp),
               engine.companion_suffixes) for target in environment.targets.values()]
    if environment.files:
        namers.append((environment.files.path, environment.files.staging, environment.files.previous_name, ()))
    return [namer for namer in namers if base is None or namer[0] == base]


def own_name(environment, name, base=None):
    """True when ``name`` is the environment's own (derived from ``base``, or from any of its targets or files)."""
    if not isinstance(name, str):
        return False
    for candidate, staging, previous_of, suffixes in _namers(environment, base):
        for each in [name] + [name[:-len(s)] for s in suffixes if name.endswith(s)]:
            stamp = _STAMP.search(each)
            if each in (candidate, staging) or stamp and each == previous_of(stamp.group()):
                return True
    return False


def _copy_of(environment, name, base):
    """True when ``name`` is a staging or previous copy of ``base`` (a target or the file store), not ``base``."""
    return name != base and own_name(environment, name, base)


def _refuse(path, value):
    raise LifeboatError("%s names %r, which is not one of this environment's databases or paths (a target, the file "
                        "store, or their staging or previous copies): refusing to act on it; was the catalog tampered "
                        "with? Check the file and move it aside" % (path, value))


def check_generation(environment, generation, path):
    """A previous copy from the state or a journal: only the environment's own previous copies."""
    if not isinstance(generation, dict) or not isinstance(generation.get("databases"), list):
        _refuse(path, generation)
    for database in generation["databases"]:
        target = database.get("target") if isinstance(database, dict) else None
        if target not in environment.targets.values() or not _copy_of(environment, database.get("previous"), target):
            _refuse(path, database)
    files = generation.get("files")
    if files is not None and not (environment.files and _copy_of(environment, files, environment.files.path)):
        _refuse(path, files)


def checked_state(environment):
    """The environment's state, its previous copies checked (they are dropped or swapped back in)."""
    state = environment.state()
    previous = state.get("previous") or []
    path = os.path.join(environment.catalog.env_dir(environment.name), STATE_NAME)
    if not isinstance(previous, list):
        _refuse(path, previous)
    for generation in previous:
        check_generation(environment, generation, path)
    return state


def check_journal(environment, journal):
    """Refuse a journal that names anything the environment would not derive itself, before any step is taken."""
    path = environment.journal_path()
    ops = journal.get("ops")
    if not isinstance(ops, list) or not isinstance(journal.get("progress"), int) \
            or not 0 <= journal["progress"] <= len(ops) or not isinstance(journal.get("keep_previous"), int) \
            or not isinstance(journal.get("backup"), dict):
        _refuse(path, sorted(journal))
    targets = [item.get("target") for item in journal.get("targets") or [] if isinstance(item, dict)]
    if sorted(targets) != sorted(environment.targets.values()):
        _refuse(path, targets)
    check_generation(environment, journal.get("generation"), path)
    for op in ops:
        names = environment.engine.touches(op) if isinstance(op, dict) else None
        if names is None:
            _refuse(path, op)
        for name, target in names:
            if target is None and not own_name(environment, name):
                _refuse(path, name)
            if target is not None and (target not in environment.targets.values()
                                       or not _copy_of(environment, name, target)):
                _refuse(path, [target, name])


def begin(environment):
    """Under the lock, before anything else: settle an interrupted swap, clear leftovers. Returns warnings."""
    warning = recover(environment)
    remove_leftovers(environment)
    return [warning] if warning else []


def remove_leftovers(environment):
    """Staging copies and temporary files: of runs that died before their swap began, or of this one failing."""
    for target in environment.targets.values():
        environment.engine.drop(environment.engine.staging_name(target))
    if environment.files and os.path.lexists(environment.files.staging):
        remove_path(environment.files.staging)
    environment.catalog.clean_tmp(environment.name)


# --- the journal of a swap, rollback and the result ----------------------------------------------

def new_journal(environment, params, pairs, ops, stamp, files_previous, backup, replaced, consumes=None):
    """The journal of a swap: its operations, how far they got, and the previous copies it makes."""
    return {
        "engine": environment.engine.name,
        "ops": ops,
        "progress": 0,
        "backup": backup,
        "consumes": consumes,
        "keep_previous": params["keep_previous"],
        "targets": [{"name": name, "target": target} for name, target in environment.targets.items()],
        "generation": {
            "stamp": stamp,
            "backup": replaced,
            "databases": [{"target": t, "previous": p} for t, _s, p in pairs if p],
            "files": files_previous,
        },
    }


def rollback(environment, params, check_mode):
    """Swap the newest kept previous copy back in; what it replaces is kept in turn."""
    started = time.monotonic()
    state = checked_state(environment)
    previous = state.get("previous") or []
    if not previous:
        raise LifeboatError("environment %s has no previous copy to roll back to" % environment.name)
    generation = previous[0]
    current = state.get("current")
    target_back = generation.get("backup")
    if check_mode:
        return result(True, current, target_back or {}, None, started, [])
    engine, files = environment.engine, environment.files
    with environment.catalog.lock(environment.name, "rollback"):
        warnings = begin(environment)
        generation = (checked_state(environment).get("previous") or [generation])[0]
        engine.check_sessions(environment.targets.values(), params["terminate_sessions"])
        stamp = environment.stamp()
        pairs = []
        for database in generation["databases"]:
            target = database["target"]
            if not engine.exists(database["previous"]):
                raise LifeboatError("previous copy %s of %s is gone; cannot roll back" % (database["previous"], target))
            newer = engine.previous_name(target, stamp) if engine.exists(target) else None
            pairs.append((target, database["previous"], newer))
        ops = engine.swap_ops(pairs)
        files_previous = None
        if generation["files"]:
            if os.path.lexists(files.path):
                files_previous = files.previous_name(stamp)
            ops.extend(files.swap_ops(generation["files"], files_previous))
        journal = new_journal(environment, params, pairs, ops, stamp, files_previous, backup=target_back,
                              replaced=current, consumes=generation["stamp"])
        # A rollback keeps what it replaces, whatever keep_previous says: it is how to undo the rollback.
        journal["keep_previous"] = max(params["keep_previous"], 1)
        kept = swap(environment, journal, params["terminate_sessions"], lambda _environment: None)
    return result(True, current, target_back or {}, kept, started, warnings)


def _name(backup):
    """How --diff names a backup: its id, or the archive it came from."""
    return (backup.get("id") or backup.get("src")) if backup else None


def _describe(backup):
    if not backup:
        return None
    return {"id": backup.get("id"), "label": backup.get("label"), "src": backup.get("src")}


def result(changed, current, source, kept, started, warnings):
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
