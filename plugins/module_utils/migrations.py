# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bring one database's structure to what the deployed project expects, on any engine.

Either versioned SQL migrations (``V<version>__<description>.sql``, each applied in its own transaction and
recorded in a history table), or the application's own updater run with the connection in its environment.
Works on any database, not only an environment's: restore runs it on staging copies. See
docs/structure-update.md.

What differs per engine is the engine's *migrator* (``engine.migrator(target, history_table, role)``, a
``Migrator``): ``label`` and ``role``, ``open(read_only)``, ``history()`` ({version: sha256}, None without a
history table), ``lock()``, ``prepare(migration)``, ``apply(migration, prepared, create_history)`` (the seconds
it took, None when another run applied it meanwhile; MigrationFailed when it was rolled back), ``command_env()``
(the updater's process environment) and ``close()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from typing import NamedTuple

from ansible_collections.lifeboat.backup.plugins.module_utils import process
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError

DEFAULT_HISTORY_TABLE = "lifeboat_schema_history"
# Versions are stored as PostgreSQL bigint; time stamps such as 20260102120000 fit.
MAX_VERSION = 2 ** 63 - 1
NAME_FORMAT = "V<version>__<description>.sql"
_MIGRATION = re.compile(r"^V(?P<version>[0-9]+)__(?P<description>.*\S.*)\.sql$", re.DOTALL)
# Names an operator meant as migrations: refused when malformed rather than silently skipped.
_LOOKS_LIKE_MIGRATION = re.compile(r"(^[Vv][0-9])|(\.sql$)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Migration(NamedTuple):
    version: int
    description: str
    name: str
    path: str
    sha256: str
    sql: str


class MigrationFailed(Exception):
    """A migrator's apply() rolled ``migration`` back; ``detail`` says where and why."""

    def __init__(self, migration, detail):
        super().__init__(detail)
        self.migration = migration
        self.detail = detail


class Migrator:
    """What the engines' migrators share: ``open()`` sets ``conn``, ``close()`` closes it; ``role`` is the role
    the migrations run as, where the engine has roles."""

    conn = None
    role = None

    def close(self):
        if self.conn is not None:
            self.conn.close()


# --- migration files (pure) -----------------------------------------------------------------------

def parse_name(name):
    """``(version, description)`` of a migration file name; None for a file that is no migration (README,
    hidden files); LifeboatError for a name that looks like a migration but does not follow NAME_FORMAT."""
    if name.startswith("."):
        return None
    match = _MIGRATION.match(name)
    if match:
        version = int(match.group("version"))
        if version > MAX_VERSION:
            raise LifeboatError("%s: version %d is too large (at most %d)" % (name, version, MAX_VERSION))
        # As Flyway does: underscores in the description stand for spaces.
        return version, match.group("description").replace("_", " ").strip()
    if _LOOKS_LIKE_MIGRATION.search(name):
        raise LifeboatError("%s is not named %s" % (name, NAME_FORMAT))
    return None


def scan(directory):
    """The migrations in ``directory`` (not its subdirectories), in version order."""
    if not os.path.isdir(directory):
        raise LifeboatError("migrations directory %s does not exist or is not a directory" % directory)
    found, errors = [], []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            continue
        try:
            parsed = parse_name(name)
        except LifeboatError as exc:
            errors.append(str(exc))
            continue
        if parsed is None:
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            errors.append("%s is not UTF-8 text (%s)" % (name, exc.reason))
            continue
        found.append(Migration(parsed[0], parsed[1], name, path, hashlib.sha256(data).hexdigest(), text))
    if errors:
        raise LifeboatError("migrations directory %s: %s; rename or move these files (a migration is named %s, "
                            "for example V3__add_invoice_table.sql)" % (directory, "; ".join(errors), NAME_FORMAT))
    return _check_unique(found, directory)


def _check_unique(migrations, directory):
    by_version = {}
    for migration in migrations:
        by_version.setdefault(migration.version, []).append(migration.name)
    duplicates = ["version %d: %s" % (version, ", ".join(names))
                  for version, names in sorted(by_version.items()) if len(names) > 1]
    if duplicates:
        raise LifeboatError("migrations directory %s has more than one file for the same version (%s); give each "
                            "migration its own version" % (directory, "; ".join(duplicates)))
    return sorted(migrations, key=lambda migration: migration.version)


def project_version(migrations_dir):
    """The highest version among the migration files of ``migrations_dir``; None when it holds none."""
    migrations = scan(migrations_dir)
    return migrations[-1].version if migrations else None


def plan(migrations, history, allow_drift=False, allow_newer=False, target="the database"):
    """What to apply, given the project's ``migrations`` and the ``history`` ({version: sha256}) of ``target``.

    Refuses (LifeboatError, nothing applied) when the database's past differs from the project's (a changed
    or missing applied file, or a pending migration older than the database's version: drift), or when the
    database is newer than every migration of the project, unless the operator allows it.
    """
    files = {migration.version: migration for migration in migrations}
    project = max(files) if files else None
    current = max(history) if history else None
    newer = sorted(v for v in history if project is None or v > project)
    changed = sorted(v for v in history if v in files and files[v].sha256 != history[v])
    missing = sorted(v for v in history if v not in files and v not in newer)
    pending = [migration for migration in migrations if migration.version not in history]
    late = [migration.version for migration in pending if current is not None and migration.version < current]
    drift = (["%s was changed after it was applied (sha256 %s... recorded, %s... now)"
              % (files[v].name, history[v][:12], files[v].sha256[:12]) for v in changed]
             + ["version %d was applied but has no file any more" % v for v in missing]
             + ["%s is not applied but the database is already at version %d" % (files[v].name, current)
                for v in late])
    problems, warnings = [], []
    if drift:
        (warnings if allow_drift else problems).append("; ".join(drift))
    if newer:
        (warnings if allow_newer else problems).append(
            "the database is at version %d, newer than the project's migrations (%s): it comes from a newer release "
            "(version %s unknown here)" % (current, "there are none" if project is None else "up to %d" % project,
                                           ", ".join(map(str, newer))))
    if problems:
        remedies = [remedy for condition, remedy in (
            (drift and not allow_drift, "restore the migration files as they were applied, or set allow_drift: "
                                        "true to accept the difference (changed files are not run again, "
                                        "pending ones run in version order)"),
            (newer and not allow_newer, "deploy the matching release, or set allow_newer: true to keep the "
                                        "newer structure"),
        ) if condition]
        raise LifeboatError("structure of %s does not match the project: %s; nothing was applied. To go on: %s"
                            % (target, "; ".join(problems), "; ".join(remedies)))
    return {
        "pending": pending,
        "current": current,
        "project": project,
        "warnings": ["%s: %s" % (target, warning) for warning in warnings],
    }


def history_table_name(value, default_schema=None):
    """``(schema, table)`` of the history table option. An engine with schemas gives its ``default_schema``;
    on one without, a schema prefix is refused and the schema is None."""
    value = value or DEFAULT_HISTORY_TABLE
    parts = value.split(".")
    if len(parts) > (2 if default_schema else 1) or not all(_IDENTIFIER.match(p) for p in parts):
        raise LifeboatError(
            "invalid history_table %r: use a table name of letters, digits and '_'%s" % (
                value, " optionally prefixed with a schema (schema.table)" if default_schema else "")
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (default_schema, parts[0])


def command_argv(command):
    """The updater command as argv: a list as given, a string split like a shell would (but run without one)."""
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise LifeboatError("cannot split command %r into arguments: %s" % (command, exc))
    elif isinstance(command, (list, tuple)):
        if any(item is None or isinstance(item, (dict, list, tuple)) for item in command):
            raise LifeboatError("command must be a list of strings, got %r" % (command,))
        argv = [str(item) for item in command]
    else:
        raise LifeboatError("command must be a string or a list of strings, got %r" % (command,))
    if not argv or not argv[0]:
        raise LifeboatError("command is empty; give the updater to run, for example [alembic, upgrade, head]")
    return argv


# --- the update -----------------------------------------------------------------------------------

def current_version(engine, target, history_table=None):
    """The highest migration version recorded in ``target``'s history table; None without one."""
    migrator = engine.migrator(target, history_table)
    try:
        # Reading needs no SET ROLE: the connecting user reads the table, whoever owns it.
        migrator.open(read_only=True)
        history = migrator.history()
    finally:
        migrator.close()
    return max(history) if history else None


def update(engine, target, migrations=None, command=None, allow_drift=False, allow_newer=False, role=None,
           check_mode=False, history_table=None, chdir=None):
    """Bring ``target`` (one of ``engine``'s databases, or a staging copy of one) to the project's structure.

    ``migrations`` is a directory of migration files, ``command`` the application's own updater (argv list or
    string); exactly one of them. Returns the module result: ``changed``, ``applied``, ``pending``,
    ``version_before``, ``version_after``, ``diff``, ``warnings`` and more (see structure_update's RETURN).
    """
    if (migrations is None) == (command is None):
        raise LifeboatError("give either migrations (a directory of SQL files) or command (the app's updater)")
    started = time.monotonic()
    # Files first: a malformed directory fails before anything connects.
    files = scan(migrations) if migrations is not None else None
    argv = command_argv(command) if command is not None else None
    migrator = engine.migrator(target, history_table, role)
    try:
        migrator.open()
        if files is not None:
            result = _migrate(migrator, files, allow_drift, allow_newer, check_mode)
        else:
            result = _command(migrator, argv, chdir, engine.params.get("login_password"), check_mode)
    finally:
        migrator.close()
    result["role"] = migrator.role
    result["duration"] = round(time.monotonic() - started, 3)
    return result


def _migrate(migrator, files, allow_drift, allow_newer, check_mode):
    lock = contextlib.nullcontext() if check_mode else migrator.lock()
    with lock:
        history = migrator.history()
        steps = plan(files, history or {}, allow_drift, allow_newer, migrator.label)
        pending = steps["pending"]
        # Parse every pending file before the first one runs: a malformed V3 must not leave V2 alone applied.
        prepared = [(migration, migrator.prepare(migration)) for migration in pending]
        before = steps["current"]
        applied = []
        if not check_mode:
            create_history = history is None
            for migration, statements in prepared:
                try:
                    seconds = migrator.apply(migration, statements, create_history)
                except MigrationFailed as exc:
                    raise LifeboatError(
                        "migration %s failed on %s; it was rolled back, none of it is applied or recorded%s. Fix the "
                        "file (or the database) and run again" % (
                            migration.name, exc.detail,
                            "; applied before it in this run: %s" % ", ".join(map(str, applied)) if applied else ""),
                    ) from None
                create_history = False
                if seconds is not None:
                    applied.append(migration.version)
    versions = sorted(set(history or {}) | {migration.version for migration in pending})
    after = versions[-1] if versions else None
    return {
        "changed": bool(pending),
        "applied": applied,
        "pending": [] if not check_mode else [migration.version for migration in pending],
        "version_before": before,
        "version_after": after,
        "project_version": steps["project"],
        "command_result": None,
        "diff": {"before": {"version": before}, "after": {"version": after}},
        "warnings": steps["warnings"],
    }


def _resolve(argv, chdir):
    """Fail before anything runs when the updater cannot be found (the child inherits this process's PATH)."""
    if chdir and not os.path.isdir(chdir):
        raise LifeboatError("chdir %s does not exist or is not a directory" % chdir)
    program = argv[0]
    if "/" in program:
        path = os.path.join(chdir or os.getcwd(), program)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return
        raise LifeboatError("command %s is not an executable file%s" % (program, " (in %s)" % chdir if chdir else ""))
    if not shutil.which(program, path=os.environ.get("PATH", os.defpath)):
        raise LifeboatError("command %s not found in PATH (%s); give its full path"
                            % (program, os.environ.get("PATH", "")))


def _command(migrator, argv, chdir, password, check_mode):
    _resolve(argv, chdir)
    before_history = migrator.history() or {}
    before = max(before_history) if before_history else None
    result = {
        "changed": True,
        "applied": [],
        "pending": [],
        "version_before": before,
        "version_after": before,
        "project_version": None,
        "command_result": None,
        # What the updater will do is unknown before it runs: no diff in check mode.
        "diff": None,
        "warnings": [],
    }
    if check_mode:
        return result
    with migrator.lock(), migrator.command_env() as child_env:
        started = time.monotonic()
        try:
            done = process.run(argv, env=child_env, cwd=chdir, stdin=subprocess.DEVNULL, capture_output=True,
                               check=False)
        except OSError as exc:
            raise LifeboatError("cannot run command %s on %s: %s" % (argv[0], migrator.label, exc.strerror or exc))
        seconds = round(time.monotonic() - started, 3)
        if done.returncode != 0:
            raise LifeboatError("command %s failed on %s (exit %d):\n%s" % (
                argv[0], migrator.label, done.returncode,
                process.tail(done.stderr, [password]) or process.tail(done.stdout, [password])))
        after_history = migrator.history() or {}
    after = max(after_history) if after_history else None
    result.update(
        applied=sorted(set(after_history) - set(before_history)),
        version_after=after,
        command_result={"rc": done.returncode, "stdout": process.tail(done.stdout, [password]),
                        "stderr": process.tail(done.stderr, [password]), "duration": seconds},
        diff={"before": {"version": before}, "after": {"version": after}},
    )
    return result


# --- the options ----------------------------------------------------------------------------------

UPDATE_KEYS = ("migrations", "command", "chdir", "allow_drift", "allow_newer", "role", "history_table")


def update_options():
    """The options of an update: structure_update's own, and backup_restore's ``structure_update`` suboptions."""
    return dict(
        migrations=dict(type="path"),
        command=dict(type="raw"),
        chdir=dict(type="path"),
        allow_drift=dict(type="bool", default=False),
        allow_newer=dict(type="bool", default=False),
        role=dict(type="str"),
        history_table=dict(type="str", default=DEFAULT_HISTORY_TABLE),
    )


# For AnsibleModule and for dict suboptions alike.
UPDATE_CONSTRAINTS = dict(mutually_exclusive=[("migrations", "command")], required_one_of=[("migrations", "command")])
