# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's playbooks as an operator runs them: FQCN, variables as ``-e key=value`` strings (as a shell or
an AWX survey gives them), the run report in the current directory. SQLite on localhost; no run may print a
warning."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import yaml

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from playbook import ansible_env, assert_no_warnings
from test_restore_role import _archives, _damage, _environment, _fatal, _notes, _run

ROW_KEYS = ["action", "backup", "backup_id", "duration", "environment", "host", "message", "result", "size"]


def _playbook(tmp_path, name, entry, *extra, host_vars=None, hosts=None):
    """ansible-playbook lifeboat.backup.<name> -e <extra>... run in ``tmp_path``; returns the process. The inventory
    is localhost running ``entry`` (with ``host_vars``), or ``hosts`` ({name: host variables}, in name order)."""
    inventory = {"all": {"hosts": hosts or {"localhost": dict(_local(entry), **(host_vars or {}))}}}
    (tmp_path / "fleet.yml").write_text(yaml.safe_dump(inventory))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "fleet.yml"),
               "lifeboat.backup." + name]
    for value in extra:
        command += ["-e", value]
    process = subprocess.run(command, env=ansible_env(), cwd=str(tmp_path), capture_output=True, text=True,
                             timeout=600, check=False)
    assert_no_warnings(process)
    return process


def _local(entry):
    """A node on this machine that runs ``entry``."""
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "lifeboat_environments": [entry]}


def _unreachable(entry):
    """A node that runs ``entry`` and cannot be reached: SSH to a closed port of this machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_timeout": 2,
            "ansible_python_interpreter": sys.executable, "lifeboat_environments": [entry]}


def _report(tmp_path, directory="lifeboat-report"):
    rows = json.loads((tmp_path / directory / "report.json").read_text())
    for row in rows:
        assert sorted(row) == ROW_KEYS, row
        assert isinstance(row["duration"], float) and isinstance(row["size"], int), row
        assert all(isinstance(row[key], str) for key in ROW_KEYS if key not in ("duration", "size")), row
    return rows


def _changed(process):
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", process.stdout, re.M)
    return {host: int(count) for host, count in recap}


def _plan(tmp_path, **item):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"disaster_recovery_plan": [dict({"hosts": "all", "environment": "shop"}, **item)]}))
    return "@%s" % path


def test_booleans_given_as_strings(tmp_path):
    entry = _environment(tmp_path, protected=True, retention={"keep_last": 1})
    done = _playbook(tmp_path, "backup", entry, "backup_label=first")
    assert done.returncode == 0, done.stdout[-3000:]
    done = _playbook(tmp_path, "backup", entry, "backup_label=golden", "backup_prune=false")
    assert done.returncode == 0, done.stdout[-3000:]
    assert _pruning(done) == "skipping", "backup_prune=false"
    _damage(entry)

    refused = _playbook(tmp_path, "restore", entry, "restore_environment=shop", "restore_backup=golden",
                        "restore_confirm=false")
    assert refused.returncode != 0 and "is protected; nothing was touched" in refused.stdout
    assert _notes(entry["path"]) == 3

    done = _playbook(tmp_path, "restore", entry, "restore_environment=shop", "restore_backup=golden",
                     "restore_confirm=true", "restore_safety_backup=false")
    assert done.returncode == 0, done.stdout[-3000:]
    assert _notes(entry["path"]) == 10 and len(_archives(entry)) == 2, "restored, no safety backup"
    assert _report(tmp_path)[0]["message"] == "no safety backup (restore_safety_backup: false)"

    _damage(entry)
    again = _playbook(tmp_path, "restore", entry, "restore_environment=shop", "restore_backup=golden",
                      "restore_confirm=yes", "restore_force=no")
    assert again.returncode == 0 and _notes(entry["path"]) == 3, "restore_force=no is false"
    assert _changed(again) == {"localhost": 0}, again.stdout[-3000:]

    forced = _playbook(tmp_path, "disaster_recovery", entry, _plan(tmp_path, backup="golden"),
                       "disaster_recovery_confirm=yes", "disaster_recovery_force=true")
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert _notes(entry["path"]) == 10
    assert [row["result"] for row in _report(tmp_path)] == ["changed"]

    rerun = _playbook(tmp_path, "disaster_recovery", entry, _plan(tmp_path, backup="golden"),
                      "disaster_recovery_confirm=1", "disaster_recovery_force=0")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert _changed(rerun) == {"localhost": 0}, "writing the same report is no change: " + rerun.stdout[-3000:]

    pruned = _playbook(tmp_path, "backup", entry, "backup_label=third", "backup_prune=yes")
    assert pruned.returncode == 0, pruned.stdout[-3000:]
    # The forced recovery's safety backup is the roles' own: retention (keep_last 1) prunes it; the operator's
    # labels stay.
    assert _pruning(pruned) == "changed"
    labels = sorted(backup["label"] for backup in Catalog(entry["catalog"]).entries("shop"))
    assert labels == ["first", "golden", "third"], labels


def _pruning(process):
    """What the backup role's prune task did: ok, changed or skipping."""
    found = re.search(r"TASK \[lifeboat.backup.backup : Prune the catalog of shop\] \**\n(\w+):", process.stdout)
    return found.group(1)


def test_report_is_written_when_every_host_failed(tmp_path):
    entry = _environment(tmp_path, health={"command": ["false"], "timeout": 1})
    done = _playbook(tmp_path, "backup", entry, "backup_label=golden", "lifeboat_report_dir=reports/backup")
    assert done.returncode == 0, done.stdout[-3000:]
    assert [row["action"] for row in _report(tmp_path, "reports/backup")] == ["backup"]
    _damage(entry)

    failed = _playbook(tmp_path, "restore", entry, "restore_environment=shop", "restore_backup=golden")

    assert failed.returncode != 0
    assert "Run report: %s/lifeboat-report/report.md" % tmp_path in failed.stdout
    rows = _report(tmp_path)
    assert [(row["action"], row["result"], row["backup"]) for row in rows] == [("rollback", "rolled_back", "golden")]
    assert rows[0]["backup_id"] and rows[0]["size"] > 0 and rows[0]["duration"] > 0
    assert _notes(entry["path"]) == 3


@pytest.mark.parametrize("plan,message", [
    ([], "disaster_recovery_plan is empty or not set"),
    (None, "disaster_recovery_plan is empty or not set"),
    ([{"hosts": "all", "environment": "shop"}], "every plan item needs an environment and either backup"),
    ([{"environment": "nosuch", "backup": "latest"}], "the plan restores nosuch on localhost, which has no such"),
])
def test_a_plan_that_cannot_run_fails_once(tmp_path, plan, message):
    entry = _environment(tmp_path)
    extra = []
    if plan is not None:
        (tmp_path / "plan.json").write_text(json.dumps({"disaster_recovery_plan": plan}))
        extra.append("@%s" % (tmp_path / "plan.json"))

    process = _playbook(tmp_path, "disaster_recovery", entry, *extra)

    assert process.returncode != 0
    assert _fatal(process, message) == 1, process.stdout
    assert [(row["result"], row["message"].startswith(message)) for row in _report(tmp_path)] == [("failed", True)]


def test_lifeboat_catalog_is_every_role_s_default(tmp_path):
    entry = _environment(tmp_path)
    del entry["catalog"]
    catalog = tmp_path / "fleet-catalog"
    host_vars = {"lifeboat_catalog": str(catalog)}

    done = _playbook(tmp_path, "backup", entry, "backup_label=golden", host_vars=host_vars)
    assert done.returncode == 0, done.stdout[-3000:]
    assert _archives(dict(entry, catalog=str(catalog)))
    _damage(entry)
    done = _playbook(tmp_path, "disaster_recovery", entry, _plan(tmp_path, backup="golden"), host_vars=host_vars)
    assert done.returncode == 0, done.stdout[-3000:]
    assert _notes(entry["path"]) == 10

    # The environment role waits for a backup that holds the lock in that catalog.
    start = {"name": "Start", "ansible.builtin.include_role": {"name": "lifeboat.backup.environment"},
             "vars": {"environment_name": "shop", "environment_action": "start",
                      "environment_backup_wait_timeout": 1}}
    with Catalog(str(catalog)).lock("shop", "backup"):
        process = _run(tmp_path, entry, [start], host_vars=host_vars)[0]
    assert process.returncode != 0
    assert "a backup (pid %d" % os.getpid() in process.stdout


def _rows(tmp_path):
    """The report's rows as (host, environment, action, backup, result), and its messages by host."""
    rows = _report(tmp_path)
    return ([(row["host"], row["environment"], row["action"], row["backup"], row["result"]) for row in rows],
            {row["host"]: row["message"] for row in rows})


def test_report_names_the_unreachable_host(tmp_path):
    entry = _environment(tmp_path)
    hosts = {"gone": _unreachable(entry), "localhost": _local(entry)}

    process = _playbook(tmp_path, "backup", entry, "backup_label=golden", hosts=hosts)

    assert process.returncode != 0
    rows, messages = _rows(tmp_path)
    assert rows == [("gone", "shop", "none", "golden", "failed"), ("localhost", "shop", "backup", "golden", "changed")]
    assert messages["gone"].startswith("unreachable: ") and messages["gone"].endswith("; nothing was touched")
    assert "Connection refused" in messages["gone"]
    assert len(_archives(entry)) == 1


@pytest.mark.parametrize("name,extra,backup", [
    ("backup", [], "shop-20"),
    ("restore", ["restore_environment=shop", "restore_backup=golden"], "golden"),
    ("disaster_recovery", ["@plan"], "/srv/archives/shop.tar"),
])
def test_report_is_written_when_every_host_is_unreachable(tmp_path, name, extra, backup):
    entry = _environment(tmp_path)
    extra = [_plan(tmp_path, src="/srv/archives/shop.tar") if value == "@plan" else value for value in extra]

    process = _playbook(tmp_path, name, entry, *extra, hosts={"gone": _unreachable(entry)})

    assert process.returncode != 0
    assert "Run report: %s/lifeboat-report/report.md" % tmp_path in process.stdout
    rows, messages = _rows(tmp_path)
    assert [row[:3] + row[4:] for row in rows] == [("gone", "shop", "none", "failed")]
    assert rows[0][3].startswith(backup) and messages["gone"].startswith("unreachable: ")


def test_the_role_s_own_labels_follow_retention_and_the_operator_s_stay(tmp_path):
    entry = _environment(tmp_path, retention={"keep_last": 1})
    for label in ("shop-2000-01-01", "before-upgrade"):
        done = _playbook(tmp_path, "backup", entry, "backup_label=" + label)
        assert done.returncode == 0, done.stdout[-3000:]
    # "shop-2000-01-01" is a label the role gives on its own (an earlier day's backup): the next run prunes it.
    assert [row["message"].startswith("pruned ") for row in _report(tmp_path)] == [True]

    done = _playbook(tmp_path, "backup", entry)
    assert done.returncode == 0, done.stdout[-3000:]

    today = _report(tmp_path)[0]["backup"]
    assert re.fullmatch(r"shop-\d{4}-\d{2}-\d{2}", today)
    labels = [backup["label"] for backup in Catalog(entry["catalog"]).entries("shop")]
    assert sorted(labels) == ["before-upgrade", today], "the operator's label stays, the role's older one goes"


def test_environments_given_as_a_string(tmp_path):
    shop = _environment(tmp_path / "shop")
    wiki = dict(_environment(tmp_path / "wiki"), name="wiki")
    host = {"localhost": dict(_local(shop), lifeboat_environments=[shop, wiki])}
    # "sh" is no environment of the host: as a string it must not match "shop" by a substring.
    refused = _playbook(tmp_path, "backup", None, "backup_environments=sh", hosts=host)
    assert refused.returncode != 0 and "not in lifeboat_environments: sh;" in refused.stdout, refused.stdout[-3000:]
    for asked, backed_up in (("shop", ["shop"]), ("shop,wiki", ["shop", "wiki"])):
        done = _playbook(tmp_path, "backup", None, "backup_environments=" + asked, hosts=host)
        assert done.returncode == 0, done.stdout[-3000:]
        assert sorted(row["environment"] for row in _report(tmp_path)) == backed_up


def _fleet(tmp_path, unreachable=()):
    """Nodes node1..node3 on this machine, each with its own environment; ``unreachable`` cannot be reached."""
    hosts, entries = {}, {}
    for name in ("node1", "node2", "node3"):
        entries[name] = _environment(tmp_path / name)
        hosts[name] = (_unreachable if name in unreachable else _local)(entries[name])
    return hosts, entries


def _backed_up(entries):
    return sorted(name for name, entry in entries.items() if os.path.isdir(os.path.join(entry["catalog"], "shop"))
                  and _archives(entry))


def test_fleet_variables_given_as_strings(tmp_path):
    hosts, entries = _fleet(tmp_path)
    done = _playbook(tmp_path, "backup", None, "lifeboat_hosts=node3", hosts=hosts)
    assert done.returncode == 0, done.stdout[-3000:]
    assert _backed_up(entries) == ["node3"] and [row["host"] for row in _report(tmp_path)] == ["node3"]

    done = _playbook(tmp_path, "backup", None, "lifeboat_hosts=node1,node2", "lifeboat_serial=1", hosts=hosts)
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(re.findall(r"^PLAY \[Back up the environments\]", done.stdout, re.M)) == 2, "one host at a time"
    assert _backed_up(entries) == ["node1", "node2", "node3"]
    assert [row["host"] for row in _report(tmp_path)] == ["node1", "node2"]


@pytest.mark.parametrize("percentage,backed_up", [("0", ["node2"]), ("50", ["node2", "node3"])])
def test_max_fail_percentage_stops_the_next_batches(tmp_path, percentage, backed_up):
    hosts, entries = _fleet(tmp_path, unreachable=["node1"])

    process = _playbook(tmp_path, "backup", None, "lifeboat_serial=2", "lifeboat_max_fail_percentage=" + percentage,
                        hosts=hosts)

    assert process.returncode != 0
    assert _backed_up(entries) == backed_up, "the first batch (node1, node2) is half failed"
    assert [(row["host"], row["result"]) for row in _report(tmp_path)] == [
        ("node1", "failed")] + [(host, "changed") for host in backed_up]
