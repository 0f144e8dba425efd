# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.lifeboat.backup.plugins.filter.report_row import report_row


def test_every_field_is_filled_the_same_way():
    rows = report_row(None, "node1", "shop", "none", "failed", backup="nosuch", message="not in\n the catalog")
    assert rows == [{"host": "node1", "environment": "shop", "action": "none", "backup": "nosuch", "backup_id": "",
                     "result": "failed", "duration": 0.0, "size": 0, "message": "not in the catalog"}]


def test_the_row_is_appended_with_units_kept():
    first = [{"host": "node0"}]
    rows = report_row(first, "node1", "shop", "restore", "changed", backup="latest", backup_id="20261122T1308Z-ab",
                      duration="12.345", size="2048")
    assert rows[0] == first[0] and first == [{"host": "node0"}]
    assert (rows[1]["duration"], rows[1]["size"], rows[1]["backup_id"]) == (12.3, 2048, "20261122T1308Z-ab")


@pytest.mark.parametrize("action,result", [("restored", "ok"), ("restore", "done")])
def test_unknown_action_or_result_is_refused(action, result):
    with pytest.raises(AnsibleFilterError, match="action must be one of"):
        report_row([], "node1", "shop", action, result)
