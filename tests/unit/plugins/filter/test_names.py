# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names filter: lists as operators type them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.lifeboat.backup.plugins.filter.names import names


@pytest.mark.parametrize("value,expected", [
    (None, []),
    ("", []),
    ("shop", ["shop"]),
    ("shop, wiki,", ["shop", "wiki"]),
    (["shop", " wiki "], ["shop", "wiki"]),
    ([], []),
])
def test_names_from_lists_and_strings(value, expected):
    assert names(value) == expected


@pytest.mark.parametrize("value", [3, {"name": "shop"}, ["shop", 3]])
def test_anything_else_is_refused(value):
    with pytest.raises(AnsibleFilterError, match="expected a list of names"):
        names(value)
