"""Timeouts, intervals and limits, kept in one place."""

# Segments and fragments (docs/design.md decision 2).
SEGMENT_SECONDS = 60
FRAGMENT_MAX_US = 1_000_000
# The recording filesystem is synced this often (recorder.durability): a power cut
# loses the fragment being filled (<= FRAGMENT_MAX_US) plus at most this much.
DURABLE_SYNC_S = 0.5

# Supervision (issue: recorder, point 3).
BACKOFF_INITIAL_S = 1.0
BACKOFF_CAP_S = 60.0
BACKOFF_JITTER = 0.2            # +/- 20 % of the delay
HEALTHY_RESET_S = 60.0          # a run this long resets the backoff
REFUSED_BACKOFF_INITIAL_S = 10.0    # a stream the MP4 muxer refused (codec) is retried after
REFUSED_BACKOFF_CAP_S = 300.0       # ... 10, 20, 40 ... at most 5 min
STALL_PROGRESS_S = 20.0         # no progress line for this long -> stalled
# ffmpeg's -stats_period: one progress report per stream this often (the Python
# process's busiest work). The reports, and the segment-list lines, anchor stream time
# to the wall clock (recorder.timekeeping.RunAnchor).
PROGRESS_PERIOD_S = 2
# A run's first segments wait for its anchor to settle (a second report), at most this long.
ANCHOR_SETTLE_MAX_S = 2 * PROGRESS_PERIOD_S + 1.0
EXIT_LINES_WAIT_S = 2.0         # a failed ffmpeg's last lines are waited for this long at most
# Stream time vs the box's clock (docs/time.md). A sample this far from the run's anchor
# is a discontinuity (ahead: at once; behind: this many samples in a row, since a busy
# box can read a report or two late): the run is cut there and ffmpeg restarted.
DISCONTINUITY_S = 1.0
DISCONTINUITY_LATE_SAMPLES = 3
# A stream behind the box's clock whose time still advances at this fraction of the box's
# clock or more lags (a starved box, a slow camera clock) rather than jumped: it is cut
# only this far behind (docs/time.md, "Lag").
LAG_MIN_RATE = 0.5
LAG_MAX_S = 5.0
# While tasks wait for a CPU this share of the time (Linux's /proc/pressure/cpu, "some
# avg10", read at most this often) the box is starved: any late stream lags, up to
# STARVED_LAG_MAX_S.
STARVED_CPU_PRESSURE_PCT = 25.0
STARVED_LAG_MAX_S = 30.0
CPU_PRESSURE_READ_S = 1.0
# Drift: each segment moves its run's anchor towards the earliest sample of this window
# by at most this fraction of its length (1 %: twice a camera clock 0.5 % off).
DRIFT_WINDOW_S = 30.0
DRIFT_MAX_RATE = 0.01
# A segment listed to start this close to the previous one's end continues it (ffmpeg
# lists an end as the last frame's time plus its nominal duration).
CONTIGUOUS_SLACK_US = 100_000
STOP_GRACE_S = 5.0              # SIGINT/'q' -> wait this long -> SIGKILL
# A run's first file starts at the camera's first keyframe, after what ffmpeg read of the
# GOP it joined: up to this much (a camera's keyframe interval) is taken for that lead;
# a bigger shortfall is a reused name (recorder.service).
FIRST_KEYFRAME_MAX_US = 10_000_000
# A new run after a discontinuity starts this long after the wall-clock second turns, when
# it must not open its first file in the second the cut run opened its newest one.
NEW_SECOND_MARGIN_S = 0.05
KILL_WAIT_S = 2.0               # after SIGKILL, wait this long for the reap


# A stream's state in words (recorder.status.stream_health).
STALE_SEGMENTS = 1.5            # "recording stopped" when no segment for this many periods ...
STALE_GRACE_S = 15.0            # ... plus this long
# A segment indexed further than this from its arrival: times jumped. Beyond the lag a
# starved box keeps in one run (STARVED_LAG_MAX_S, above), so lag alone never shows as a jump.
SANE_TIME_TOLERANCE_S = 35.0
DISCONTINUITY_SHOWN_S = 600.0   # "timestamps jumped (new run at ...)" is shown this long
DISCONTINUITY_BURST_S = 10.0    # jump reports closer than this to the previous one are the same jump


def segment_watchdog_s(segment_s: float = SEGMENT_SECONDS) -> float:
    """No new segment within this long -> stalled (2 x segment + 30 s)."""
    return 2 * segment_s + 30

# Service loop.
TICK_S = 0.25
PIPE_BATCH_S = 0.2              # the pipe reader waits this long between rounds (one wake-up, many streams)
RELOAD_POLL_S = 1.0             # config.db change detection, well inside 2 s
SHUTDOWN_BUDGET_S = 10.0        # graceful shutdown must finish inside this
CONTROL_TIMEOUT_S = 5.0
# `picorder check` beside a running recorder: its streams' files changed this recently are
# being written or indexed, not problems.
CHECK_IN_FLIGHT_S = 10.0

# SQLite.
BUSY_TIMEOUT_MS = 5000

# MP4 reading, range export and live follow (recorder.mp4, recorder.export, recorder.live).
MP4_MAX_HEADER_BOX = 64 * 1024 * 1024   # a moov/moof larger than this is garbage, not a header
MP4_READ_CHUNK = 256 * 1024             # streaming reads of sample data
EXPORT_MAX_S = 24 * 3600                # longest range one export/recording.mp4 may cover
EXPORT_GAP_TOLERANCE_US = 100_000       # a longer gap between segments starts a new run in a range movie
LIVE_POLL_S = 0.05                      # how often live follow looks at the growing file
LIVE_IDLE_TIMEOUT_S = 30.0              # live follow gives up when nothing new arrives this long

# Panel pages: the camera "Test" button (webpanel/probe.py) and page refresh.
PROBE_CAPTURE_S = 5             # seconds of stream copied to measure fps, bitrate, GOP
PROBE_TIMEOUT_S = 20            # bound on each probe subprocess
PROBE_IO_TIMEOUT_S = 8          # RTSP socket timeout inside the probe
PROBE_MAX_KEYFRAME_S = 4.0      # warn above this keyframe interval
PROBE_SNAPSHOT_TTL_S = 600      # probe JPEGs are deleted after this long
CLOCK_OFFER_TOLERANCE_S = 5     # setup wizard: offer the browser's time beyond this difference
PAGE_COMMAND_TIMEOUT_S = 3      # system page: bound on timedatectl / journalctl
PAGE_COMMAND_CACHE_S = 10       # system page: their output is reused this long per worker

# Web panel (webpanel/): sign-in, status cache, timeline, snapshots, live.
LOGIN_WINDOW_S = 3600           # failed logins are counted over this window ...
LOGIN_FREE_FAILURES = 5         # ... per address and per user+address; after this many ...
LOGIN_DELAY_BASE_S = 15         # ... each next attempt waits this long, doubling per failure ...
LOGIN_DELAY_MAX_S = 900         # ... up to this (429 with Retry-After; never a hard lock)
PANEL_THREADS = 32              # gunicorn threads per panel worker (PICORDER_PANEL_THREADS)
VIDEO_RESPONSES_PER_USER = 16   # live.mp4 + recording.mp4 at once per user or token (all workers)
PANEL_THREADS_FOR_PAGES = 8     # threads per worker that video responses never take (503 instead)
VIDEO_RETRY_AFTER_S = 5         # Retry-After of the 503 when the video caps are full
TOKEN_TOUCH_S = 3600            # an API token's last-used time is written at most this often
STATUS_CACHE_S = 1.0            # the panel reuses the recorder's status this long
TIMELINE_MAX_S = 400 * 86400    # longest range the timeline API answers at once
TIMELINE_GAP_TOLERANCE_S = 2.0  # default: gaps up to this long do not split a run
TIMELINE_SEGMENT_MAX_S = 3600   # no segment is longer; bounds the index scan
SNAPSHOT_DECODERS_PER_PROCESS = 2   # one-shot JPEG decoders per panel worker ...
SNAPSHOT_DECODERS_TOTAL = 2     # ... and across all workers (lock files)
SNAPSHOT_WAIT_S = 10.0          # a snapshot request waits this long for a decoder, then 503
SNAPSHOT_TIMEOUT_S = 10.0       # bound on one decoder
SNAPSHOT_CACHE_ITEMS = 64       # JPEGs kept per worker
SNAPSHOT_NEWEST_TTL_S = 2.0     # "newest" snapshots are reused this long
RANGE_CACHE_ITEMS = 4           # built range movies kept per worker (Range requests reuse them)
RANGE_CACHE_MAX_FRAMES = 500_000    # ... holding at most this many frames (plus the newest one)
RANGE_CACHE_TTL_S = 30.0
TAIL_MAX_FILES = 4              # unindexed segment files (the one being written, those not
                                # indexed yet) the timeline and recording.mp4 read, newest first
TAIL_LOOKBACK_S = 86400         # ... named at most this long ago when the stream has no rows
TAIL_SCAN_CACHE_ITEMS = 64      # growing files whose last scan a panel worker keeps

# Storage (issue: storage): drives, mounting, retention, health.
DISK_MOUNT_BASE = "/srv/picorder/disks"   # disks are mounted at <base>/<fs-uuid>
MOUNT_TIMEOUT_S = 20.0          # mount (ext4 journal replay) / umount: below the 30 s watchdog
MKFS_TIMEOUT_S = 600.0          # mkfs.ext4 -T largefile on a big disk
PROBE_CMD_TIMEOUT_S = 10.0      # blkid, wipefs -n, debugfs, smartctl
UDEV_SETTLE_S = 10.0
RETENTION_INTERVAL_S = 60       # the periodic retention job
RETENTION_DAYS_MAX = 36500      # max_age_days and min_days above this are refused (400)
FREE_SPACE_CHECK_S = 1          # free-space watch: near the floor -> retention at once
RATE_REFRESH_S = 10             # near the floor, recompute the recorded bitrate this often
FLOOR_SETTING_REFRESH_S = 5     # the free-space watch rereads the configured floor this often
FLOOR_HEADROOM_S = 10           # retention frees this many seconds of writing beyond the floor
STORAGE_LOG_EVERY_S = 60       # "running retention now"/"cannot reach the floor": at most this often
RETENTION_MISFIRE_GRACE_S = 30
RETENTION_BATCH = 500           # rows marked/unlinked/deleted per transaction
FLOOR_FRACTION = 0.05           # free-space floor: 5 % of the disk ...
FLOOR_BITRATE_S = 3600          # ... or one hour of the current total bitrate ...
FLOOR_MIN_BYTES = 2 * 1024**3   # ... or 2 GiB, whichever is largest ...
FLOOR_MAX_FRACTION = 0.5        # ... but never more than half the disk
RATE_WINDOW_S = 600             # current bitrate = bytes indexed in the last 10 minutes
USAGE_RESCAN_S = 3600           # full recount of per-camera bytes (else incremental)
HEALTH_INTERVAL_S = 1800        # SMART poll
IO_ERRORS_KEPT = 20             # I/O errors remembered for status
# A reported write error is checked before the disk is declared failed (storage/disk_check.py).
DISK_PROBE_TIMEOUT_S = 20.0     # a write-and-fsync probe not done by then: the disk failed
DISK_PROBE_BYTES = 4096
DISK_REPORT_WINDOW_S = 60.0     # write errors reported within this window count together
DISK_SUSPECT_SOURCES = 2        # reports from this many streams keep the suspicion open ...
DISK_RECHECK_S = 10.0           # ... and the disk is checked again this often while they come

# Recorder core (issue: recorder): ffmpeg supervision, time, control socket.
RTSP_IO_TIMEOUT_S = 30.0        # ffmpeg's own socket timeout; longer than the stall watchdog
STARTING_TIMEOUT_S = 30.0       # no first frame this long after spawn -> unreachable
STDERR_LINES_PER_MIN = 20       # ffmpeg log lines logged per stream per minute (rest counted)
INGEST_RETRY_S = 2.0            # a segment not yet visible on disk is looked up again after this
CLOCK_POLL_S = 30.0             # NTP state (timedatectl) polled this often
CLOCK_SAVE_S = 60.0             # last known good time written this often
CLOCK_CMD_TIMEOUT_S = 2.0       # bound on timedatectl
STORAGE_CHECK_S = 5.0           # an adopted directory is checked for presence/writability this often
DAY_DIRS_S = 600.0              # today's and tomorrow's segment directories re-created this often
WRITER_JOIN_S = 2.0             # shutdown waits this long for index writes (budget permitting)
CLOCK_MIN_UTC_US = 1_577_836_800_000_000    # 2020-01-01: set_clock refuses anything earlier
CLOCK_MAX_UTC_US = 4_102_444_800_000_000    # 2100-01-01
CLOCK_FILE_MAX_BYTES = 64       # last_time holds one integer; a larger file is not ours
REACHABILITY_PROBE_S = 2.0      # a camera that refused connections is TCP-probed this often ...
REACHABILITY_CONNECT_S = 1.0    # ... with this connect timeout; when it answers, retry at once
ROOT_RETRY_S = 30.0             # a recording root whose index could not be opened is retried
EVENTS_PER_STEP = 1000          # queue events handled between two looks at the tick timer
POWER_CMD_TIMEOUT_S = 10.0      # bound on `systemctl reboot|poweroff` (it only queues the job)
DEMO_LOG_BYTES = 512 * 1024     # `picorder demo`'s DATA/recorder.log rotates at this size ...
DEMO_LOG_BACKUPS = 2            # ... keeping this many old files

# Activity (issue 14; recorder/activity.py, docs/activity.md).
ACTIVITY_BASELINE_S = 120       # frame-size baseline: the stream's last this many seconds ...
ACTIVITY_BASELINE_QUANTILE = 0.3    # ... at this quantile of their per-second medians
ACTIVITY_MIN_BASELINE_S = 10    # fewer seconds known than this: no frame-size verdict yet
ACTIVITY_SIZE_RATIO = 1.5       # a second whose median P-frame is this x the baseline is active
ACTIVITY_BLOCK_DIFF = 0.3       # a keyframe block changed: mean |difference| in std units
ACTIVITY_BLOCKS = 2             # this many changed blocks between two keyframes: active
ACTIVITY_DECODE_TIMEOUT_S = 30.0    # bound on one segment's keyframe decode
ACTIVITY_MERGE_GAP_S = 2        # active seconds this close together are one period
