"""Timeline query over 30 days of one camera, with and without index.db's covering index.

    .venv/bin/python -m benchmarks.timeline_index
"""

import statistics
import tempfile
import time
from pathlib import Path

from recorder.index import Index, Segment, queries
from webpanel import index_reader

SEGMENTS = 43_200                 # 30 days of 60 s segments
RUN_LENGTH = 500                  # segments per ffmpeg run
T0 = 1_700_000_000_000_000
REPEAT = 20


def build(pdir: Path, *, covering: bool) -> None:
    pdir.mkdir(parents=True)
    index = Index.open(pdir / "index.db")
    rows = [dict(camera="cam", stream="main", path=f"cam/{i}.mp4",
                 start_us=T0 + i * 60_000_000, end_us=T0 + (i + 1) * 60_000_000,
                 duration_us=60_000_000, bytes=1, frames=900, run_id=T0 + i // RUN_LENGTH)
            for i in range(SEGMENTS)]
    with index.atomic():
        for i in range(0, len(rows), 500):
            Segment.insert_many(rows[i:i + 500]).execute(index.db)
    if not covering:
        index.db.execute_sql("DROP INDEX segment_timeline")
    index.close()


def median_ms(pdir: Path) -> float:
    index = index_reader.open_readonly(pdir)
    args = ("cam", "main", 0, 2**62, 0)
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        index.db.execute_sql(queries.RUNS_SQL, args).fetchall()
        times.append(time.perf_counter() - t0)
    index.close()
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with_index, without = Path(tmp) / "with", Path(tmp) / "without"
        build(with_index, covering=True)
        build(without, covering=False)
        a, b = median_ms(with_index), median_ms(without)
    print(f"timeline of {SEGMENTS} segments: {a:.1f} ms with the covering index, "
          f"{b:.1f} ms without (ratio {a / b:.2f})")


if __name__ == "__main__":
    main()
