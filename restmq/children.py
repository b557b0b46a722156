"""Child processes of ``restmq serve`` (the embedded engine, the worker processes) die with it.

Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked exits, not the process: fork from the
main thread. Without it a SIGKILLed parent leaves its children running, reparented to PID 1, holding
the data or the port.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PRIVATE_UMASK = 0o077  # files 0600, directories 0700
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A hook to run first in the child (a ``preexec_fn``, or a worker's first call): SIGTERM when
    ``parent_pid`` dies, an exit at once if it is already gone, and private files (umask 077)."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the preexec hook should not import or dlopen

    def preexec() -> None:
        os.umask(PRIVATE_UMASK)  # the AOF, its manifest and base, the pid file: 0600 whatever our umask
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl: the signal will never come
            os._exit(1)

    return preexec
