# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated fleet: four nodes, each with its own PostgreSQL cluster, file store and running app; two of them
reached over real SSH. The collection's own playbooks back them up and apply a recovery plan."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from archives import flip_byte
from fleet_app import FleetApp
from playbook import ansible_env, assert_no_warnings
from sshd import Sshd, missing

ROWS = {"node1": 11, "node2": 12, "node3": 13, "node4": 14}
SSH_NODES = {"node3": "127.0.0.2", "node4": "127.0.0.3"}


@pytest.fixture(scope="module")
def fleet(pg_cluster_factory, tmp_path_factory):
    if missing():
        pytest.skip("sshd is not installed (%s); make test installs openssh-server" % missing())
    root = tmp_path_factory.mktemp("fleet")
    servers = {name: Sshd(address).start() for name, address in SSH_NODES.items()}
    apps = []
    try:
        hosts = {}
        for (name, rows), cluster in zip(ROWS.items(), pg_cluster_factory(len(ROWS))):
            # An ordinary owner: a restore refuses to run an archive's SQL as a superuser.
            cluster.psql("CREATE ROLE shop NOLOGIN")
            cluster.psql("CREATE DATABASE shop OWNER shop")
            with cluster.connect("shop") as conn:
                conn.execute("SET ROLE shop")
                conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
                conn.execute("INSERT INTO items (name) SELECT 'item ' || i FROM generate_series(1, %s) i", [rows])
            files = root / name / "files"
            files.mkdir(parents=True)
            (files / "readme.txt").write_text("%s\n" % name)
            app = FleetApp(root / name / "app", engine="postgresql", database="shop",
                           pg={"PGHOST": cluster.socket_dir, "PGPORT": cluster.port, "PGUSER": "postgres"}).start()
            apps.append(app)
            entry = {"name": "shop", "database": "shop", "files_path": str(files),
                     "catalog": str(root / name / "catalog"),
                     "connection": {"login_unix_socket": cluster.socket_dir, "login_port": cluster.port},
                     "app": app.commands(), "health": {"url": app.health_url(), "timeout": 60}}
            if name in servers:
                host = servers[name].host_vars()
            else:
                host = {"ansible_connection": "local"}
            host.update(ansible_python_interpreter=sys.executable, lifeboat_environments=[entry])
            hosts[name] = {"vars": host, "cluster": cluster, "app": app, "entry": entry}
        inventory = root / "fleet.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {name: h["vars"] for name, h in hosts.items()}}}))
        yield {"root": root, "inventory": str(inventory), "hosts": hosts}
    finally:
        for app in apps:
            app.stop()
        for server in servers.values():
            server.stop()


def playbook(fleet, name, extra):
    extra_file = fleet["root"] / ("%s-vars.json" % name)
    extra_file.write_text(json.dumps(extra))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", fleet["inventory"],
               "lifeboat.backup.%s" % name, "-e", "@%s" % extra_file]
    # In the fleet's directory: a report the run writes by default (lifeboat-report) lands there.
    process = subprocess.run(command, env=ansible_env(), cwd=str(fleet["root"]), capture_output=True, text=True,
                             check=False, timeout=900)
    assert_no_warnings(process)
    return process


def recap(process):
    """host -> {ok, changed, failed, ...} from the PLAY RECAP of the last play that names the host."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", process.stdout, re.M):
        found[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def count(host):
    return host["cluster"].psql("SELECT count(*) FROM items", db="shop")[0][0]


def test_disaster_recovery_across_the_fleet(fleet):
    hosts = fleet["hosts"]
    backed_up = playbook(fleet, "backup", {"backup_label": "nightly"})
    assert backed_up.returncode == 0, backed_up.stdout[-3000:] + backed_up.stderr[-2000:]
    assert len(json.loads((fleet["root"] / "lifeboat-report" / "report.json").read_text())) == len(hosts)

    for host in hosts.values():
        host["cluster"].psql("DELETE FROM items WHERE id > 3", db="shop")
    # node4's backup is damaged: its restore must fail before anything is touched.
    flip_byte(glob.glob(os.path.join(hosts["node4"]["entry"]["catalog"], "shop", "*.tar"))[0])

    report_dir = fleet["root"] / "report"
    plan = {"disaster_recovery_plan": [{"hosts": "all", "environment": "shop", "backup": "nightly"}],
            "disaster_recovery_report_dir": str(report_dir)}
    applied = playbook(fleet, "disaster_recovery", plan)
    assert applied.returncode != 0, "node4 fails, so the run reports a failure"
    for name in ("node1", "node2", "node3"):
        assert count(hosts[name]) == ROWS[name], (name, applied.stdout[-3000:])
        assert hosts[name]["app"].healthy(), name
    assert count(hosts["node4"]) == 3, "the bad node keeps its previous data"
    assert hosts["node4"]["app"].running() and hosts["node4"]["app"].healthy(), "and its app runs"

    rows = json.loads((report_dir / "report.json").read_text())
    results = {row["host"]: row["result"] for row in rows}
    assert results == {"node1": "changed", "node2": "changed", "node3": "changed", "node4": "failed"}, rows
    assert {row["backup"] for row in rows} == {"nightly"} and all(row["size"] > 0 for row in rows), rows
    assert "is damaged" in next(row["message"] for row in rows if row["host"] == "node4")
    assert "node4" in (report_dir / "report.md").read_text()
    assert "| node4 |" in applied.stdout, "the table is printed too"

    again = playbook(fleet, "disaster_recovery", plan)
    counts = recap(again)
    for name in ("node1", "node2", "node3"):
        assert counts[name]["changed"] == 0 and counts[name]["failed"] == 0, (name, counts, again.stdout[-3000:])
        assert hosts[name]["app"].healthy()
    assert counts["node4"]["changed"] == 0, "writing the report (node4 runs it) is no change"
