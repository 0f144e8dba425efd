# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A managed PostgreSQL service (no shell, no superuser, reached over TCP only) backed up and restored from the
controller side, as from an execution environment: the play's host is the database service, every task runs
with ``delegate_to: localhost``, and the catalog lives on the controller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import yaml

from ansible_collections.lifeboat.backup.tests.integration.pgcluster import PgCluster
from datasets import damage_pg, make_pg_app, pg_snapshot
from playbook import ansible_env, play_tasks, read_results

# The harness keeps the socket for its own set-up and checks, as the provider's console would; the modules'
# login role can only come in over TCP.
HBA = """\
local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
"""
ADMIN = "service_admin"
ADMIN_PASSWORD = "admin-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def service():
    """The managed service: its administrator may create databases and roles and end sessions, no more."""
    cluster = PgCluster(hba=HBA).start()
    cluster.psql("CREATE ROLE %s LOGIN CREATEDB CREATEROLE PASSWORD '%s'" % (ADMIN, ADMIN_PASSWORD))
    cluster.psql("GRANT pg_signal_backend TO %s" % ADMIN)
    yield cluster
    cluster.stop()


def run_delegated(tasks, inventory_dir, check=False):
    """Run ``tasks`` for the inventory host ``shop-db``, which no connection reaches, each delegated to the
    controller; return the registered results."""
    out = os.path.join(inventory_dir, "results-%s.json" % uuid.uuid4().hex[:6])
    delegated = [dict(task, delegate_to="localhost") for task in tasks]
    playbook = [{"name": "Back up the managed database from the controller", "hosts": "shop-db",
                 "gather_facts": False, "tasks": play_tasks(delegated, out)}]
    path = os.path.join(inventory_dir, "play.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(playbook, handle)
    # The delegated tasks run with the controller's Python, as in an execution environment.
    inventory = {"all": {"hosts": {"shop-db": {"ansible_host": "192.0.2.10"}},
                         "vars": {"ansible_python_interpreter": sys.executable}}}
    with open(os.path.join(inventory_dir, "inventory.yml"), "w") as handle:
        yaml.safe_dump(inventory, handle)
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i",
               os.path.join(inventory_dir, "inventory.yml"), path] + (["--check"] if check else [])
    process = subprocess.run(command, env=ansible_env(), capture_output=True, text=True, check=False)
    return read_results(out, process)


@pytest.mark.parametrize("login", ["superuser", "administrator"])
def test_round_trip_over_tcp_from_the_controller(service, tmp_path, login):
    name = "shop_" + uuid.uuid4().hex[:8]
    make_pg_app(service, name)
    # The provider lets the administrator act for the roles it manages.
    service.psql("GRANT %s TO %s" % (name, ADMIN))
    original = pg_snapshot(service, name)
    user, password = (ADMIN, ADMIN_PASSWORD) if login == "administrator" else (service.superuser, service.password)
    options = {"environment": name, "engine": "postgresql", "database": name, "catalog": str(tmp_path / "catalog"),
               "login_host": service.host, "login_port": service.port, "login_user": user,
               "login_password": password}
    create = {"lifeboat.backup.backup_create": dict(options, label="nightly")}
    restore = {"lifeboat.backup.backup_restore": dict(options, backup="nightly")}

    planned = run_delegated([create], str(tmp_path), check=True)[0]
    assert planned["changed"] is True and not os.path.exists(options["catalog"]), planned
    created, again = run_delegated([create, create], str(tmp_path))
    assert created["changed"] is True, json.dumps(created, indent=1)
    assert again["changed"] is False and again["backup"]["id"] == created["backup"]["id"]

    damage_pg(service, name)
    damaged = pg_snapshot(service, name)
    assert damaged != original
    check = run_delegated([restore], str(tmp_path), check=True)[0]
    assert check["changed"] is True and pg_snapshot(service, name) == damaged, check

    restored, repeat = run_delegated([restore, restore], str(tmp_path))
    assert restored["changed"] is True, json.dumps(restored, indent=1)
    assert pg_snapshot(service, name) == original
    assert repeat["changed"] is False, repeat
