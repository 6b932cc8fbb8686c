"""Child processes that end with their parent, even when it is killed with SIGKILL.

On the appliance systemd kills the unit's whole cgroup; by hand (`picorder demo`,
`picorder recorder` in a terminal) nothing would, and an ffmpeg left running goes
on writing with nobody indexing or rotating. So every long-lived child asks the
kernel for a signal when its parent dies (prctl PR_SET_PDEATHSIG), in the forked
child just before exec:

- "Parent" is the *thread* that forked: spawn only from a thread that lives as
  long as the child should (the recorder spawns ffmpeg from its main loop).
- The kernel clears the setting when the child's credentials change, so it is set
  after subprocess has switched to ffmpeg's own user (preexec_fn runs after
  setuid/setgid) and survives the exec of a binary that is not set-user-ID.
- A parent that died between fork and prctl sends no signal: the child checks
  its parent is still the one that forked it and signals itself otherwise.
"""

import ctypes
import os
import signal
from collections.abc import Callable
from functools import partial

PR_SET_PDEATHSIG = 1                # <linux/prctl.h>

_libc = ctypes.CDLL(None, use_errno=True)      # loaded here, never in a forked child
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A subprocess preexec_fn: the child gets `signum` when this process dies.

    SIGTERM lets ffmpeg close its segment and the simulated cameras leave their
    main loop; gunicorn gets SIGKILL (its own shutdowns take about 2 s), and its
    workers get SIGKILL when it dies (gunicorn.conf.py's post_fork).
    """
    return partial(end_with_parent, signum, os.getpid())


def end_with_parent(signum: int, parent: int) -> None:
    """In a freshly forked child of `parent`: get `signum` when the parent dies.

    Only async-signal-safe work here (it runs between fork and exec): no logging.
    """
    _prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:          # the parent died before prctl: no signal will come
        os.kill(os.getpid(), signum)
