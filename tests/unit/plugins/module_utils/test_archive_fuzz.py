# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fuzzing ``archive.read_archive`` with thousands of mutated archives (built by tests/fuzzing.py).

Every case is the known backup changed from a fixed seed and the case's number: flipped bytes, truncations,
spliced and edited headers, members of every tar type under hostile names (links, devices, '..', absolute,
non-UTF-8), lying and huge sizes, sparse members, pax headers, duplicated and reordered members, manifest and
metadata changes, gzip-wrapped and damaged gzip. Each case must end in one of:

- success, with what was extracted equal to the known backup (same dumps, same files and directories). Where
  the mutation left no manifest (nothing could be checked) or changed data with the manifest to match (a valid
  archive of other data), what was extracted must equal what the archive carries as tarfile reads it; a bare
  dump must be the whole stream. Nothing extracted may have group or other
  write, setuid, setgid or sticky bits (issue 9: such modes from an archive are not restored by default);
- LifeboatError, with nothing left behind: no dump in db_dir, tree_dir absent or empty, nothing else.

Never another exception. And within a budget per case (see fuzzing.Budget): MEMORY of Python heap, and bytes
written (write(2) calls as /proc/self/io counts them, so also files removed again) at most twice the tar bytes
the case carries plus the known backup's size plus 1 MiB: a reader never needs to write much more than it is
given, and an amplifier (a sparse member declaring 1 GiB) is caught. RLIMIT_FSIZE keeps a runaway case from
filling the disk. The scratch directory is on tmpfs where there is one: thousands of extractions with one fsync
per file would take minutes on a disk, and durability is not what is tested here.

A failure names the seed and the case number with what was done; ``-k cases_1200`` reruns its chunk, and
``fuzzing.mutate(base, 1234)`` rebuilds the case.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import tempfile

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import archive
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.tests import fuzzing

CHUNKS = 40
PER_CHUNK = 100
MEMORY = 64 * fuzzing.MIB
SLACK = fuzzing.MIB
# What a restore never gives an extracted file or directory unless asked to (keep_unsafe_modes).
UNSAFE_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH
_DATA = random.Random(fuzzing.SEED)
DUMPS = {"db": b"PGDMP" + _DATA.randbytes(40000), "extra": b"PGDMP" + _DATA.randbytes(3000)}
FILES = {
    "readme.txt": b"hello\n",
    "a/b/c.bin": _DATA.randbytes(20000),
    "empty": b"",
    "\u00fcn\u00efc\u00f8d\u00e9/\u0444\u0430\u0439\u043b \u20ac.txt": "\u043f\u0440\u0438\u0432\u0435\u0442".encode(),
    "x" * 120 + "/long-name.txt": b"a path longer than a ustar name field\n",
}
DIRECTORIES = ("empty_dir",)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return fuzzing.write_base(str(tmp_path_factory.mktemp("base")), DUMPS, FILES, DIRECTORIES)


@pytest.fixture
def scratch(tmp_path):
    """An empty directory for the extractions, on tmpfs when there is one."""
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else str(tmp_path)
    path = tempfile.mkdtemp(prefix="lifeboat-fuzz-", dir=parent)
    yield path
    shutil.rmtree(path)


class _Stream:
    """Only read(): a stream that cannot seek, as a decryptor's output."""

    def __init__(self, data):
        self._data = memoryview(data)
        self._at = 0

    def read(self, size=-1):
        end = len(self._data) if size < 0 else self._at + size
        chunk = bytes(self._data[self._at:end])
        self._at += len(chunk)
        return chunk


@pytest.mark.parametrize("chunk", range(CHUNKS), ids=lambda c: "cases_%04d" % (c * PER_CHUNK))
def test_mutated_archives_are_read_or_refused_cleanly(base, chunk, scratch):
    failures = []
    for index in range(chunk * PER_CHUNK, (chunk + 1) * PER_CHUNK):
        case = fuzzing.mutate(base, index)
        problems = read_case(case, base, scratch)
        if problems:
            failures.append("%s:\n    %s" % (case, "\n    ".join(problems)))
    assert not failures, "%d of %d cases failed:\n%s" % (len(failures), PER_CHUNK, "\n".join(failures))


def read_case(case, base, scratch):
    """Read ``case`` into ``scratch``; the ways it broke the contract (none: it kept it). Empties ``scratch``."""
    db_dir, tree_dir = os.path.join(scratch, "db"), os.path.join(scratch, "tree")
    problems = []
    budget = fuzzing.Budget(memory=MEMORY, disk=2 * case.carried + base.size + SLACK)
    try:
        with budget:
            contents = archive.read_archive(_Stream(case.data), db_dir=db_dir, tree_dir=tree_dir, name="case")
    except LifeboatError:
        problems.extend(left_behind(scratch))
    except Exception as exc:  # pylint: disable=broad-exception-caught  # any other exception is what the test looks for
        problems.append("raised %s" % fuzzing.innermost(exc))
        problems.extend(left_behind(scratch))
    else:
        problems.extend(differences(contents, case, base, db_dir, tree_dir))
    problems.extend(budget.problems())
    for name in os.listdir(scratch):
        shutil.rmtree(os.path.join(scratch, name))
    return problems


def left_behind(scratch):
    """What a refused read left in ``scratch``: anything but an empty db_dir and an empty tree_dir."""
    found = []
    for root, dirs, files in os.walk(scratch):
        found.extend(os.path.relpath(os.path.join(root, name), scratch) for name in files)
        rel = os.path.relpath(root, scratch)
        if not dirs and not files and rel not in (".", "db", "tree"):
            found.append(rel + "/")
    return ["left %r behind after refusing it" % sorted(found)] if found else []


def differences(contents, case, base, db_dir, tree_dir):
    """How a successful read differs from what it had to give."""
    if contents.kind == "pgdump":
        expected = {"db": case.data}, {}, set()
    elif contents.manifest is None or case.resigned:
        expected = fuzzing.carried(case.data)[1:4]
    else:
        expected = base.dumps, base.files, set(base.directories)
    dumps, files, directories = expected
    found = []
    extracted = {name[: -len(".backup")]: _read(os.path.join(db_dir, name)) for name in os.listdir(db_dir)}
    if extracted != dumps or contents.databases != {name: os.path.join(db_dir, name + ".backup") for name in dumps}:
        found.append("read as %s, but the dumps are %s, expected %s"
                     % (contents.kind, _sizes(extracted), _sizes(dumps)))
    unsafe = sorted(rel for rel, mode in _modes(tree_dir).items() if mode & UNSAFE_MODE_BITS)
    if unsafe:
        found.append("extracted %r with group or other write, setuid, setgid or sticky bits" % unsafe)
    files_found, directories_found = _tree(tree_dir)
    if (files_found, directories_found) != (files, directories):
        found.append("read as %s, but the file store differs: %s" % (contents.kind, "; ".join(
            "%s %s" % (what, sorted(names)) for what, names in (
                ("extra files", set(files_found) - set(files)),
                ("missing files", set(files) - set(files_found)),
                ("other content in", {n for n in set(files) & set(files_found) if files[n] != files_found[n]}),
                ("extra directories", directories_found - directories),
                ("missing directories", directories - directories_found),
            ) if names)))
    return found


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _tree(root):
    files, directories = {}, set()
    for directory, dirs, names in os.walk(root):
        rel = os.path.relpath(directory, root)
        prefix = "" if rel == "." else rel + "/"
        directories.update(prefix + name for name in dirs)
        files.update((prefix + name, _read(os.path.join(directory, name))) for name in names)
    return files, directories


def _modes(root):
    """{relative path: mode} of everything below ``root`` and ``root`` itself ('.'), when it exists."""
    found = {}
    for directory, dirs, names in os.walk(root):
        found[os.path.relpath(directory, root)] = os.stat(directory).st_mode
        found.update((os.path.relpath(os.path.join(directory, name), root),
                      os.lstat(os.path.join(directory, name)).st_mode) for name in names)
    return found


def _sizes(dumps):
    return {name: len(content) for name, content in dumps.items()}
