# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore a backup: resolve the archive, build every staging copy from it, then swap them in (swap.py).

backup_restore and backup_upload (``restore: true``) restore through here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import archive, encryption
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    copy_owner_mode,
    isoformat,
    remove_path,
    sha256_file,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import MAIN
from ansible_collections.lifeboat.backup.plugins.module_utils.swap import (
    begin,
    checked_state,
    cleanup_on_error,
    new_journal,
    remove_leftovers,
    result,
    swap,
)


def resolve_source(environment, params, verify):
    """The archive to restore: a catalog entry or a file on the node, with what identifies it."""
    if params.get("src"):
        src = params["src"]
        if not os.path.isfile(src):
            raise LifeboatError("archive %s does not exist on this node" % src)
        digests = [sha256_file(src)]
        # Per-project files beside it are part of what is restored: a changed one is a different restore.
        for name in list(environment.targets)[1:]:
            project = archive.per_project_path(src, name)
            if os.path.isfile(project):
                digests.append(name + ":" + sha256_file(project))
        digest = digests[0] if len(digests) == 1 else hashlib.sha256("\n".join(digests).encode()).hexdigest()
        return {"id": None, "label": None, "src": src, "sha256": digest, "path": src}
    catalog, name = environment.catalog, environment.name
    entry = catalog.entries(name).resolve(params.get("backup") or "latest")
    path = catalog.archive_path(entry)
    if not os.path.isfile(path):
        raise LifeboatError("the archive of backup %s is missing: %s" % (entry["id"], path))
    if verify and sha256_file(path) != entry["sha256"]:
        raise LifeboatError("the archive of backup %s is damaged: its SHA-256 no longer matches the catalog (%s)"
                            % (entry["id"], path))
    return {"id": entry["id"], "label": entry.get("label"), "src": None, "sha256": entry["sha256"], "path": path}


def _same(current, source):
    return bool(current) and current.get("sha256") == source["sha256"]


def restore(environment, params, check_mode, updater=None):
    """Restore the backup ``params`` name (``src`` or ``backup``). ``updater``: see ``stage``."""
    started = time.monotonic()
    if check_mode:
        source = resolve_source(environment, params, verify=True)
        # Opening the stream proves the key: a wrong one fails here, as it would for real.
        with encryption.open_source(source["path"], params):
            pass
        current = environment.state().get("current")
        changed = params["force"] or not _same(current, source)
        return result(changed, current, source, None, started, [])
    with environment.catalog.lock(environment.name, "restore"):
        warnings = begin(environment)
        source = resolve_source(environment, params, verify=False)
        # Checked before anything is staged: finish drops previous copies that the state names.
        current = checked_state(environment).get("current")
        if not params["force"] and _same(current, source):
            return result(False, current, source, None, started, warnings)
        environment.engine.check_sessions(environment.targets.values(), params["terminate_sessions"])
        with cleanup_on_error(lambda: remove_leftovers(environment)):
            journal = stage(environment, params, source, warnings, updater)
        kept = swap(environment, journal, params["terminate_sessions"], remove_leftovers)
        environment.catalog.clean_tmp(environment.name)
    done = result(True, current, source, kept, started, warnings)
    done.update(structure=journal["structure"], created_empty=journal["created_empty"])
    return done


def stage(environment, params, source, warnings, updater=None):
    """Open the archive and build every staging copy; returns the journal of the swap. Touches nothing the
    environment runs on. ``updater`` (structure_update's part) has ``check(manifest)``, called before anything is
    staged, and ``update(name, staging, warnings)``, which updates one staging copy and says how, or returns None."""
    work = tempfile.mkdtemp(prefix="restore-", dir=environment.catalog.tmp_dir(environment.name))
    files = environment.files
    if files and not os.path.isdir(os.path.dirname(files.staging)):
        raise LifeboatError("the parent directory of files_path %s does not exist" % files.path)
    # A catalog archive is checked against its entry as it streams: one swapped for another valid archive is refused.
    contents = encryption.read_source(source["path"], params, sha256=source["sha256"] if source["id"] else None,
                                      db_dir=os.path.join(work, "db"), tree_dir=files.staging if files else None,
                                      keep_unsafe_modes=params.get("keep_unsafe_modes", False))
    if MAIN not in contents.databases:
        raise LifeboatError("archive %s holds no main database (db/db.backup)" % source["path"])
    if updater:
        updater.check(contents.manifest or {})
    dumps = _project_dumps(environment, params, source, contents, work)
    pairs = []
    updates = {}
    created_empty = []
    stamp = environment.stamp()
    for name, target in environment.targets.items():
        staging = environment.engine.staging_name(target)
        if dumps.get(name):
            environment.engines[name].stage(target, dumps[name], staging, owner=params.get("owner"))
        else:
            environment.engines[name].stage_empty(target, staging, owner=params.get("owner"))
            created_empty.append(name)
            warnings.append("linked project %s has no dump in the backup; it gets a new, empty database" % name)
        updated = updater.update(name, staging, warnings) if updater else None
        if updated:
            updates[name] = updated
        previous = environment.engine.previous_name(target, stamp) if environment.engine.exists(target) else None
        pairs.append((target, staging, previous))
    ops = environment.engine.swap_ops(pairs)
    files_previous = None
    if files and contents.tree is not None:
        if os.path.lexists(files.path):
            copy_owner_mode(files.path, files.staging, recursive=True)
            files_previous = files.previous_name(stamp)
        ops.extend(files.swap_ops(files.staging, files_previous))
    elif files:
        warnings.append("the archive has no file store; %s was left as it is" % files.path)
    remove_path(work)
    backup = {"id": source["id"], "label": source["label"], "src": source["src"], "sha256": source["sha256"],
              "restored_at": isoformat(utcnow())}
    journal = new_journal(environment, params, pairs, ops, stamp, files_previous, backup=backup,
                          replaced=environment.state().get("current"))
    journal["structure"] = updates
    journal["created_empty"] = created_empty
    return journal


def _project_dumps(environment, params, source, contents, work):
    """Each database's dump: from the archive, or (linked projects) from its per-project file beside ``src``."""
    dumps = {}
    for name in environment.targets:
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
