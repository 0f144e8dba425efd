# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run real ansible-playbook processes against localhost and hand back the registered results."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# `make test` installs the collection there; a plain pytest run falls back to a symlink to this tree.
DEFAULT_COLLECTIONS = "/tmp/lifeboat-collections"


def collections_path():
    path = os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if path:
        return path
    link = os.path.join(DEFAULT_COLLECTIONS, "ansible_collections", "lifeboat", "backup")
    if not os.path.islink(link) or os.readlink(link) != REPO:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(REPO, link)
    return DEFAULT_COLLECTIONS


def ansible_env(**extra):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path(),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    env.update(extra)
    return env


def assert_no_warnings(process):
    """The collection's roles and playbooks print no [WARNING] nor [DEPRECATION WARNING]: fail the test on any."""
    found = re.findall(r"^\[(?:DEPRECATION )?WARNING\]:.*$", process.stdout + process.stderr, re.M)
    assert not found, "ansible-playbook printed warnings:\n%s" % "\n".join(found)


def play_tasks(tasks, out):
    """``tasks``, each with ``ignore_errors`` (a failing task's result is for the test to inspect) and a registered
    result, plus a last task that writes every result to ``out`` on the controller."""
    registered = []
    result = []
    for index, task in enumerate(tasks):
        task = dict(task)
        task.setdefault("ignore_errors", True)
        task["register"] = "lifeboat_result_%d" % index
        registered.append(task["register"])
        result.append(task)
    result.append({
        "name": "Hand the results to the test",
        "ansible.builtin.copy": {"content": "{{ [%s] | to_json }}" % ", ".join(registered), "dest": out,
                                 "mode": "0600"},
        "delegate_to": "localhost",
        "become": False,
        "check_mode": False,
        "diff": False,
    })
    return result


def read_results(out, process):
    if not os.path.exists(out):
        raise AssertionError("ansible-playbook failed (%d):\n%s\n%s" % (process.returncode, process.stdout,
                                                                        process.stderr))
    with open(out) as handle:
        return json.load(handle)


def run_play(tasks, check=False, diff=False, extra_vars=None, play_vars=None):
    """Run ``tasks`` in one play on localhost; return (list of registered results, process)."""
    with tempfile.TemporaryDirectory(prefix="lifeboat-play-") as work:
        out = os.path.join(work, "results.json")
        variables = {"ansible_python_interpreter": sys.executable}
        variables.update(play_vars or {})
        playbook = [{"name": "Lifeboat test", "hosts": "localhost", "gather_facts": False,
                     "vars": variables, "tasks": play_tasks(tasks, out)}]
        path = os.path.join(work, "play.yml")
        with open(path, "w") as handle:
            yaml.safe_dump(playbook, handle)
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                   "-c", "local", path]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        process = subprocess.run(command, env=ansible_env(), capture_output=True, text=True, check=False)
        return read_results(out, process), process


def run_tasks(tasks, **options):
    """The registered results of ``tasks`` run in one play (see run_play)."""
    return run_play(tasks, **options)[0]


def run_module(name, args, check=False, diff=False):
    """Run one module of the collection through ansible-playbook; return its result."""
    return run_tasks([{"name": "Run %s" % name, "lifeboat.backup.%s" % name: args}], check=check, diff=diff)[0]
