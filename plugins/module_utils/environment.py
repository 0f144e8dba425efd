# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An environment as the modules see it: its databases (targets), its file store and its catalog."""

from __future__ import annotations

import os

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import DEFAULT_CATALOG, Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError, check_name, utcnow
from ansible_collections.lifeboat.backup.plugins.module_utils.engines import PREVIOUS_SUFFIX, STAGE_SUFFIX, open_engine
from ansible_collections.lifeboat.backup.plugins.module_utils.postgres import connection_argument_spec

# The archive member name of the main database; linked projects use their own names.
MAIN = "db"
ENGINES = ["postgresql", "sqlite"]
# For AnsibleModule(required_if=...): each engine names its database its own way.
REQUIRED_IF = [("engine", "postgresql", ("database",)), ("engine", "sqlite", ("path",))]


def environment_argument_spec():
    """Options of every module that works on an environment (documented in doc fragment environment)."""
    spec = connection_argument_spec()
    spec.update(
        environment=dict(type="str", required=True),
        engine=dict(type="str", default="postgresql", choices=ENGINES),
        database=dict(type="str"),
        path=dict(type="path"),
        files_path=dict(type="path"),
        catalog=dict(type="path", default=DEFAULT_CATALOG),
    )
    return spec


class Environment:
    """Opened from module parameters; ``targets`` maps archive names (``db``) to databases."""

    def __init__(self, params):
        self.params = params
        self.name = check_name(params["environment"], "environment")
        self.catalog = Catalog(params["catalog"])
        self.engine = open_engine(params)
        target = params.get("path") if params["engine"] == "sqlite" else params.get("database")
        if not target:
            raise LifeboatError("option %s is required for engine %s"
                                % ("path" if params["engine"] == "sqlite" else "database", params["engine"]))
        self.engine.check_target(target)
        self.targets = {MAIN: target}
        self.files_path = params.get("files_path")
        if self.files_path and not os.path.isabs(self.files_path):
            raise LifeboatError("files_path %s must be absolute" % self.files_path)

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
                    self.files_path and os.path.lexists(self.files_path + PREVIOUS_SUFFIX + stamp)):
                return stamp
            moment = moment.fromtimestamp(moment.timestamp() + 1, moment.tzinfo)

    def staging_files(self):
        return self.files_path + STAGE_SUFFIX if self.files_path else None

    def journal_path(self):
        return self.catalog.journal_path(self.name)

    def close(self):
        self.engine.close()
