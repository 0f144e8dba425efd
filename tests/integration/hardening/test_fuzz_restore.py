# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fuzzing backup_restore on SQLite: hundreds of mutated archives (tests/fuzzing.py) restored with ``src:``.

The known backup is a real SQLite database and a file store, written with archive.write_archive; the live
environment holds other data. Each case is restored in-process through ``restore(params)``, with the parameters
backup_restore's main() builds, into a fresh copy of the live environment. It must end in one of:

- success, with the database and the file store equal to the known backup (or, where the mutation left no
  manifest to check against or changed data with the manifest to match, to what the archive carries);
- LifeboatError (the module's failure ``msg``), with the database and the file store unchanged and nothing
  left beside them or in the catalog: no staging copy, no journal, no temporary files;

never another exception, and within the budget of fuzzing.Budget (Python heap; bytes written at most twice the
tar the case carries plus three times the known backup, for the extraction, the staging copy and the journal).
A failure names the seed and the case number; ``-k cases_0100`` reruns its chunk.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import tempfile

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import LOCK_NAME
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.backup_restore import restore
from ansible_collections.lifeboat.backup.plugins.modules import backup_restore
from ansible_collections.lifeboat.backup.tests import fuzzing
from datasets import files_snapshot, sqlite_snapshot

CHUNKS = 10
PER_CHUNK = 50
MEMORY = 64 * fuzzing.MIB
SLACK = fuzzing.MIB
_DATA = random.Random(fuzzing.SEED)
FILES = {
    "readme.txt": b"backed up\n",
    "invoices/2026/inv-1.pdf": _DATA.randbytes(6000),
    "invoices/empty": b"",
    "\u00fcn\u00efc\u00f8d\u00e9/\u0444\u0430\u0439\u043b.txt": "\u043f\u0440\u0438\u0432\u0435\u0442".encode(),
}


def make_database(path, names):
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, photo BLOB)")
    connection.executemany("INSERT INTO customers (name, photo) VALUES (?, ?)",
                           [(name, _DATA.randbytes(300)) for name in names])
    connection.commit()
    connection.close()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """Where cases run, on tmpfs when there is one: hundreds of restores with their fsyncs would take minutes."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else str(tmp_path_factory.mktemp("fuzz"))
    path = tempfile.mkdtemp(prefix="lifeboat-fuzz-", dir=parent)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """The known backup (fuzzing.Base), what restoring it gives, and a live environment to copy for each case."""
    root = str(tmp_path_factory.mktemp("known"))
    make_database(os.path.join(root, "backup.db"), ["Zo\u00eb \u00c5ngstr\u00f6m", "\u674e\u5c0f\u9f8d", "plain"])
    with open(os.path.join(root, "backup.db"), "rb") as handle:
        base = fuzzing.write_base(root, {"db": handle.read()}, FILES, ("empty_dir",))
    live = os.path.join(root, "live")
    os.makedirs(os.path.join(live, "app", "files", "live-only"))
    make_database(os.path.join(live, "app", "app.db"), ["live customer"])
    with open(os.path.join(live, "app", "files", "readme.txt"), "wb") as handle:
        handle.write(b"live data, newer than the backup\n")
    return {
        "base": base,
        "backup": (sqlite_snapshot(os.path.join(root, "backup.db")), files_snapshot(os.path.join(root, "store"))),
        "template": live,
        "live": (sqlite_snapshot(os.path.join(live, "app", "app.db")),
                 files_snapshot(os.path.join(live, "app", "files"))),
    }


@pytest.fixture(scope="module")
def params(scratch):
    """What backup_restore's main() hands to restore(): its argument spec with defaults applied."""
    env = os.path.join(scratch, "env")
    args = {"environment": "fuzz", "engine": "sqlite", "path": os.path.join(env, "app", "app.db"),
            "files_path": os.path.join(env, "app", "files"), "catalog": os.path.join(env, "catalog"),
            "src": os.path.join(scratch, "case.tar")}
    captured = {}
    with patch_module_args(args), pytest.MonkeyPatch.context() as patch:
        patch.setattr(backup_restore, "run_module", lambda module, operation: captured.update(module.params))
        backup_restore.main()
    return captured


@pytest.mark.parametrize("chunk", range(CHUNKS), ids=lambda c: "cases_%04d" % (c * PER_CHUNK))
def test_mutated_archives_restore_or_leave_the_environment_alone(known, params, scratch, chunk):
    failures = []
    for index in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        case = fuzzing.mutate(known["base"], index)
        problems = restore_case(case, known, params, scratch)
        if problems:
            failures.append("%s:\n    %s" % (case, "\n    ".join(problems)))
    assert not failures, "%d of %d cases failed:\n%s" % (len(failures), PER_CHUNK, "\n".join(failures))


def restore_case(case, known, params, scratch):
    """Restore ``case`` into a fresh copy of the live environment; the ways it broke the contract."""
    env = os.path.join(scratch, "env")
    if os.path.lexists(env):
        shutil.rmtree(env)
    shutil.copytree(known["template"], env, symlinks=True)
    with open(params["src"], "wb") as handle:
        handle.write(case.data)
    budget = fuzzing.Budget(memory=MEMORY, disk=2 * case.carried + 3 * known["base"].size + SLACK)
    problems = []
    try:
        with budget:
            restore(dict(params))
    except LifeboatError:
        problems.extend(differences(params, known["live"], "refused it"))
        problems.extend(left_behind(env, known["template"]))
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any other exception is what the test looks for
        problems.append("raised %s" % fuzzing.innermost(exc))
        problems.extend(differences(params, known["live"], "raised"))
        problems.extend(left_behind(env, known["template"]))
    else:
        problems.extend(differences(params, expected_after_success(case, known, scratch), "restored it"))
    problems.extend(budget.problems())
    return problems


def expected_after_success(case, known, scratch):
    """The known backup; where the archive has no manifest (nothing could be checked) or had data changed with the
    manifest to match (a valid archive of other data), what it carries."""
    carried = fuzzing.carried(case.data)
    if carried.manifest and not case.resigned:
        return known["backup"]
    dump = os.path.join(scratch, "carried.db")
    with open(dump, "wb") as handle:
        handle.write(carried.dumps["db"])
    try:
        database = sqlite_snapshot(dump)
    except sqlite3.DatabaseError as exc:  # restored although it does not open
        database = "unreadable (%s)" % exc
    finally:
        os.unlink(dump)
    if not carried.tree:  # no file store in the archive: the live one stays
        return database, known["live"][1]
    files = {path: hashlib.sha256(content).hexdigest() for path, content in carried.files.items()}
    files.update((directory + "/", None) for directory in carried.directories)
    return database, files


def differences(params, expected, when):
    """How the environment's database and file store differ from ``expected`` after the restore ``when``."""
    database, files = sqlite_snapshot(params["path"]), files_snapshot(params["files_path"])
    found = []
    if database != expected[0]:
        found.append("the database differs from what it should be after it %s" % when)
    if files != expected[1]:
        found.append("the file store differs from what it should be after it %s: extra %s, missing %s" % (
            when, sorted(set(files) - set(expected[1])), sorted(set(expected[1]) - set(files))))
    return found


def left_behind(env, template):
    """Files a refused restore left in the environment (the catalog's lock aside), and directories outside the
    catalog: staging copies, journals, temporary files."""
    before = _paths(template)
    found = [path for path in _paths(env) - before if os.path.basename(path) != LOCK_NAME
             and not (path.split("/")[0] == "catalog" and os.path.isdir(os.path.join(env, path)))]
    return ["left %r behind" % sorted(found)] if found else []


def _paths(root):
    found = set()
    for directory, dirs, files in os.walk(root):
        found.update(os.path.relpath(os.path.join(directory, name), root) for name in dirs + files)
    return found
