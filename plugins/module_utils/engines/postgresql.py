# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL engine: databases on one server, dumped and restored with the server's own tools."""

from __future__ import annotations

import os
import time

from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, SetupError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.base import Engine
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_migrator import PostgresMigrator
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import (
    HAS_PSYCOPG,
    PGDMP_MAGIC,
    PSYCOPG_IMPORT_ERROR,
    PgTools,
    PostgresServer,
    derived_name,
)

PG_STAGE_SUFFIX = "__lb_stage"
PG_PREVIOUS_SUFFIX = "__lb_prev_"
PG_VERIFY_SUFFIX = "__lb_verify"
# The journal operation that swaps every database of an environment in one transaction.
RENAME_ALL = "pg_swap"
# Where a linked project may differ from the environment; the server itself may not (one rename transaction).
_SERVER_KEYS = ("login_host", "login_port", "login_unix_socket")
# How long ended PostgreSQL sessions may take to go away before the swap gives up.
SESSION_DRAIN_SECONDS = 10


class PostgresEngine(Engine):
    name = "postgresql"
    target_option = "database"
    dump_magic = PGDMP_MAGIC
    # All databases of an environment are renamed in one transaction, which first ends the sessions.
    sessions_end_at_swap = True

    def __init__(self, params, tmp_dir=None):
        super().__init__(params, tmp_dir)
        self.server = PostgresServer(params)
        self.tools = PgTools(self.server, params, self.tmp_dir)

    @staticmethod
    def missing_library():
        return None if HAS_PSYCOPG else ("psycopg", PSYCOPG_IMPORT_ERROR)

    def server_version(self):
        return self.server.server_version()[1]

    def check_target(self, target):
        if target == self.params.get("login_db"):
            raise LifeboatError(
                "database %s is the maintenance database (login_db); choose another login_db to back up or "
                "restore it" % target
            )

    def check_link(self, name, overrides):
        if any(overrides.get(key, self.params.get(key)) != self.params.get(key) for key in _SERVER_KEYS):
            raise LifeboatError("linked project %s is on another PostgreSQL server than environment %s; all of an "
                                "environment's databases must live on one server (they are swapped in one "
                                "transaction)" % (name, self.params["environment"]))

    def exists(self, target):
        return self.server.database_exists(target)

    def check_copy_place(self, target):
        self.server.server_version()  # a server that cannot be reached is the operator's to fix

    def read_through(self, dump_path):
        """Read a custom-format dump to its end with the pg_restore a restore would use."""
        self.tools.read_through(dump_path)

    def dump(self, target, dest):
        return self.tools.dump(target, dest)["size"]

    def database_size(self, target):
        return self.server.database_size(target)

    def session_count(self, target):
        return self.server.session_count(target) if self.exists(target) else 0

    def terminate_sessions(self, target):
        return self.server.terminate_sessions(target)

    def staging_name(self, target):
        return derived_name(target, PG_STAGE_SUFFIX)

    def previous_name(self, target, stamp):
        return derived_name(target, PG_PREVIOUS_SUFFIX + stamp)

    def scratch_name(self, target):
        return derived_name(target, PG_VERIFY_SUFFIX)

    def stage_empty(self, target, staging, owner=None):
        """A new, empty database (like the one it replaces) for a linked project whose dump is missing."""
        if self.server.database_exists(target):
            self.server.create_database(staging, owner=owner, like=target)
        else:
            self.server.create_database(staging, owner=owner or self.params.get("login_user"))

    def stage(self, target, dump_path, staging, owner=None):
        owner = owner or self.params.get("owner")
        if not owner and not self.server.database_exists(target):
            # login_user would own it, and the archive's SQL runs as the owner.
            raise SetupError("database %s does not exist yet: set owner to the ordinary role (the application's "
                             "own, not a superuser) that is to own it" % target)
        # A dump this pg_restore cannot read is refused before anything is created.
        listing = self.tools.readable(dump_path)
        self.stage_empty(target, staging, owner)
        role = self.server.database_properties(staging)["owner"]
        self.tools.restore(dump_path, staging, role, listing)
        self.tools.check_database(staging)

    def drop(self, name):
        self.server.drop_database(name)

    def space_paths(self, targets):
        """The data directory, when this user may read the setting and the directory is on this node."""
        path = self.server.data_directory()
        return [path] if path and os.path.isdir(path) else []

    def swap_ops(self, pairs):
        return [{"kind": RENAME_ALL, "pairs": [list(pair) for pair in pairs]}]

    def touches(self, op):
        if op.get("kind") != RENAME_ALL:
            return super().touches(op)
        pairs = op.get("pairs")
        if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 3 for pair in pairs):
            return None
        names = []
        for target, staging, previous in pairs:
            names.append((staging, target))
            if previous is not None:
                names.append((previous, target))
        return names

    def done(self, op):
        if op["kind"] != RENAME_ALL:
            return super().done(op)
        return all(self.server.database_exists(target) and not self.server.database_exists(staging)
                   for target, staging, _previous in op["pairs"])

    def apply(self, op, terminate):
        # swap.run_ops applies only what is not done yet.
        if op["kind"] != RENAME_ALL:
            super().apply(op, terminate)
        else:
            self.rename_all(op, terminate)

    def rename_all(self, op, terminate):
        """Block new connections, end (or refuse) the remaining ones, then rename everything at once."""
        current = [target for target, _staging, previous in op["pairs"] if previous]
        for target in current:
            self.server.set_allow_connections(target, False)
        try:
            self._drain(current, terminate)
            renames = []
            for target, staging, previous in op["pairs"]:
                if previous:
                    renames.append((target, previous))
                renames.append((staging, target))
            self.server.rename_databases(renames)
        except BaseException:
            self._reopen(current)
            raise

    def undo(self, op):
        if op["kind"] == RENAME_ALL:
            # The commit point was never reached: the databases take connections again.
            self._reopen([target for target, _staging, previous in op["pairs"] if previous])

    def _reopen(self, targets):
        for target in targets:
            if self.server.database_exists(target):
                self.server.set_allow_connections(target, True)

    def _drain(self, targets, terminate):
        deadline = time.monotonic() + SESSION_DRAIN_SECONDS
        for target in targets:
            while True:
                count = self.server.session_count(target)
                if count == 0:
                    break
                if not terminate:
                    raise self.in_use(target, count)
                if time.monotonic() > deadline:
                    raise LifeboatError("sessions on database %s did not end within %d seconds"
                                        % (target, SESSION_DRAIN_SECONDS))
                self.server.terminate_sessions(target)
                time.sleep(0.1)

    def after_swap(self, targets, previous):
        # The new data takes connections; kept previous copies stay closed so no app writes into them.
        for target in targets:
            self.server.set_allow_connections(target, True)
        for name in previous:
            if self.server.database_exists(name):
                self.server.set_allow_connections(name, False)

    def migrator(self, target, history_table=None, role=None):
        """structure_update on ``target``, as ``role`` (by default the database's owner)."""
        return PostgresMigrator(self.server, self.tools, target, history_table, role)

    def close(self):
        self.server.close()
