"""Clock trust and the wall-clock anchoring of segments.

The clock is trusted when NTP says it is synchronised, when it was set from
the panel, or when it was restored and is not behind the last known good time
(DataPaths.clock_file, in the recorder's own state directory). Segment times are computed on the monotonic clock:
each ffmpeg run gets an anchor (the monotonic time of its stream time 0) and
the wall-clock offset (wall - monotonic) of its start. So a host clock step
inside a run does not stretch or fold the run, and a new run that would start
before the previous row ends is shifted to start at that end. Runs recorded
while the clock was untrusted are re-anchored (shifted by the offset change)
when the clock becomes trusted. Only runs of this recorder process can be
re-anchored: an earlier process's untrusted rows stay flagged.
"""

import logging
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder import limits
from recorder.wallclock import now_us

logger = logging.getLogger(__name__)

NTP = "ntp"
PANEL = "panel"
RESTORED = "restored"
UNTRUSTED = "untrusted"


class Clock:
    """The host's clocks in integer microseconds (tests inject a fake)."""

    def wall_us(self) -> int:
        return now_us()

    def mono_us(self) -> int:
        return time.monotonic_ns() // 1000

    def set_wall_us(self, utc_us: int) -> None:
        """Step the system clock (needs CAP_SYS_TIME)."""
        time.clock_settime_ns(time.CLOCK_REALTIME, utc_us * 1000)


def ntp_synchronized() -> bool | None:
    """systemd's NTPSynchronized; None when timedatectl is missing or cannot answer."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=limits.CLOCK_CMD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        logger.debug("timedatectl did not answer", exc_info=True)
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() == "yes"


@dataclass(frozen=True)
class ClockState:
    trusted: bool
    source: str
    now_utc_us: int


class Timekeeper:
    """Decides whether the wall clock can be trusted and remembers the last good time."""

    def __init__(self, clock_file: Path, *, clock: Clock | None = None,
                 ntp_check: Callable[[], bool | None] = ntp_synchronized,
                 old_clock_file: Path | None = None):
        self.clock = clock or Clock()
        self.clock_file = clock_file
        self.old_clock_file = old_clock_file      # read once, then removed (migration)
        self.ntp_check = ntp_check
        self._lock = threading.Lock()
        self.source = UNTRUSTED
        self.last_known_us: int | None = None

    @property
    def trusted(self) -> bool:
        return self.source != UNTRUSTED

    def start(self) -> None:
        """Decide the initial trust: NTP, else restored-and-not-behind, else untrusted."""
        self._migrate()
        self.last_known_us = self._read_last_known()
        if self.ntp_check() is True:
            self.source = NTP
        elif self.last_known_us is not None and self.clock.wall_us() >= self.last_known_us:
            self.source = RESTORED
        else:
            self.source = UNTRUSTED
        logger.info("clock %s (source %s)", "trusted" if self.trusted else "NOT trusted",
                    self.source)

    def _read_last_known(self) -> int | None:
        try:
            return int(self.clock_file.read_text().strip())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.exception("cannot read the last known time from %s", self.clock_file)
            return None

    def _migrate(self) -> None:
        """Move the last known time from where older versions kept it (the data directory,
        which the panel's user owns) into clock_file, once.

        The old file is untrusted input: it is opened without following a link (nor
        blocking on a FIFO), and taken only as a small plain file holding a plausible
        time. Whatever it was, it is removed, so it is read at most once.
        """
        old = self.old_clock_file
        if old is None or old == self.clock_file:
            return
        value = read_untrusted_time(old)
        try:
            old.unlink()            # removes a planted link itself, never its target
        except FileNotFoundError:
            return
        except OSError:
            logger.exception("cannot remove the old last known time %s", old)
        if value is not None and not self.clock_file.exists():
            self.clock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self._write(value):
                logger.info("moved the last known time from %s to %s", old, self.clock_file)

    def poll(self) -> bool:
        """Check NTP again; True if the clock just became trusted."""
        if self.source in (NTP, PANEL):
            return False
        if self.ntp_check() is True:
            return self._become(NTP)
        return False

    def set_from_panel(self, utc_us: int) -> bool:
        """Set the clock from the panel; True if it just became trusted."""
        if not isinstance(utc_us, int) or isinstance(utc_us, bool):
            raise ValueError("utc_us must be an integer (UTC epoch microseconds)")
        if not limits.CLOCK_MIN_UTC_US <= utc_us <= limits.CLOCK_MAX_UTC_US:
            raise ValueError("utc_us is not a plausible time")
        if self.source == NTP:
            raise ValueError("the clock is synchronised by NTP; it cannot be set by hand")
        try:
            self.clock.set_wall_us(utc_us)
        except PermissionError as exc:
            raise ValueError("the recorder may not set the system clock "
                             "(it needs CAP_SYS_TIME)") from exc
        was = self.trusted
        self._become(PANEL)
        return not was

    def trust_from_panel(self, browser_utc_us: int) -> bool:
        """The user saw the clock agree with their browser's and trusts it as it is (no step).

        Refused when the two differ by more than CLOCK_OFFER_TOLERANCE_S: then the
        clock must be set instead. True if the clock just became trusted.
        """
        if not isinstance(browser_utc_us, int) or isinstance(browser_utc_us, bool):
            raise ValueError("utc_us must be an integer (UTC epoch microseconds)")
        if self.source in (NTP, PANEL):
            return False
        differ_s = abs(browser_utc_us - self.clock.wall_us()) / 1e6
        if differ_s > limits.CLOCK_OFFER_TOLERANCE_S:
            raise ValueError(f"the box's clock differs from the browser's by {differ_s:.0f} s: "
                             "set it from the browser instead")
        return self._become(PANEL)

    def _become(self, source: str) -> bool:
        with self._lock:
            was = self.trusted
            self.source = source
        logger.info("clock trusted now (source %s)", source)
        self.save()
        return not was

    def state(self) -> ClockState:
        return ClockState(self.trusted, self.source, self.clock.wall_us())

    def offset_us(self) -> int:
        """wall - monotonic, now."""
        return self.clock.wall_us() - self.clock.mono_us()

    def save(self) -> None:
        """Remember the current time if it is not behind the last known time.

        Also while untrusted: a clock that never went backwards counts as
        restored at the next start (docs/design.md decision 4).
        """
        now = self.clock.wall_us()
        if self.last_known_us is not None and now < self.last_known_us:
            return
        if self._write(now):
            self.last_known_us = now

    def _write(self, utc_us: int) -> bool:
        """Replace clock_file with `utc_us`; False (logged) if that failed."""
        # A fresh temporary name (O_EXCL, no links followed): outside the unit the
        # directory may be writable by a less trusted user (docs/design.md decision 7).
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.clock_file.name}.", suffix=".tmp",
                                       dir=self.clock_file.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{utc_us}\n")
            os.replace(tmp, self.clock_file)
        except OSError:
            logger.exception("cannot save the last known time to %s", self.clock_file)
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            return False
        return True


def read_untrusted_time(path: Path) -> int | None:
    """The time in a last_time file someone else could have written: None unless it is a
    plain file (not a link, FIFO or device) of a few bytes holding one plausible UTC time."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:          # ELOOP: a link
        logger.warning("ignored the old last known time %s: %s", path, exc.strerror)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limits.CLOCK_FILE_MAX_BYTES:
            logger.warning("ignored the old last known time %s: not a small plain file", path)
            return None
        text = os.read(fd, limits.CLOCK_FILE_MAX_BYTES + 1)
    except OSError:
        logger.exception("cannot read the old last known time %s", path)
        return None
    finally:
        os.close(fd)
    try:
        value = int(text.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        value = None
    if value is None or not limits.CLOCK_MIN_UTC_US <= value <= limits.CLOCK_MAX_UTC_US:
        logger.warning("ignored the old last known time %s: not a plausible time", path)
        return None
    return value


class RunAnchor:
    """Maps one ffmpeg run's stream time to wall-clock time (docs/time.md).

    The anchor is the monotonic time of stream time 0: the smallest
    (arrival - stream time) seen in the progress reports and segment-list lines
    (ffmpeg writes each frame as soon as it arrives, so later samples can only be
    late, never early). The run's segments wait until it has settled (a second
    report); it is refined until the first one is placed. From then on the run
    stays contiguous, and each segment moves the anchor towards the smallest
    sample of the last DRIFT_WINDOW_S by at most DRIFT_MAX_RATE of its length: a
    camera clock that runs fast or slow is corrected gradually instead of adding
    up. A sample further than DISCONTINUITY_S from the anchor is a discontinuity
    (early: at once; late: DISCONTINUITY_LATE_SAMPLES in a row, once the stream time
    stood still while the box's clock went on) and the run is cut at the last
    stream time that still agreed with the box's clock; nothing after it is placed.
    A stream that falls behind while its time still advances at LAG_MIN_RATE of the
    box's clock or more lags (a starved box or camera delivering late, a slow
    camera clock): it is cut only LAG_MAX_S behind. While the box is short of CPU
    (`starved`) any late stream lags, up to STARVED_LAG_MAX_S, and so does an early
    one (its anchor came from samples read late): a restart would cost a starved box
    more than it puts right, and ffmpeg itself reports a real jump.
    """

    def __init__(self, run_id: int, offset_us: int, trusted: bool, not_before_us: int | None,
                 starved: Callable[[], bool] = lambda: False):
        self.run_id = run_id
        self.starved = starved              # the box is short of CPU now (CpuPressure)
        self.offset_us = offset_us          # wall - mono when the run started
        self.trusted = trusted
        self.not_before_us = not_before_us  # end of the stream's previous row
        self.mono_anchor_us: int | None = None
        self.shift_us = 0                   # keeps a run from overlapping the previous one
        self.slew_us = 0                    # drift corrected so far
        self.frozen = False
        self.reports = 0
        self.cut_us: int | None = None      # stream time where a discontinuity closed the run
        self._samples: deque[tuple[int, int]] = deque()   # (mono, candidate) of the window
        self._last_good: tuple[int, int] | None = None     # (mono, stream time)
        self._late = 0
        self._stood_still = False           # the late stretch began with stream time standing
        self._placed_end: tuple[int, int] | None = None    # (stream end, wall end) of the last

    @property
    def settled(self) -> bool:
        """Enough samples to place segments. ffmpeg's first report comes with the packets
        buffered while it probed the stream (a second or two of them), so it is late; the
        next one is live."""
        return self.frozen or self.reports >= 2

    def observe(self, mono_us: int, out_time_us: int | None, report: bool = False) -> str | None:
        """At `mono_us` ffmpeg said stream time `out_time_us` is written (`report`: in a
        progress report, rather than a segment-list line). Returns why the stream's time
        left the box's clock (the run is then cut), else None."""
        if report:
            self.reports += 1
        if self.cut_us is not None or out_time_us is None or out_time_us < 0:
            return None
        candidate = mono_us - out_time_us
        if not self.frozen and (self.mono_anchor_us is None or candidate < self.mono_anchor_us):
            self.mono_anchor_us = candidate
        # No new frame is a stall, for the watchdog, not a discontinuity.
        new_frame = self._last_good is None or out_time_us > self._last_good[1]
        if new_frame and self.settled:
            why = self._check(candidate, mono_us, out_time_us)
            if why is not None:
                self.cut(mono_us)
                return why
        if new_frame:
            self._last_good = (mono_us, out_time_us)
            self._samples.append((mono_us, candidate))
            while mono_us - self._samples[0][0] > limits.DRIFT_WINDOW_S * 1e6:
                self._samples.popleft()
        return None

    def _advancing(self, mono_us: int, out_time_us: int) -> bool:
        """Stream time went on at LAG_MIN_RATE of the box's clock or more since the last
        sample (a stream that lags); False when it stood still (ffmpeg cramming frames
        after a jump back, or a picture resuming where it froze)."""
        if self._last_good is None:
            return False
        good_mono, good_time = self._last_good
        elapsed = mono_us - good_mono
        advance = out_time_us - good_time
        # A freeze split across two reports can look like half speed in each: a stream
        # that lost more than DISCONTINUITY_S against the box's clock since the last
        # sample stood still too.
        return elapsed <= 0 or (advance >= limits.LAG_MIN_RATE * elapsed
                                and elapsed - advance <= limits.DISCONTINUITY_S * 1e6)

    def _check(self, candidate: int, mono_us: int, out_time_us: int) -> str | None:
        off = candidate - (self.mono_anchor_us + self.slew_us)
        limit = limits.DISCONTINUITY_S * 1e6
        if off < -limit:
            if -off <= limits.STARVED_LAG_MAX_S * 1e6 and self.starved():
                return None     # the anchor was taken from late samples; the slew pulls it in
            return f"stream time ran {-off / 1e6:.1f} s ahead of the box's clock"
        if off <= limit:
            self._late = 0
            self._stood_still = False
            return None
        if not self._advancing(mono_us, out_time_us):
            self._stood_still = True
        if self.starved():                      # the box itself delivers late
            if off <= limits.STARVED_LAG_MAX_S * 1e6:
                self._late = 0
                return None
        elif not self._stood_still and off <= limits.LAG_MAX_S * 1e6:
            self._late = 0                      # lagging, still moving: no restart
            return None
        self._late += 1
        if self._late >= limits.DISCONTINUITY_LATE_SAMPLES:
            return f"stream time fell {off / 1e6:.1f} s behind the box's clock"
        return None

    def cut(self, mono_us: int) -> int | None:
        """Close the run at `mono_us`: the stream time it had then, extrapolated from the
        last sample that agreed with the box's clock (None: no such sample)."""
        if self.cut_us is None and self._last_good is not None:
            good_mono, good_time = self._last_good
            self.cut_us = good_time + max(0, mono_us - good_mono)
        return self.cut_us

    def wall_range(self, start_us: int, end_us: int,
                   mono_now_us: int) -> tuple[int, int] | None:
        """Wall-clock [start, end) of stream times [start_us, end_us) of this run; None
        when all of it lies after the run's cut."""
        if self.cut_us is not None:
            if start_us >= self.cut_us:
                return None
            end_us = min(end_us, self.cut_us)
        if self.mono_anchor_us is None:
            # No progress report yet: the segment ended about now.
            self.mono_anchor_us = mono_now_us - end_us
        first_placed = not self.frozen
        if first_placed:
            self.frozen = True
            first = self.mono_anchor_us + self.offset_us + start_us
            if self.not_before_us is not None and first < self.not_before_us:
                self.shift_us = self.not_before_us - first
                logger.warning("run %d would overlap the previous recording by %.3f s "
                               "(clock step?): shifted", self.run_id, self.shift_us / 1e6)
        base = self.mono_anchor_us + self.offset_us + self.shift_us
        wall_start = base + self.slew_us + start_us
        if self._placed_end is not None:
            placed_time, placed_wall = self._placed_end
            if abs(start_us - placed_time) <= limits.CONTIGUOUS_SLACK_US:
                wall_start = placed_wall                # contiguous with the last segment
            wall_start = max(wall_start, placed_wall)
        if not first_placed:                            # a fresh anchor needs none
            self._slew(end_us - start_us)
        wall_end = max(wall_start, base + self.slew_us + end_us)
        self._placed_end = (end_us, wall_end)
        return wall_start, wall_end

    def _slew(self, length_us: int) -> None:
        """Move the anchor towards the window's earliest sample, by at most
        DRIFT_MAX_RATE of this segment's length."""
        if not self._samples:
            return
        target = min(c for _, c in self._samples)
        step = int(limits.DRIFT_MAX_RATE * max(0, length_us))
        error = target - (self.mono_anchor_us + self.slew_us)
        self.slew_us += max(-step, min(step, error))

    def reanchor(self, new_offset_us: int) -> int:
        """The clock became trusted: return the shift for rows already written."""
        delta = new_offset_us - self.offset_us
        self.offset_us = new_offset_us
        self.trusted = True
        if self._placed_end is not None:
            self._placed_end = (self._placed_end[0], self._placed_end[1] + delta)
        return delta


class CpuPressure:
    """Whether the box is short of CPU: Linux's pressure stall information (PSI).

    `some avg10` of /proc/pressure/cpu is the share of the last 10 s in which a task
    waited for a CPU. At STARVED_CPU_PRESSURE_PCT or more, frames reach ffmpeg late
    because of the box itself, so a stream falling behind is not taken for a camera
    whose timestamps jumped (RunAnchor). Read at most once a second; a kernel without
    PSI counts as never starved.
    """

    def __init__(self, path: Path = Path("/proc/pressure/cpu"),
                 clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._clock = clock
        self._read_at: float | None = None
        self._starved = False
        self._missing_logged = False

    def starved(self) -> bool:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= limits.CPU_PRESSURE_READ_S:
            self._read_at = now
            self._starved = self._read()
        return self._starved

    def _read(self) -> bool:
        try:
            text = self.path.read_text()
        except OSError as exc:
            if not self._missing_logged:
                self._missing_logged = True
                logger.info("no CPU pressure from %s (%s): a late stream is cut as a jump",
                            self.path, exc.strerror or exc)
            return False
        for line in text.splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            if line.startswith("some ") and "avg10" in fields:
                try:
                    return float(fields["avg10"]) >= limits.STARVED_CPU_PRESSURE_PCT
                except ValueError:
                    return False
        return False
