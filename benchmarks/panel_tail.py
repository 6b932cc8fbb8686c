"""Benchmark what reading the unindexed tail costs the panel: timeline and recording.mp4 of the newest minutes.

Run: .venv/bin/python -m benchmarks.panel_tail [--dir DIR] [--rounds N]

An hour of one camera ending now, made of one real 60-second segment
(benchmarks.panel_video.make_segment: 1280x720, 15 fps, 2 Mbit/s, 1 s fragments)
hard-linked under 60 names. Two index.db files side by side: in the baseline
every segment is indexed (with its stored sample tables, as ingest writes
them); in the tail case the newest one is not: it is a copy that starts half
written and grows by one fragment (1 s of video) before each round, as while
ffmpeg writes it, so each request reads what is new in it. Requests go through
the Flask app in process, alternating between the two, for the last hour's
timeline and for the first byte of recording.mp4 over the last 5 minutes (the
movie is built afresh every time).
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.panel_video import SEGMENT_S, make_segment, prepare_panel, rel_name, row
from recorder.index import Index, Segment
from recorder.index.tables import probe_segment
from recorder.mp4 import scan_segment

SEGMENTS = 60


def build(work: Path, source: Path, now_us: int) -> tuple[dict[str, Path], Path]:
    """Two roots sharing the files: "baseline" (all indexed) and "tail" (the newest not,
    half written); also the path of that newest file."""
    info = probe_segment(source)
    half = scan_segment(source).fragments[SEGMENTS // 2].end
    first = now_us - SEGMENTS * info.duration_us
    roots = {}
    for case in ("baseline", "tail"):
        root = work / case
        pdir = root / "picorder"
        shutil.rmtree(root, ignore_errors=True)
        pdir.mkdir(parents=True)
        index = Index.open(pdir / "index.db")
        rows = []
        for i in range(SEGMENTS):
            start = first + i * info.duration_us
            rel = rel_name("cam1", start)
            (pdir / rel).parent.mkdir(parents=True, exist_ok=True)
            if case == "tail" and i == SEGMENTS - 1:
                growing = pdir / rel
                shutil.copyfile(source, growing)
                os.truncate(growing, half)
                continue
            os.link(source, pdir / rel)
            rows.append(row("cam1", rel, start, info))
            Segment.store_tables(index, rel, info.tables)
        with index.atomic():
            Segment.insert_many(rows).execute(index.db)
        index.close()
        roots[case] = root
    return roots, growing


def grow(path: Path, source: Path, ends: list[int]) -> None:
    """Append the source's next fragment to the growing file, as ffmpeg would."""
    size = path.stat().st_size
    nxt = next((end for end in ends if end > size), None)
    if nxt is not None:
        with open(source, "rb") as src, open(path, "ab") as out:
            src.seek(size)
            out.write(src.read(nxt - size))


def measure(client, url: str, token: str, first_byte: bool) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    response = client.get(url, headers=headers, buffered=False)
    if first_byte:
        next(response.response)
    elapsed = time.perf_counter() - started
    response.close()
    assert response.status_code == 200, response.status_code
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=30, help="at most 30: the file is then whole")
    args = parser.parse_args(argv)
    from webpanel import create_app
    from webpanel.api import video

    work = Path(args.dir or tempfile.mkdtemp(prefix="picorder-tail-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = make_segment(work)
        now = time.time()
        roots, growing = build(work, source, int(now * 1e6))
        ends = [frag.end for frag in scan_segment(source).fragments]
        token = prepare_panel(work / "data")
        clients = {case: create_app({"DATA_DIR": str(work / "data"), "RECORDING_ROOT": str(root)}
                                    ).test_client() for case, root in roots.items()}
        urls = {"timeline_hour_ms": (f"/api/cameras/cam1/timeline?start={now - 3600:.3f}"
                                     f"&end={now + 60:.3f}", False),
                "recording_5min_first_byte_ms": (f"/api/cameras/cam1/recording.mp4?start="
                                                 f"{now - 300:.3f}&end={now:.3f}", True)}
        times: dict = {(case, key): [] for case in clients for key in urls}
        result = {"load_before": os.getloadavg()[0]}
        for _ in range(args.rounds):
            grow(growing, source, ends)
            for key, (url, first_byte) in urls.items():
                for case, client in clients.items():
                    video.movies.clear()            # build it every time
                    times[(case, key)].append(measure(client, url, token, first_byte))
        for key in urls:
            base = statistics.median(times[("baseline", key)]) * 1000
            tail = statistics.median(times[("tail", key)]) * 1000
            result[key] = {"baseline": round(base, 2), "tail": round(tail, 2),
                           "ratio": round(tail / base, 3)}
        result["load_after"] = os.getloadavg()[0]
        result["segment_s"] = SEGMENT_S
        print(json.dumps(result, indent=2))
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
