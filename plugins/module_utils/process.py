# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Child processes that die with the module: a SIGKILLed module leaves no pg_dump, pg_restore or updater running.

Linux only (``prctl(PR_SET_PDEATHSIG)``), as the rest of Lifeboat (``renameat2``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
# Enough of a child's output to say why it failed, short enough for a message.
TAIL_LINES = 20


def _die_with(parent):
    def set_death_signal():
        # Runs in the child between fork and exec.
        if _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            # The parent died before prctl: nobody would send the signal any more.
            os.kill(os.getpid(), signal.SIGKILL)
    return set_death_signal


def run(argv, check=False, **kwargs):
    """``subprocess.run`` whose child gets SIGKILL when this process dies, whatever kills it."""
    return subprocess.run(argv, preexec_fn=_die_with(os.getpid()), check=check, **kwargs)


def tail(output, secrets=()):
    """The last lines of a child's ``output`` (bytes) as text, with each of ``secrets`` masked."""
    text = "\n".join(output.decode("utf-8", errors="replace").rstrip().splitlines()[-TAIL_LINES:])
    for secret in secrets:
        text = text.replace(secret, "********") if secret else text
    return text
