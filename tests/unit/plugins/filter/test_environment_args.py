# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.lifeboat.backup.plugins.filter.environment_args import environment_args


@pytest.mark.parametrize("entry,catalog,expected", [
    ({"name": "shop", "database": "shop"}, None, {"environment": "shop", "database": "shop"}),
    ({"name": "wiki", "engine": "sqlite", "path": "/srv/wiki.db", "files_path": "/srv/files", "app": {"x": 1},
      "health": {}, "protected": True, "retention": {"keep_last": 3}},
     "/cat", {"environment": "wiki", "engine": "sqlite", "path": "/srv/wiki.db", "files_path": "/srv/files",
              "catalog": "/cat"}),
    ({"name": "shop", "database": "shop", "catalog": "/own", "connection": {"login_user": "lb", "login_port": 5433},
      "linked_projects": [{"name": "crm", "database": "crm"}], "encryption": {"mode": "none"}},
     "/default", {"environment": "shop", "database": "shop", "catalog": "/own", "login_user": "lb",
                  "login_port": 5433, "linked_projects": [{"name": "crm", "database": "crm"}],
                  "encryption": {"mode": "none"}}),
])
def test_entry_becomes_module_options(entry, catalog, expected):
    assert environment_args(entry, catalog) == expected


@pytest.mark.parametrize("entry", [None, {}, {"database": "x"}, "shop"])
def test_an_entry_without_name_is_refused(entry):
    with pytest.raises(AnsibleFilterError, match="needs an entry"):
        environment_args(entry)
