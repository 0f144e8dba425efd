# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What do the roles cost on top of the module calls they make, on a tiny SQLite environment?

See README.md. Run from the work tree with a built copy of the collection:

    ANSIBLE_COLLECTIONS_PATH=/tmp/lb-build python benchmarks/role_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

from fleet_app import FleetApp  # noqa: E402 - the tests' app, found beside the benchmarks

# Records every task result on the node: its action, how long it ran, whether it ran a module there.
_CALLBACK = '''
import json, os, time
from ansible.plugins.callback import CallbackBase

# Actions that run on the controller only: everything else ships a module to the node.
CONTROLLER = {"set_fact", "assert", "debug", "fail", "include_tasks", "include_role", "import_tasks",
              "import_role", "validate_argument_spec", "meta", "add_host", "group_by", "set_stats"}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lifeboat_timer"

    def __init__(self):
        super().__init__()
        self.started = {}
        self.out = open(os.environ["LIFEBOAT_TIMER_OUT"], "a")

    def v2_runner_on_start(self, host, task):
        self.started[(host.name, task._uuid)] = time.monotonic()

    def _record(self, result, status):
        task = result._task
        began = self.started.pop((result._host.name, task._uuid), time.monotonic())
        action = task.action.rsplit(".", 1)[-1]
        self.out.write(json.dumps({"task": task.get_name(), "action": task.action, "status": status,
                                   "module": status != "skipped" and action not in CONTROLLER,
                                   "seconds": time.monotonic() - began}) + "\\n")
        self.out.flush()

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
'''


def make_environment(root):
    app_dir = os.path.join(root, "app")
    os.makedirs(os.path.join(app_dir, "files"))
    with open(os.path.join(app_dir, "files", "readme.txt"), "w") as handle:
        handle.write("tiny\n")
    db = sqlite3.connect(os.path.join(app_dir, "app.db"))
    db.execute("create table notes (id integer primary key, body text)")
    db.executemany("insert into notes (body) values (?)", [("note %d" % i,) for i in range(10)])
    db.commit()
    db.close()
    app = FleetApp(os.path.join(root, "fleet"), engine="sqlite", path=os.path.join(app_dir, "app.db"))
    entry = {"name": "shop", "engine": "sqlite", "path": os.path.join(app_dir, "app.db"),
             "files_path": os.path.join(app_dir, "files"), "catalog": os.path.join(root, "catalog"),
             "app": app.commands(), "health": {"url": app.health_url(), "timeout": 20}}
    return entry, app


def run(root, name, tasks, entry):
    """One play on localhost; returns (wall seconds, task records)."""
    inventory = {"all": {"hosts": {"localhost": {"ansible_connection": "local",
                                                 "ansible_python_interpreter": sys.executable,
                                                 "lifeboat_environments": [entry]}}}}
    play = [{"name": name, "hosts": "all", "gather_facts": False, "tasks": tasks}]
    for base, content in (("inventory.yml", inventory), ("play.yml", play)):
        with open(os.path.join(root, base), "w") as handle:
            yaml.safe_dump(content, handle)
    out = os.path.join(root, "timer.jsonl")
    if os.path.exists(out):
        os.unlink(out)
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=os.path.join(root, "callbacks"),
               ANSIBLE_CALLBACKS_ENABLED="lifeboat_timer", LIFEBOAT_TIMER_OUT=out, ANSIBLE_NOCOLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
               "-i", os.path.join(root, "inventory.yml"), os.path.join(root, "play.yml")]
    started = time.monotonic()
    process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit("%s failed:\n%s%s" % (name, process.stdout[-3000:], process.stderr[-2000:]))
    with open(out) as handle:
        return wall, [json.loads(line) for line in handle]


def role(name, **variables):
    return {"name": "Run " + name, "ansible.builtin.include_role": {"name": "lifeboat.backup." + name},
            "vars": variables}


def damage(entry):
    with sqlite3.connect(entry["path"]) as db:
        db.execute("delete from notes where id > 3")


def measure(root, entry, app):
    """Each case: (name, wall, records). The app runs, as it would on a node."""
    cases = []
    app.start()
    try:
        cases.append(("backup role", *run(root, "backup", [role("backup", backup_label="golden")], entry)))
        damage(entry)
        restore = role("restore", restore_environment="shop", restore_backup="golden")
        cases.append(("restore role", *run(root, "restore", [restore], entry)))
        cases.append(("restore role, unchanged", *run(root, "again", [restore], entry)))
        damage(entry)
        bare = {"name": "Restore", "lifeboat.backup.backup_restore": {
            "environment": "shop", "engine": "sqlite", "path": entry["path"], "files_path": entry["files_path"],
            "catalog": entry["catalog"], "backup": "golden", "force": True, "terminate_sessions": True}}
        cases.append(("backup_restore alone", *run(root, "bare", [bare], entry)))
    finally:
        app.stop()
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    results = {}
    for number in range(options.rounds):
        with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as root:
            os.makedirs(os.path.join(root, "callbacks"))
            with open(os.path.join(root, "callbacks", "lifeboat_timer.py"), "w") as handle:
                handle.write(_CALLBACK)
            entry, app = make_environment(root)
            for name, wall, records in measure(root, entry, app):
                calls = [record for record in records if record["module"]]
                results.setdefault(name, []).append((wall, len(records), len(calls),
                                                     sum(record["seconds"] for record in calls)))
        print("round %d done" % (number + 1), file=sys.stderr, flush=True)
    bare = statistics.median(row[0] for row in results["backup_restore alone"])
    print("%-26s %7s %6s %7s %10s %10s %9s" % ("case (medians)", "wall s", "tasks", "modules", "modules s",
                                               "x modules", "x alone"))
    for name, rows in results.items():
        wall, tasks, calls, seconds = (statistics.median(column) for column in zip(*rows))
        print("%-26s %7.2f %6d %7d %10.2f %9.1fx %8.1fx"
              % (name, wall, tasks, calls, seconds, wall / seconds, wall / bare))


if __name__ == "__main__":
    main()
