# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Like playbook.run_tasks, against any inventory host (an SSH node, say), optionally measuring memory.

``run_play`` hands back the registered results, the process and the peak resident memory in bytes of the
largest process of the ansible-playbook process tree (the controller, its workers, and with the local
connection also the modules). It comes from wait4() in measured.py, which the kernel fills in with the
maximum over the child and every descendant it reaped: nothing is sampled, so no peak is missed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import yaml

from playbook import ansible_env, play_tasks, read_results

HOST = "node"
MEASURED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured.py")


def run_play(tasks, host_vars=None, check=False, diff=False, play_vars=None, become=False, timeout=600):
    """Run ``tasks`` in one play on one host; return (results, process, peak RSS in bytes).

    ``host_vars`` describe the host (see sshd.Sshd.host_vars); without them it is localhost over the local
    connection. Every task gets ``ignore_errors``; the results travel back through a file on the controller.
    """
    with tempfile.TemporaryDirectory(prefix="lifeboat-play-") as work:
        out = os.path.join(work, "results.json")
        inventory = {"all": {"hosts": {
            HOST: host_vars or {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }}}
        inventory_path = os.path.join(work, "inventory.yml")
        with open(inventory_path, "w") as handle:
            yaml.safe_dump(inventory, handle)
        play = {"name": "Lifeboat test", "hosts": HOST, "gather_facts": False, "become": become,
                "vars": play_vars or {}, "tasks": play_tasks(tasks, out)}
        path = os.path.join(work, "play.yml")
        with open(path, "w") as handle:
            yaml.safe_dump([play], handle)
        command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory_path, path]
        if check:
            command.append("--check")
        if diff:
            command.append("--diff")
        process, peak = _run_measured(command, work, timeout)
        return read_results(out, process), process, peak


def _run_measured(command, work, timeout):
    stdout_path = os.path.join(work, "stdout")
    stderr_path = os.path.join(work, "stderr")
    peak_path = os.path.join(work, "peak")
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        child = subprocess.Popen([sys.executable, MEASURED, peak_path] + command, env=ansible_env(),
                                 stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    try:
        child.wait(timeout)
    except BaseException:
        child.kill()
        child.wait()
        raise
    with open(stdout_path, errors="replace") as handle:
        child.stdout = handle.read()
    with open(stderr_path, errors="replace") as handle:
        child.stderr = handle.read()
    with open(peak_path) as handle:
        return child, int(handle.read())
