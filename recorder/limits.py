"""Timeouts, intervals and limits, kept in one place."""

# Segments and fragments (DESIGN.md decision 2).
SEGMENT_SECONDS = 60
FRAGMENT_MAX_US = 1_000_000

# Supervision (issue: recorder, point 3).
BACKOFF_INITIAL_S = 1.0
BACKOFF_CAP_S = 60.0
BACKOFF_JITTER = 0.2            # +/- 20 % of the delay
HEALTHY_RESET_S = 60.0          # a run this long resets the backoff
STALL_PROGRESS_S = 20.0         # no progress line for this long -> stalled
STOP_GRACE_S = 5.0              # SIGINT/'q' -> wait this long -> SIGKILL
KILL_WAIT_S = 2.0               # after SIGKILL, wait this long for the reap


def segment_watchdog_s(segment_s: float = SEGMENT_SECONDS) -> float:
    """No new segment within this long -> stalled (2 x segment + 30 s)."""
    return 2 * segment_s + 30

# Service loop.
TICK_S = 0.25
RELOAD_POLL_S = 1.0             # config.db change detection, well inside 2 s
SHUTDOWN_BUDGET_S = 10.0        # graceful shutdown must finish inside this
CONTROL_TIMEOUT_S = 5.0

# SQLite.
BUSY_TIMEOUT_MS = 5000
