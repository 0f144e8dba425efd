# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""meta/runtime.yml must list every module in the ``all`` action group, so that
``module_defaults: {group/lifeboat.backup.all: ...}`` reaches each of them."""

from __future__ import annotations

import pathlib

import yaml

COLLECTION_ROOT = pathlib.Path(__file__).resolve().parents[2]
PREFIX = "lifeboat.backup."


def action_group_all():
    runtime = yaml.safe_load((COLLECTION_ROOT / "meta" / "runtime.yml").read_text())
    return [name[len(PREFIX):] if name.startswith(PREFIX) else name for name in runtime["action_groups"]["all"]]


def module_names():
    modules = COLLECTION_ROOT / "plugins" / "modules"
    return {path.stem for path in modules.glob("*.py") if path.name != "__init__.py"}


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
