# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An environment as the modules see it: its databases (targets), its file store and its catalog."""

from __future__ import annotations

import os

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import DEFAULT_CATALOG, Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, check_name, utcnow
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.base import FileStore
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.registry import (
    DEFAULT_ENGINE,
    ENGINE_CLASSES,
    ENGINES,
    open_engine,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import connection_argument_spec

# The archive member name of the main database; linked projects use their own names.
MAIN = "db"
# For AnsibleModule(required_if=...): each engine names its database its own way.
REQUIRED_IF = [("engine", name, (engine.target_option,)) for name, engine in ENGINE_CLASSES.items()]
_CONNECTION_KEYS = frozenset(connection_argument_spec())


def environment_argument_spec():
    """Options of every module that works on an environment (documented in doc fragment environment)."""
    spec = connection_argument_spec()
    spec.update(
        environment=dict(type="str", required=True),
        engine=dict(type="str", default=DEFAULT_ENGINE, choices=ENGINES),
        database=dict(type="str"),
        path=dict(type="path"),
        files_path=dict(type="path"),
        catalog=dict(type="path", default=DEFAULT_CATALOG),
        linked_projects=dict(type="list", elements="dict", default=[], options=_linked_project_options()),
    )
    return spec


def private_tmp(params):
    """A function returning the environment's private directory for passfiles and list files (created 0700 on
    demand, emptied by the next run); None for parameters that name no environment. Never /tmp."""
    if not params.get("environment"):
        return None
    catalog, name = Catalog(params["catalog"]), check_name(params["environment"], "environment")
    return lambda: catalog.tmp_dir(name)


def _linked_project_options():
    options = dict(name=dict(type="str", required=True), database=dict(type="str"), path=dict(type="path"),
                   migrations=dict(type="path"))
    # Unset connection options fall back to the environment's.
    options.update({key: dict(spec, default=None) for key, spec in connection_argument_spec().items()})
    return options


class Environment:
    """Opened from module parameters; ``targets`` maps archive names (``db``) to databases."""

    def __init__(self, params):
        self.params = params
        self.name = check_name(params["environment"], "environment")
        self.catalog = Catalog(params["catalog"])
        self.tmp_dir = private_tmp(params)
        self.engine = open_engine(params, self.tmp_dir)
        target = params.get(self.engine.target_option)
        if not target:
            raise LifeboatError("option %s is required for engine %s" % (self.engine.target_option, self.engine.name))
        self.engine.check_target(target)
        self.targets = {MAIN: target}
        # The engine that dumps, restores and updates each database (linked projects may log in differently);
        # server-wide steps (sessions, renames, drops) go through self.engine.
        self.engines = {MAIN: self.engine}
        self.migrations = {}
        for project in params.get("linked_projects") or []:
            self._link(project)
        self.files_path = params.get("files_path")
        if self.files_path and not os.path.isabs(self.files_path):
            raise LifeboatError("files_path %s must be absolute" % self.files_path)
        self.files = FileStore(self.files_path) if self.files_path else None

    def _link(self, project):
        name = check_name(project["name"], "linked project name")
        if name in self.targets:
            raise LifeboatError("linked project name %s is used twice (or is the main database's name, db)" % name)
        target = project.get(self.engine.target_option)
        if not target:
            raise LifeboatError("linked project %s needs %s" % (name, self.engine.target_option))
        overrides = {key: value for key, value in project.items() if key in _CONNECTION_KEYS and value is not None}
        self.engine.check_link(name, overrides)
        engine = open_engine(dict(self.params, **overrides), self.tmp_dir) if overrides else self.engine
        engine.check_target(target)
        if target in self.targets.values():
            raise LifeboatError("database %s is named twice in environment %s" % (target, self.name))
        self.targets[name] = target
        self.engines[name] = engine
        if project.get("migrations"):
            self.migrations[name] = project["migrations"]

    def update_options(self, name, options):
        """structure_update's ``options`` for database ``name``: a linked project runs its own migrations directory,
        never the app's updater; None for a linked project without one."""
        if name == MAIN:
            return dict(options)
        if name not in self.migrations:
            return None
        return dict(options, migrations=self.migrations[name], command=None, chdir=None)

    def state(self):
        if not os.path.isdir(self.catalog.env_dir(self.name)):
            return {}
        return self.catalog.read_state(self.name) or {}

    def stamp(self):
        """A time stamp for previous copies that no existing copy uses yet."""
        moment = utcnow()
        while True:
            stamp = moment.strftime("%Y%m%d%H%M%S")
            names = [self.engine.previous_name(t, stamp) for t in self.targets.values()]
            if not any(self.engine.exists(n) for n in names) and not (
                    self.files and os.path.lexists(self.files.previous_name(stamp))):
                return stamp
            moment = moment.fromtimestamp(moment.timestamp() + 1, moment.tzinfo)

    def journal_path(self):
        return self.catalog.journal_path(self.name)

    def close(self):
        for engine in {id(e): e for e in self.engines.values()}.values():
            engine.close()
