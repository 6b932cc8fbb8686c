"""Waiting for a condition in tests, without depending on how busy the machine is."""

import time


def poll(predicate, timeout: float, interval: float = 0.05, retry_on: tuple = ()):
    """The first truthy value of predicate() within `timeout` seconds, else its last value.

    An exception of a `retry_on` type counts as a falsy value (a guest that does not
    answer yet); the last one is the value then.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except retry_on as exc:
            value = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, retry_on: tuple = ()):
    """poll(), failing with `what` when the condition is not reached in time."""
    value = poll(predicate, timeout, interval, retry_on)
    if not value or isinstance(value, BaseException):
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} "
                             f"(last: {value!r})"[:2000])
    return value


def run_until(rec, predicate, timeout: float = 10.0):
    """Step a Recorder's main loop until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        rec.step(0.02)
