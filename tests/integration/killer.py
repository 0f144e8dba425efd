# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a restore in this process and SIGKILL it at a chosen point: a crash, as a power cut would make it.

    python killer.py POINT PARAMS_JSON

The points wrap Lifeboat's own functions (test-only fault injection; the code under test has no hooks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import backup_restore, swap
from ansible_collections.lifeboat.backup.plugins.module_utils.engines import base, postgresql, postgresql_server


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_during_pg_restore():
    """pg_restore is running (started, not finished) when the module dies; it dies with the module."""
    original = subprocess.run

    def run(argv, *args, **kwargs):
        # The restore itself: not --version or --list, which connect nowhere.
        if argv[0].endswith("pg_restore") and any(arg.startswith("--dbname=") for arg in argv):
            child = subprocess.Popen(argv, env=kwargs.get("env"), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=kwargs.get("preexec_fn"))
            time.sleep(0.2)
            if child.poll() is None:
                die()
            raise AssertionError("pg_restore finished before it could be interrupted; use a bigger data set")
        return original(argv, *args, **kwargs)  # pylint: disable=subprocess-run-check  # as the caller asked

    postgresql_server.subprocess.run = run


def wrap(owner, name, before=False, nth=1):
    original = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if before and len(calls) == nth:
            die()
        result = original(*args, **kwargs)
        if not before and len(calls) == nth:
            die()
        return result

    setattr(owner, name, wrapper)


POINTS = {
    "during_pg_restore": kill_during_pg_restore,
    "after_staging": lambda: wrap(swap, "write_journal", before=True),
    "after_journal": lambda: wrap(swap, "write_journal", before=False),
    "during_commit": lambda: wrap(postgresql.PostgresEngine, "rename_all", before=False),
    "between_file_ops": lambda: wrap(base, "apply_path_op", before=False),
    "before_finish": lambda: wrap(swap, "finish", before=True),
}


def main():
    point, params_json = sys.argv[1], sys.argv[2]
    POINTS[point]()
    # A watchdog: a point that is never reached must not hang the test.
    threading.Timer(60, die).start()
    result = backup_restore.restore(json.loads(params_json))
    print(json.dumps(result))
    os._exit(3)  # the point was never reached


if __name__ == "__main__":
    main()
