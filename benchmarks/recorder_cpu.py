"""Recorder CPU and memory against bare `ffmpeg -c copy`, side by side on the same streams.

    python -m benchmarks.recorder_cpu [--streams 16 [64]] [--seconds 120] [--kbps 4000]
                                      [--no-activity]

The default is 16 streams; `--streams 16 64` measures both. If the simulated
cameras cannot deliver every stream at full frame rate, the run says so instead of
printing figures that measure a starved machine.

For each N: simulated camera servers (GStreamer's RTSP server) stream H.264 at
--kbps. With `--source clip` (the default) a clip is encoded once before the run and
every RTSP client gets its own mount replaying it at its own pace (the recorder's
stream i and the bare ffmpeg i are neighbouring mounts of one server process, 16
mounts per process, each side first in every other pair), so neither side is a shared mount's first or second client,
the cameras cost no encoding, and a 2-core machine can serve 64 streams to each
side. With `--source encode` each server encodes one live test pattern for at most
--clients-per-server clients (gst-rtsp-server falls over with ~128 clients on one
mount). `picorder recorder` records N streams while N bare ffmpeg processes (`-c
copy` into the same fragmented-MP4 segment muxer, no supervision) record the same
kind of stream. The recorder analyses each camera's segments for activity, as it does
for a user (recorder.activity: a decode of the keyframes per segment); --no-activity
switches that off, to measure the recording alone. After a
warm-up, CPU seconds (utime+stime from /proc) are measured over the window for
the recorder's whole process tree (with the children it reaped in the window:
cutime+cstime) and for the bare processes, and peak RSS
(VmHWM) is summed over each set. Prints one JSON object per N.

Run as root, each side records onto an ext4 filesystem of its own (a sparse image on
a loop device, mounted noatime), as the appliance records onto its own USB disk: the
recorder syncs its recording filesystem twice a second (recorder.durability), and on
a shared filesystem that sync also wrote back the baseline's files, and the rest of the
machine's. The journal thread (jbd2) of each side's filesystem is measured too:
`cpu_ratio_with_journal` counts it to its side. `--shared-disk` records both sides into
directories of the work directory's filesystem, as the script did before.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from recorder.sim.launcher import SimCameras
from recorder.storage.disk_ops import MOUNT_OPTIONS

PROJECT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
FPS = 25
MIN_FPS_FRACTION = 0.9          # streams below 90 % of FPS: the server is not keeping up


class NotSustained(RuntimeError):
    """The simulated cameras cannot serve this many streams on this machine."""


def starved_message(n: int, detail: str) -> str:
    return (f"{n} streams: {detail}. The simulated camera servers cannot sustain {n} "
            f"streams on this {os.cpu_count()}-core machine, so no figures are printed for "
            f"it; use fewer --streams, or a smaller --size/--kbps, or a bigger machine.")


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def reaped_children_cpu_seconds(pid: int) -> float:
    """CPU time of the children `pid` waited for (cutime+cstime): the short-lived ones,
    such as an ffmpeg per segment for the activity analysis without PyAV."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / CLK_TCK


def peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def picorder(data: Path, *args: str, input: str | None = None) -> None:
    subprocess.run([sys.executable, "-m", "picorder", "--data", str(data), *args],
                   input=input, text=True, check=True, capture_output=True, cwd=PROJECT)


def start_recorder(data: Path, recordings: Path, urls: list[str], log: Path,
                   activity: bool = True) -> subprocess.Popen:
    """`picorder recorder` recording `urls` into `recordings`, its output in `log`."""
    picorder(data, "disk", "adopt-dir", str(recordings), "--allow-root-device")
    # Measure steady recording, not retention: with the default floor (an hour of
    # the total bitrate, 115 GB at 64 streams) a smaller work disk would have the
    # recorder deleting its segments all through the run, and bare ffmpeg nothing.
    picorder(data, "disk", "floor", "--bytes", str(BENCH_FLOOR_BYTES))
    for i, url in enumerate(urls):
        picorder(data, "camera", "add", f"cam{i + 1}", url)
    if not activity:                # the CLI has no switch for it; the panel's API has
        with sqlite3.connect(data / "config.db") as db:
            db.execute("UPDATE camera SET activity = 0")
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "picorder", "--data", str(data),
                                 "recorder"], stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT)


@contextmanager
def work_dir(given: str | None, prefix: str):
    """--dir as given (kept), else a temporary directory removed at the end."""
    work = Path(given) if given else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        if not given:
            shutil.rmtree(work, ignore_errors=True)


def bare_ffmpeg(url: str, out: Path) -> subprocess.Popen:
    out.mkdir(parents=True)
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
            "-map", "0:v:0", "-c", "copy", "-f", "segment", "-segment_time", "60",
            "-reset_timestamps", "1", "-segment_format", "mp4", "-segment_format_options",
            "movflags=+frag_keyframe+empty_moov+default_base_moof", str(out / "%05d.mp4")]
    # Its own session, like each ffmpeg the recorder starts: with the kernel's
    # autogroup scheduling a session is a scheduling group, and 64 processes sharing
    # one group get starved into batching more packets per wake-up than 64 groups.
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)


def stream_fps(data: Path) -> list[float]:
    """Every recorded stream's frame rate as the recorder's status reports it."""
    from recorder import control
    status = control.request(data / "recorder.sock", "status")
    return [s["fps"] for s in status["streams"]]


def wait_running(data: Path, n: int, timeout: float = 120) -> None:
    from recorder import control
    deadline = time.monotonic() + timeout
    running = 0
    while time.monotonic() < deadline:
        try:
            status = control.request(data / "recorder.sock", "status")
            running = sum(s["state"] == "RUNNING" for s in status["streams"])
            if running == n:
                return
        except (control.RecorderUnavailable, control.ControlError):
            pass
        time.sleep(0.5)
    raise NotSustained(f"only {running} of {n} streams were running after {timeout:.0f} s")


def measure(pids: list[int], seconds: float) -> dict[int, float]:
    start = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    end = {pid: cpu_seconds(pid) for pid in pids}
    return {pid: end[pid] - start[pid] for pid in pids
            if start[pid] is not None and end[pid] is not None}


WARMUP_S = 15
BENCH_FLOOR_BYTES = 1024**3     # free-space floor during the run (see run())
STARTUP_MARGIN_S = 120          # clip length beyond the window: every client connecting
MOUNTS_PER_SERVER = 16


def encode_clip(path: Path, seconds: float, kbps: int, size: tuple[int, int]) -> Path:
    """An H.264 clip like a busy camera's: constant --kbps, keyframe every 2 s, no B-frames."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
         f"testsrc2=size={size[0]}x{size[1]}:rate={FPS}", "-vf", "noise=alls=25:allf=t",
         "-t", str(int(seconds)), "-c:v", "libx264", "-preset", "ultrafast",
         "-tune", "zerolatency", "-profile:v", "baseline", "-b:v", f"{kbps}k",
         "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k", "-g", str(2 * FPS), "-bf", "0",
         "-movflags", "+faststart", str(path)], check=True)
    return path


def camera_servers(n: int, seconds: float, kbps: int, per_server: int, size: tuple[int, int],
                   source: str, workdir: Path) -> tuple[list[SimCameras], list[tuple[int, int]],
                                                        list[tuple[int, int]]]:
    """The simulated cameras (not started) and, for each of the n streams, the
    (server index, mount number) the recorder records and the one bare ffmpeg records."""
    if source == "clip":
        clip = encode_clip(workdir / "clip.mp4", seconds + WARMUP_S + STARTUP_MARGIN_S,
                           kbps, size)
        counts = [min(MOUNTS_PER_SERVER, 2 * n - i) for i in range(0, 2 * n, MOUNTS_PER_SERVER)]
        sims = [SimCameras(cameras=c, clip=str(clip)) for c in counts]
        place = [(m // MOUNTS_PER_SERVER, m % MOUNTS_PER_SERVER + 1) for m in range(2 * n)]
        # Alternate which side has the first of the two neighbouring mounts, so that any
        # advantage of serving order falls on both sides equally.
        rec = [place[2 * i + (i % 2)] for i in range(n)]
        bare = [place[2 * i + 1 - (i % 2)] for i in range(n)]
        return sims, rec, bare
    servers = max(1, -(-2 * n // per_server))
    sims = [SimCameras(cameras=1, fps=FPS, gop=2 * FPS, kbps=kbps, width=size[0], height=size[1])
            for _ in range(servers)]
    shared = [(i % servers, 1) for i in range(n)]
    return sims, shared, shared


def loop_disk(image: Path, mount: Path, size_gb: int, options: str = "noatime") -> str:
    """A sparse ext4 image on a loop device mounted at `mount`; return the device name."""
    with open(image, "wb") as f:
        f.truncate(size_gb * 1024**3)
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", str(image)], check=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        mount.mkdir(parents=True)
        subprocess.run(["mount", "-o", options, dev, str(mount)], check=True)
    except (OSError, subprocess.CalledProcessError):
        subprocess.run(["losetup", "-d", dev], check=False)
        raise
    return dev


def jbd2_pid(dev: str) -> int | None:
    want = f"jbd2/{Path(dev).name}-8"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == want:
                    return int(entry)
            except OSError:
                continue
    return None


def side_bytes(n: int, kbps: int, seconds: float) -> int:
    """What one side writes in a run, with the floor the recorder keeps free."""
    return int(BENCH_FLOOR_BYTES + n * kbps * 125 * (seconds + WARMUP_S + STARTUP_MARGIN_S))


def own_disks(top: Path, n: int, kbps: int, seconds: float,
              disks: list[tuple[Path, str]]) -> None:
    """An ext4 loop filesystem for each side, mounted at top/recordings and top/bare with
    the options picorder mounts a recording disk with; each is added to `disks` as soon
    as it is mounted, so that the caller's drop_disks() frees what was made."""
    size_gb = -(-side_bytes(n, kbps, seconds) // 1024**3) + 1
    free = shutil.disk_usage(top).free
    if free < 2 * size_gb * 1024**3:
        raise NotSustained(f"{free / 1e9:.1f} GB free in {top}, {2 * size_gb} GB needed for "
                           f"the two disk images (use --dir on a bigger disk)")
    for name in ("recordings", "bare"):
        disks.append((top / name, loop_disk(top / f"{name}.img", top / name, size_gb,
                                            MOUNT_OPTIONS)))


def drop_disks(disks: list[tuple[Path, str]]) -> None:
    for mount, dev in disks:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            print(f"{mount} is busy: detached lazily", file=sys.stderr)
            subprocess.run(["umount", "-l", str(mount)], check=False)
        subprocess.run(["losetup", "-d", dev], check=False)
        (mount.parent / f"{mount.name}.img").unlink(missing_ok=True)


def run(n: int, seconds: float, kbps: int, per_server: int, size: tuple[int, int],
        workdir: Path, source: str = "clip", activity: bool = True,
        shared_disk: bool = False) -> dict:
    top = workdir / f"n{n}"
    data = top / "data"
    data.mkdir(parents=True)
    sims, rec_mounts, bare_mounts = camera_servers(n, seconds, kbps, per_server, size, source,
                                                   top)
    procs: list[subprocess.Popen] = []
    rec = None
    disks: list[tuple[Path, str]] = []
    journals: list[int | None] = [None, None]
    try:
        recordings = top / "recordings"
        if shared_disk:
            recordings.mkdir(exist_ok=True)
            need = 2 * side_bytes(n, kbps, seconds)
            free = shutil.disk_usage(recordings).free
            if free < need:
                raise NotSustained(f"{free / 1e9:.1f} GB free in {recordings}, "
                                   f"{need / 1e9:.1f} GB needed (use --dir on a bigger disk)")
        else:
            own_disks(top, n, kbps, seconds, disks)
            journals = [jbd2_pid(dev) for _, dev in disks]
        for sim in sims:
            sim.start()
        urls = [sims[server].url(mount) for server, mount in rec_mounts]
        bare_urls = [sims[server].url(mount) for server, mount in bare_mounts]
        rec = start_recorder(data, recordings, urls, top / "recorder.log", activity)
        for i, url in enumerate(bare_urls):
            procs.append(bare_ffmpeg(url, workdir / f"n{n}" / "bare" / str(i)))
        wait_running(data, n)
        time.sleep(WARMUP_S)                            # warm-up: probes, first fragments
        tree = [rec.pid] + children_of(rec.pid)
        bare = [p.pid for p in procs]
        t0 = time.monotonic()
        reaped = reaped_children_cpu_seconds(rec.pid)
        cpu = measure(tree + bare + [j for j in journals if j is not None], seconds)
        window = time.monotonic() - t0
        reaped = reaped_children_cpu_seconds(rec.pid) - reaped
        rec_tree = sum(cpu.get(pid, 0) for pid in tree) + reaped
        rec_py = cpu.get(rec.pid, 0)
        bare_cpu = sum(cpu.get(pid, 0) for pid in bare)
        rec_journal, bare_journal = (cpu.get(j, 0.0) if j is not None else None
                                     for j in journals)
        fps = stream_fps(data)
        slow = [f for f in fps if f < MIN_FPS_FRACTION * FPS]
        if slow:
            raise NotSustained(f"{len(slow)} of {n} streams arrived at under "
                               f"{MIN_FPS_FRACTION * FPS:.0f} fps (slowest {min(slow):.1f})")
        rss_tree = sum(peak_rss_kb(pid) for pid in tree)
        rss_bare = sum(peak_rss_kb(pid) for pid in bare)
        rss_py = peak_rss_kb(rec.pid)
        alive_tree = len([p for p in tree if cpu_seconds(p) is not None])
        sizes = sum(f.stat().st_size for where in ("recordings", "bare")
                    for f in (top / where).rglob("*.mp4"))
        log_text = (top / "recorder.log").read_text(errors="replace")
    finally:
        try:
            for p in procs:
                p.terminate()
            if rec is not None:
                rec.terminate()
                rec.wait(30)
            for p in procs:
                p.wait(30)
            for sim in sims:
                sim.stop()
        finally:
            drop_disks(disks)
    with_journal = None
    if rec_journal is not None and bare_journal is not None and bare_cpu:
        with_journal = round((rec_tree + rec_journal) / (bare_cpu + bare_journal), 3)
    return {
        "streams": n, "kbps": kbps, "size": f"{size[0]}x{size[1]}", "source": source,
        "activity": activity,
        "servers": len(sims),
        "window_s": round(window, 1),
        "recorder_tree_cpu_s": round(rec_tree, 2), "bare_ffmpeg_cpu_s": round(bare_cpu, 2),
        "cpu_ratio": round(rec_tree / bare_cpu, 3) if bare_cpu else None,
        "disks": "shared" if shared_disk else "own ext4 loop filesystem per side",
        "journal_cpu_s": (None if rec_journal is None else
                          [round(rec_journal, 2), round(bare_journal or 0.0, 2)]),
        "cpu_ratio_with_journal": with_journal,
        "new_runs": log_text.count("a new run starts"),
        "python_cpu_s": round(rec_py, 2),
        "reaped_children_cpu_s": round(reaped, 2),
        "python_pct_core_per_stream": round(100 * rec_py / window / n, 4),
        "recorder_tree_peak_rss_mb": round(rss_tree / 1024, 1),
        "bare_ffmpeg_peak_rss_mb": round(rss_bare / 1024, 1),
        "rss_ratio": round(rss_tree / rss_bare, 3) if rss_bare else None,
        "python_peak_rss_mb": round(rss_py / 1024, 1),
        "recorder_processes_alive": alive_tree,
        "mp4_bytes_written": sizes,
        "retention_runs_that_deleted": log_text.count("retention deleted"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[16],
                        help="numbers of streams to measure (default 16; 64 is the target "
                             "of a bigger machine)")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--kbps", type=int, default=4000)
    parser.add_argument("--clients-per-server", type=int, default=16,
                        help="with --source encode: RTSP clients per camera server (one "
                             "encoder each)")
    parser.add_argument("--size", default="1280x720", help="picture size of the stream")
    parser.add_argument("--source", choices=("clip", "encode"), default="clip",
                        help="cameras replay a pre-encoded clip (default) or encode live")
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    parser.add_argument("--no-activity", action="store_true",
                        help="the recorder does not analyse the segments for activity")
    parser.add_argument("--shared-disk", action="store_true",
                        help="both sides record onto the work directory's filesystem "
                             "(the default, as root, gives each side a loop filesystem)")
    args = parser.parse_args(argv)
    if not args.shared_disk and (os.geteuid() != 0 or not shutil.which("losetup")):
        print("own disks per side need root and losetup: run as root, or pass --shared-disk",
              file=sys.stderr)
        return 2
    if not shutil.which("ffmpeg"):
        print("ffmpeg is missing: run `make bench`, which installs it", file=sys.stderr)
        return 2
    status = 0
    with work_dir(args.dir, "picorder-bench-") as workdir:
        for n in args.streams:
            size = tuple(int(v) for v in args.size.split("x"))
            try:
                result = run(n, args.seconds, args.kbps, args.clients_per_server, size, workdir,
                             args.source, activity=not args.no_activity,
                             shared_disk=args.shared_disk)
            except NotSustained as exc:
                print(starved_message(n, str(exc)),
                      file=sys.stderr, flush=True)
                status = 1
                continue
            print(json.dumps(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
