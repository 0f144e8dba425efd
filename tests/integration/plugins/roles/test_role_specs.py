# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each role's defaults and its argument specs list the same variables with the same defaults, prefixed with the
role's name; private variables (vars/main.yml) start with an underscore and the role's name."""

from __future__ import annotations

import glob
import os

import pytest
import yaml

from playbook import REPO

ROLES = sorted(os.path.basename(os.path.dirname(path)) for path in glob.glob(os.path.join(REPO, "roles", "*", "meta")))


def _load(role, *parts):
    path = os.path.join(REPO, "roles", role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_defaults_match_the_argument_specs(role):
    defaults = _load(role, "defaults", "main.yml")
    options = {}
    for entry in _load(role, "meta", "argument_specs.yml")["argument_specs"].values():
        options.update(entry.get("options") or {})
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        assert name.startswith(role + "_"), name
        if spec.get("required"):
            continue
        assert defaults[name] == spec.get("default"), name


@pytest.mark.parametrize("role", ROLES)
def test_private_variables_carry_the_role_s_name(role):
    for name in _load(role, "vars", "main.yml"):
        assert name.startswith("_%s_" % role), name
