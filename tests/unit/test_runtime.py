# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml must list every module in the ``all`` action group, so that
``module_defaults: {group/lifeboat.backup.all: ...}`` reaches each of them."""

from __future__ import annotations

import pathlib
import re

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

COLLECTION_ROOT = pathlib.Path(__file__).resolve().parents[2]
PREFIX = "lifeboat.backup."


def action_group_all():
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    return [name[len(PREFIX):] if name.startswith(PREFIX) else name for name in runtime["action_groups"]["all"]]


# It runs the others and takes none of their options itself: module_defaults reach the module it runs.
NOT_IN_GROUP = {"environment_call"}


def module_names():
    modules = COLLECTION_ROOT / "plugins" / "modules"
    return {path.stem for path in modules.glob("*.py") if path.name != "__init__.py"} - NOT_IN_GROUP


def test_every_module_is_in_action_group_all():
    missing = module_names() - set(action_group_all())
    assert not missing, "add to action_groups.all in meta/runtime.yml: %s" % ", ".join(sorted(missing))


def test_action_group_all_names_only_existing_modules():
    unknown = set(action_group_all()) - module_names()
    assert not unknown, "no module in plugins/modules for these action_groups.all entries: %s" % ", ".join(
        sorted(unknown)
    )


def test_action_group_all_has_no_duplicates():
    group = action_group_all()
    assert len(group) == len(set(group))


def ansible_cores_tested():
    """The ansible-core releases the suite runs on: requirements-dev.txt's, and the Makefile's other venvs."""
    pins = (COLLECTION_ROOT / "requirements-dev.txt").read_text()
    makefile = (COLLECTION_ROOT / "Makefile").read_text()
    return [Version(version) for version in re.findall(r"^ansible-core==(\S+)", pins, re.M)
            + re.findall(r"^ANSIBLE_(?:OLDEST|NEWEST) := ([0-9.]+)$", makefile, re.M)]


def test_requires_ansible_starts_at_the_oldest_tested_ansible_core():
    """requires_ansible admits every ansible-core the suite runs on and claims no older release series."""
    tested = ansible_cores_tested()
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    required = SpecifierSet(runtime["requires_ansible"])
    bounds = [Version(spec.version) for spec in required if spec.operator == ">="]
    assert tested and all(version in required for version in tested), (required, tested)
    oldest = min(tested)
    assert bounds and max(bounds).release[:2] == oldest.release[:2], (
        "requires_ansible %s should start at %d.%d, the oldest ansible-core the suite runs on"
        % (required, oldest.major, oldest.minor))
