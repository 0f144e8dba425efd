# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The swap journal against a fake engine: a crash at every step of every kind of operation, then recovery.

A crash is an exception no cleanup catches, raised before the n-th step (a journal write, an operation, part of
the one-step swap, the state write); the next run recovers from what is on disk. Whatever the step, the
environment is on its old or its new data right after the crash, and on one of them, complete and clean, after
recovery. The real thing (SIGKILL in a subprocess, PostgreSQL) is tests/integration/killer.py.
"""

from __future__ import annotations

import errno
import json
import os

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import swap
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, atomic_write_json
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.base import Engine, FileStore, swap_path_ops

STAMP = "20240101000000"
ALL_AT_ONCE = "swap_all"


class Crash(BaseException):
    """A power cut: nothing may catch it."""


class Steps:
    """Counts the steps of a run and crashes before step ``crash_at`` (None: never)."""

    def __init__(self, crash_at=None):
        self.crash_at = crash_at
        self.count = 0

    def tick(self):
        if self.count == self.crash_at:
            raise Crash()
        self.count += 1


class FakeEngine(Engine):
    """Databases are files. ``all_at_once``: one journal operation swaps them all and, like PostgreSQL's, first
    closes the current ones (a ``.closed`` marker) and has to open them again when it is undone."""

    name = "fake"

    def __init__(self, steps, all_at_once=False, refuse_first=False):
        super().__init__({})
        self.steps = steps
        self.all_at_once = all_at_once
        self.refuse_first = refuse_first

    def staging_name(self, target):
        return target + ".stage"

    def previous_name(self, target, stamp):
        return target + ".prev_" + stamp

    def exists(self, target):
        return os.path.lexists(target)

    def drop(self, name):
        if os.path.lexists(name):
            os.unlink(name)

    def swap_ops(self, pairs):
        if self.all_at_once:
            return [{"kind": ALL_AT_ONCE, "pairs": [list(pair) for pair in pairs]}]
        return [op for target, staging, previous in pairs for op in swap_path_ops(staging, target, previous)]

    def touches(self, op):
        if op.get("kind") != ALL_AT_ONCE:
            return super().touches(op)
        return [(name, target) for target, staging, previous in op["pairs"] for name in (staging, previous) if name]

    def done(self, op):
        if op["kind"] != ALL_AT_ONCE:
            return super().done(op)
        return all(os.path.exists(target) and not os.path.exists(staging) for target, staging, _p in op["pairs"])

    def apply(self, op, terminate):
        self.steps.tick()
        if self.refuse_first:
            raise LifeboatError("database is in use, 1 session(s) connected")
        if op["kind"] != ALL_AT_ONCE:
            super().apply(op, terminate)
            return
        for target, _staging, previous in op["pairs"]:
            if previous:
                open(target + ".closed", "w").close()
        self.steps.tick()
        for target, staging, previous in op["pairs"]:
            if previous:
                os.rename(target, previous)
            os.rename(staging, target)
        self.steps.tick()

    def undo(self, op):
        if op["kind"] == ALL_AT_ONCE:
            self._reopen(op)

    def after_swap(self, targets, previous):
        self.steps.tick()
        for target in targets:
            if os.path.exists(target + ".closed"):
                os.unlink(target + ".closed")

    def _reopen(self, op):
        for target, _staging, _previous in op["pairs"]:
            if os.path.exists(target + ".closed"):
                os.unlink(target + ".closed")


class FakeCatalog:
    def __init__(self, root, steps):
        self.root = root
        self.steps = steps

    def env_dir(self, name):
        return self.root

    def journal_path(self, name):
        return os.path.join(self.root, "journal.json")

    def read_journal(self, name):
        path = self.journal_path(name)
        return json.load(open(path)) if os.path.exists(path) else None

    def read_state(self, name):
        path = os.path.join(self.root, "state.json")
        return json.load(open(path)) if os.path.exists(path) else None

    def write_state(self, name, state):
        self.steps.tick()
        atomic_write_json(os.path.join(self.root, "state.json"), state)
        self.steps.tick()

    def clean_tmp(self, name):
        pass


class FakeEnvironment:
    name = "app"

    def __init__(self, root, engine, targets, files_path):
        self.catalog = FakeCatalog(str(root / "catalog"), engine.steps)
        self.engine = engine
        self.targets = targets
        self.engines = {name: engine for name in targets}
        self.files_path = files_path
        self.files = FileStore(files_path) if files_path else None

    def journal_path(self):
        return self.catalog.journal_path(self.name)

    def state(self):
        return self.catalog.read_state(self.name) or {}


# Each layout starts an environment on "old" data (or none: a first restore) and stages "new" data.
LAYOUTS = {
    "files, replacing": dict(all_at_once=False, existing=True, files=True),
    "files, first restore": dict(all_at_once=False, existing=False, files=True),
    "files, no file store": dict(all_at_once=False, existing=True, files=False),
    "all at once, replacing": dict(all_at_once=True, existing=True, files=True),
    "all at once, first restore": dict(all_at_once=True, existing=False, files=False),
}


def build(tmp_path, layout, steps, **engine_options):
    """The environment of ``layout``, its engine failing after ``steps``; returns (environment, targets,
    files_path)."""
    (tmp_path / "catalog").mkdir(exist_ok=True)
    targets = {"db": str(tmp_path / "main.db"), "crm": str(tmp_path / "crm.db")}
    files_path = str(tmp_path / "files") if layout["files"] else None
    environment = FakeEnvironment(tmp_path, FakeEngine(steps, layout["all_at_once"], **engine_options), targets,
                                  files_path)
    return environment, targets, files_path


def prepare(tmp_path, layout):
    environment, targets, files_path = build(tmp_path, layout, Steps())
    engine = environment.engine
    pairs = []
    for target in targets.values():
        if layout["existing"]:
            write(target, "old " + target)
        write(engine.staging_name(target), "new " + target)
        pairs.append((target, engine.staging_name(target), engine.previous_name(target, STAMP) if layout["existing"]
                      else None))
    ops = engine.swap_ops(pairs)
    files_previous = None
    if files_path:
        write(os.path.join(files_path, "a.txt"), "old files")
        write(os.path.join(environment.files.staging, "a.txt"), "new files")
        files_previous = environment.files.previous_name(STAMP)
        ops.extend(environment.files.swap_ops(environment.files.staging, files_previous))
    return swap.new_journal(environment, {"keep_previous": 1}, pairs, ops, STAMP, files_previous,
                            backup={"id": "new"}, replaced={"id": "old"})


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def read(path):
    if not os.path.exists(path):
        return None
    if os.path.isdir(path):
        return read(os.path.join(path, "a.txt"))
    with open(path) as handle:
        return handle.read()


def live(targets, files_path):
    """What the environment runs on: each database and the file store, "old", "new" or None (missing)."""
    names = list(targets.values()) + ([files_path] if files_path else [])
    return [read(name).split(" ")[0] if read(name) else None for name in names]


def run(tmp_path, layout, crash_at, journal, monkeypatch):
    environment = build(tmp_path, layout, Steps(crash_at))[0]
    write_journal = swap.write_journal

    def ticking(*args):
        environment.engine.steps.tick()
        write_journal(*args)

    monkeypatch.setattr(swap, "write_journal", ticking)
    try:
        swap.swap(environment, json.loads(json.dumps(journal)), terminate=False, discard=swap.remove_leftovers)
    except Crash:
        return True
    finally:
        monkeypatch.undo()
    return False


def recover(tmp_path, layout):
    environment, targets, files_path = build(tmp_path, layout, Steps())
    warning = swap.recover(environment)
    swap.remove_leftovers(environment)
    return warning, environment


def assert_clean(environment, targets, files_path):
    leftovers = [name for target in targets.values() for name in (target + ".stage", target + ".closed")]
    leftovers += [files_path + ".lb_stage"] if files_path else []
    leftovers.append(environment.journal_path())
    assert [name for name in leftovers if os.path.lexists(name)] == []


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_crash_at_any_step_leaves_old_or_new_data_and_recovery_settles_it(tmp_path, monkeypatch, layout):
    options = LAYOUTS[layout]
    old = ["old" if options["existing"] else None] * 2 + (["old"] if options["files"] else [])
    new = ["new"] * len(old)
    outcomes = []
    crash_at = 0
    while True:
        case = tmp_path / str(crash_at)
        case.mkdir()
        journal = prepare(case, options)
        _environment, targets, files_path = build(case, options, Steps())
        crashed = run(case, options, crash_at, journal, monkeypatch)
        if not crashed:
            assert live(targets, files_path) == new
            break
        # Right after the crash each database and the file store is on its old or its new data, never neither.
        now = live(targets, files_path)
        assert all(value in (before, after) for value, before, after in zip(now, old, new)), (crash_at, now)

        warning, environment = recover(case, options)
        after = live(targets, files_path)
        assert_clean(environment, targets, files_path)
        if warning is None or "undone" in warning:
            assert after == old, (crash_at, warning, after)
            assert environment.state() == {}
        else:
            assert "completed" in warning and after == new, (crash_at, warning, after)
            generation = environment.state()["previous"][0] if options["existing"] else None
            if options["existing"]:
                kept = [read(name["previous"]).split(" ")[0] for name in generation["databases"]]
                assert kept == ["old", "old"] and environment.state()["current"] == {"id": "new"}
        outcomes.append("none" if warning is None else "undone" if "undone" in warning else "completed")
        crash_at += 1
    # Nothing journalled yet, then undone while the first operation had not happened, then completed.
    assert outcomes[0] == "none" and "undone" in outcomes and outcomes[-1] == "completed"
    first_completed = outcomes.index("completed")
    assert set(outcomes[1:first_completed]) == {"undone"} and set(outcomes[first_completed:]) == {"completed"}
    # Every step of the run was a crash point: each journal write, each operation, the state write.
    assert crash_at >= 2 * len(journal["ops"]) + 3


@pytest.mark.parametrize("layout", ["files, replacing", "all at once, replacing"])
def test_a_first_operation_refused_undoes_the_swap_at_once(tmp_path, layout):
    options = LAYOUTS[layout]
    journal = prepare(tmp_path, options)
    environment, targets, files_path = build(tmp_path, options, Steps(), refuse_first=True)

    with pytest.raises(LifeboatError, match="1 session"):
        swap.swap(environment, journal, terminate=False, discard=swap.remove_leftovers)

    assert live(targets, files_path) == ["old"] * 3
    assert_clean(environment, targets, files_path)


@pytest.mark.parametrize("at, begun", [(0, False), (1, True)])
def test_a_full_disk_says_whether_the_swap_began(tmp_path, monkeypatch, at, begun):
    options = LAYOUTS["files, replacing"]
    journal = prepare(tmp_path, options)
    environment = build(tmp_path, options, Steps())[0]
    original = environment.engine.apply
    calls = []

    def apply(op, terminate):
        calls.append(op)
        if len(calls) > at:
            raise OSError(errno.ENOSPC, "No space left on device", op["dst"])
        original(op, terminate)

    monkeypatch.setattr(environment.engine, "apply", apply)
    with pytest.raises((OSError, LifeboatError)) as caught:
        swap.swap(environment, journal, terminate=False, discard=swap.remove_leftovers)
    if begun:
        assert isinstance(caught.value, LifeboatError) and "the swap has begun and the next run finishes it" \
            in str(caught.value), caught.value
    else:
        assert caught.value.errno == errno.ENOSPC  # runner's "nothing was changed" is true: nothing was


def planted(tmp_path, layout, change):
    """A journal as a run writes it, changed by ``change(journal, targets)``, planted for the next run."""
    journal = prepare(tmp_path, LAYOUTS[layout])
    environment, targets, _files_path = build(tmp_path, LAYOUTS[layout], Steps())
    change(journal, targets)
    atomic_write_json(environment.journal_path(), journal)
    return environment, targets


def set_op(index, key, value):
    return lambda journal, targets: journal["ops"][index].update({key: value})


REFUSED = {
    "a path outside the environment": ("files, replacing", set_op(1, "src", "/etc/shadow")),
    "a replace without its inode": ("files, replacing", set_op(1, "inode", None)),
    "an operation of unknown kind": ("files, replacing", set_op(0, "kind", "unlink")),
    "an operation that is no object": ("files, replacing", lambda journal, targets: journal["ops"].append("rm -rf")),
    "a foreign database in a one-step swap": (
        "all at once, replacing", lambda journal, targets: journal["ops"][0]["pairs"][0].__setitem__(0, "postgres")),
    "a target as its own staging copy": (
        "all at once, replacing",
        lambda journal, targets: journal["ops"][0]["pairs"][0].__setitem__(1, targets["db"])),
    "a foreign previous copy": (
        "all at once, replacing", lambda journal, targets: journal["ops"][0]["pairs"][1].__setitem__(2, "/etc/x")),
    "other targets": ("files, replacing", lambda journal, targets: journal["targets"].pop()),
    "progress beyond the operations": ("files, replacing", lambda journal, targets: journal.update(progress=99)),
    "a foreign previous copy in the generation": (
        "files, replacing", lambda journal, targets: journal["generation"].update(files="/srv/precious")),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_journal_naming_what_the_environment_does_not_derive_is_refused(tmp_path, case):
    layout, change = REFUSED[case]
    environment, targets = planted(tmp_path, layout, change)
    before = live(targets, environment.files_path)

    with pytest.raises(LifeboatError, match="refusing to act on it"):
        swap.recover(environment)

    assert live(targets, environment.files_path) == before
    assert os.path.exists(environment.journal_path()), "the evidence stays for the operator"


def test_a_journal_of_another_engine_is_refused(tmp_path):
    environment, _targets = planted(tmp_path, "files, replacing", lambda journal, targets: journal.update(
        engine="postgresql"))
    with pytest.raises(LifeboatError, match="written for engine postgresql"):
        swap.recover(environment)


def test_own_names_are_derived_from_targets_and_the_file_store(tmp_path):
    environment = build(tmp_path, LAYOUTS["files, replacing"], Steps())[0]
    main = environment.targets["db"]
    files = environment.files_path
    for name in (main, main + ".stage", main + ".prev_" + STAMP, files, files + ".lb_stage",
                 files + ".lb_prev_" + STAMP):
        assert swap.own_name(environment, name), name
    for name in (main + ".prev_2024", main + ".stagex", files + ".lb_prev_" + STAMP + "1", "/etc/passwd", None):
        assert not swap.own_name(environment, name), name
    assert not swap.own_name(environment, main + ".stage", base=files)
