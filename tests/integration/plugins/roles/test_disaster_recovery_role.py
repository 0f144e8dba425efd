# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A recovery plan that names an archive on the controller: uploaded once, restored, then left alone."""

from __future__ import annotations

import glob
import re
import shutil

from test_restore_role import _backup, _damage, _environment, _notes, _run


def _plan(src):
    return {"name": "Apply the plan", "ansible.builtin.include_role": {"name": "lifeboat.backup.disaster_recovery"},
            "vars": {"disaster_recovery_plan": [{"hosts": "all", "environment": "shop", "src": src}]}}


def test_plan_with_an_archive_from_the_controller(tmp_path):
    entry = _environment(tmp_path / "node")
    process = _run(tmp_path, entry, [_backup("golden")])[0]
    assert process.returncode == 0, process.stdout[-2000:]
    controller = tmp_path / "controller"
    controller.mkdir()
    src = str(controller / "golden.tar")
    shutil.copy(glob.glob(entry["catalog"] + "/shop/*.tar")[0], src)
    shutil.rmtree(entry["catalog"])  # the node no longer has it: the plan must bring it
    _damage(entry)

    process, rows = _run(tmp_path, entry, [_plan(src)])
    assert process.returncode == 0, process.stdout[-3000:]
    assert _notes(entry["path"]) == 10
    assert [row["result"] for row in rows] == ["changed"], rows

    again, rows = _run(tmp_path, entry, [_plan(src)])
    assert again.returncode == 0, again.stdout[-3000:]
    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s", again.stdout), again.stdout[-3000:]
    assert [row["result"] for row in rows] == ["ok"], rows
