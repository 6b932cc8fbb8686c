"""Activity against known truth: precision and recall per scripted scene, and its CPU cost.

    .venv/bin/python -m benchmarks.activity [--seconds 150]

The simulated camera plays the scripted scenes of recorder/sim/scenes.py (one camera
each, all at once). Both streams of each are recorded by a bare `ffmpeg -c copy`
into 60 s segments, as the recorder records; each finished segment of the sub
stream then goes through the activity analysis in order, as at ingest. Printed, one
JSON line per scene: precision and recall at 2 s granularity of the keyframe signal
(the one used) and of the frame-size signal (measured only), false activity periods
on the static scenes (extrapolated to an hour), and the CPU seconds of the analysis
against those of the two ffmpeg that recorded the same camera.
"""

import argparse
import json
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.recorder_cpu import bare_ffmpeg, cpu_seconds
from recorder import activity
from recorder.index.tables import decode_tables, probe_segment
from recorder.sim.launcher import SimCameras
from recorder.sim.scenes import read_truth

BIN_S = 2               # granularity of the comparison
TOLERANCE_S = 1         # one keyframe interval: the signal cannot place an edge closer
SCENE_ORDER = ("motion-vbr", "motion-cbr", "static-vbr", "static-cbr")
# Each simulated camera: a main stream of SIZE at KBPS (CBR scenes) and a sub stream of
# half the size at a quarter of the rate; FPS frames a second, one keyframe a second.
SIZE, KBPS, FPS = (640, 360), 1000, 10


def bins_with(intervals: list[tuple[float, float]], seconds: float, widen: float = 0) -> set:
    """2 s bins of [0, seconds) that intervals (each widened by `widen`) overlap."""
    out = set()
    for start, end in intervals:
        first = max(0, int((start - widen) // BIN_S))
        last = int(min(seconds, end + widen) // BIN_S)
        for b in range(first, last + 1):
            if b * BIN_S < min(seconds, end + widen) and (b + 1) * BIN_S > start - widen:
                out.add(b)
    return out


def score(detected: list[tuple[float, float]], truth: list[tuple[float, float]],
          seconds: float) -> dict:
    """Precision and recall at BIN_S granularity, allowing TOLERANCE_S at each edge."""
    det, det_wide = bins_with(detected, seconds), bins_with(detected, seconds, TOLERANCE_S)
    true, true_wide = bins_with(truth, seconds), bins_with(truth, seconds, TOLERANCE_S)
    precision = len(det & true_wide) / len(det) if det else (1.0 if not true else 0.0)
    recall = len(true & det_wide) / len(true) if true else 1.0
    return {"precision": round(precision, 3), "recall": round(recall, 3)}


def intervals(levels: list[float], origin: float) -> list[tuple[float, float]]:
    """Active stretches (seconds from the scene's start) of per-second scores."""
    tracks = [(round(origin * 1e6), bytes(min(255, round(v * 100)) if v > 0 else 0
                                          for v in levels))]
    return [(p.start_us / 1e6, p.end_us / 1e6)
            for p in activity.periods(tracks, 0, 10**15, gap_us=0)]


def analyse(segments: list[Path]) -> dict:
    """Both signals over a stream's segments in order, and the CPU the used one took."""
    key_state, size_state = activity.StreamActivity(), activity.StreamActivity()
    key_levels, size_levels, cpu = [], [], 0.0
    origin, origins = 0.0, []
    for path in segments:
        info = probe_segment(path)              # the recorder does this anyway at ingest
        before = time.process_time() + _children_cpu()
        fragments = decode_tables(info.tables).fragments
        levels = activity.analyse(path, fragments, info.timescale, key_state)
        cpu += time.process_time() + _children_cpu() - before
        frames = activity.segment_frames(fragments, info.timescale)
        if key_state.amend is not None and key_levels:      # as the recorder does
            key_levels[-1] = [v / 100 for v in activity.amended(
                bytes(round(v * 100) for v in key_levels[-1]), key_state.amend)]
        key_levels.append([v / 100 for v in levels])
        size_levels.append(activity.size_scores(frames, size_state))
        origins.append(origin)
        origin += info.duration_us / 1e6
    return {"cpu_s": cpu, "media_s": origin,
            "key": [iv for lv, o in zip(key_levels, origins) for iv in intervals(lv, o)],
            "size": [iv for lv, o in zip(size_levels, origins) for iv in intervals(lv, o)]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def record(sim: SimCameras, n: int, work: Path, seconds: float) -> tuple[dict, dict]:
    """Record both streams of every camera for `seconds`, as the recorder does; the sub
    stream's segments and both ffmpeg's CPU seconds, by camera."""
    procs = {(i, sub): bare_ffmpeg(sim.url(i, sub), work / f"cam{i}{'-sub' if sub else ''}")
             for i in range(1, n + 1) for sub in (False, True)}
    time.sleep(seconds)
    cpu = {key: cpu_seconds(p.pid) or 0.0 for key, p in procs.items()}
    for p in procs.values():
        p.send_signal(signal.SIGINT)
    for p in procs.values():
        p.wait(30)
    return ({i: sorted((work / f"cam{i}-sub").glob("*.mp4")) for i in range(1, n + 1)},
            {i: cpu[(i, False)] + cpu[(i, True)] for i in range(1, n + 1)})


def run(seconds: float, work: Path, keep: Path | None = None) -> list[dict]:
    truth_file = work / "truth.jsonl"
    sim = SimCameras(cameras=len(SCENE_ORDER), fps=FPS, gop=FPS, kbps=KBPS, width=SIZE[0],
                     height=SIZE[1], scenes=list(SCENE_ORDER), scene_truth=truth_file)
    with sim:
        segments, copy_cpu = record(sim, len(SCENE_ORDER), work, seconds)
    truth = read_truth(truth_file)
    results = []
    for i, name in enumerate(SCENE_ORDER, start=1):
        scene, _start = truth[f"cam{i}/sub"]
        got = analyse(segments[i])
        # The scene runs on the stream's clock: score the media recorded (a loaded
        # machine encodes the scenes slower than real time).
        media = got["media_s"]
        period = [(a + k * scene.seconds, b + k * scene.seconds)
                  for k in range(int(media // scene.seconds) + 1) for a, b in scene.moves]
        if keep:
            (keep / f"{name}.json").write_text(json.dumps(got))
        row = {"scene": name, "seconds": round(media, 1), "encoding": scene.encoding,
               "keyframes": score(got["key"], period, media),
               "frame_sizes": score(got["size"], period, media),
               "activity_cpu_s": round(got["cpu_s"], 3),
               "copy_cpu_s": round(copy_cpu[i], 3),
               "ratio": round(got["cpu_s"] / copy_cpu[i], 3) if copy_cpu[i] else None}
        if not scene.moves:
            false = len(got["key"])
            row["false_periods"] = false
            row["false_per_hour"] = round(false * 3600 / media, 1)
        results.append(row)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0,
                        help="how long to record each scene (one period is 150 s)")
    parser.add_argument("--dir", help="keep the recordings and detections here")
    parser.add_argument("--decoder", choices=("pyav", "ffmpeg"), default="pyav",
                        help="ffmpeg: measure the fallback without PyAV (one ffmpeg per segment)")
    args = parser.parse_args(argv)
    if args.decoder == "ffmpeg":
        activity.av = None
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory(prefix="picorder-activity-") as tmp:
        work = Path(args.dir) if args.dir else Path(tmp)
        for row in run(args.seconds, work, work if args.dir else None):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
