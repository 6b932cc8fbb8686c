"""The host's wall clock now, in integer UTC epoch microseconds (the one helper for it).

Code that must be testable with a fake clock takes recorder.timekeeping.Clock instead.
"""

import time


def now_us() -> int:
    """The host's wall clock now: UTC epoch microseconds."""
    return time.time_ns() // 1000
