"""Waiting for a condition in tests, without depending on how busy the machine is."""

import time


def poll(predicate, timeout: float, interval: float = 0.05):
    """The first truthy value of predicate() within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """poll(), failing with `what` when the condition is not reached in time."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


def run_until(rec, predicate, timeout: float = 10.0):
    """Step a Recorder's main loop until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        rec.step(0.02)
