# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a command and record the peak resident memory of the largest process of its tree, in bytes.

    python measured.py RESULT_FILE COMMAND [ARG...]

wait4() reports the largest peak of a child and every descendant it reaped, but a process forked from a
big parent (a pytest worker that has run other tests) inherits that parent's peak at exec. Started from
this small process instead, the command's figure is its own. SIGTERM and SIGINT are passed on to it; the
exit status is the command's.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys


def main():
    result, argv = sys.argv[1], sys.argv[2:]
    child = subprocess.Popen(argv)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: child.send_signal(number))
    status = child.wait()
    with open(result, "w") as handle:
        handle.write("%d\n" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024))  # KiB on Linux
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
