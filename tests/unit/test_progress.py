"""ffmpeg's -progress blocks and segment-list lines."""

import os
import threading

from hypothesis import given
from hypothesis import strategies as st

from recorder.spawner import PipeHub
from recorder.progress import (MAX_PENDING_BYTES, ProgressFramer, ProgressParser, StreamMetrics,
                               parse_segment_line)

BLOCK = """frame=45
fps=14.98
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=2866732
out_time_ms=2866732
out_time=00:00:02.866732
dup_frames=1
drop_frames=2
speed=0.99x
progress=continue
"""


def feed(parser, text):
    blocks = [parser.feed(line) for line in text.splitlines()]
    return [b for b in blocks if b is not None]


def test_block_parsed_when_complete():
    parser = ProgressParser()
    (block,) = feed(parser, BLOCK)
    assert block.frame == 45 and block.fps == 14.98
    assert block.out_time_us == 2866732
    assert block.dup == 1 and block.drop == 2
    assert block.bitrate_kbps == 0.0 and block.total_size == 0
    assert block.speed == 0.99 and not block.end


def test_end_block_and_bitrate():
    parser = ProgressParser()
    (block,) = feed(parser, "frame=3\nbitrate=1057.3kbits/s\nout_time_us=N/A\nprogress=end\n")
    assert block.end and block.bitrate_kbps == 1057.3 and block.out_time_us is None


def test_garbage_lines_ignored():
    parser = ProgressParser()
    assert feed(parser, "hello\n=\nframe=x\nprogress=continue\n")[0].frame == 0


def test_segment_lines():
    entry = parse_segment_line("12-36-16.mp4,3.933333,7.933333\n")
    assert entry.name == "12-36-16.mp4"
    assert entry.start_us == 3_933_333 and entry.end_us == 7_933_333
    assert parse_segment_line("nonsense") is None
    assert parse_segment_line("a.mp4,5,4") is None
    assert parse_segment_line("../x.mp4,1,2") is None


def test_metrics_survive_restarts():
    parser = ProgressParser()
    metrics = StreamMetrics()
    (block,) = feed(parser, BLOCK)
    metrics.update(block)
    metrics.end_run()
    metrics.update(feed(parser, "frame=10\ndrop_frames=1\ndup_frames=0\nprogress=continue\n")[0])
    assert metrics.frames == 55 and metrics.dropped == 3 and metrics.duplicated == 1


def report(frame, end=False):
    return BLOCK.replace("frame=45", f"frame={frame}").replace(
        "progress=continue", "progress=end" if end else "progress=continue").encode()


def test_framer_gives_the_newest_complete_report_of_a_read():
    framer = ProgressFramer()
    (first,) = [b for b in [framer.feed(report(1))] if b]
    assert first.frame == 1 and first.out_time_us == 2866732 and first.dup == 1
    # Three reports in one read: only the newest one comes out.
    assert framer.feed(report(2) + report(3) + report(4)).frame == 4
    assert framer.feed(b"frame=9\nfps=1") is None       # half a report: nothing yet
    block = framer.feed(b"5\nprogress=end\n")
    assert block.frame == 9 and block.fps == 15.0 and block.end
    # "progress=continue" without its newline is not complete: the value may be cut.
    assert framer.feed(b"frame=10\nprogress=cont") is None
    assert framer.feed(b"inue\n").frame == 10


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=20), st.data())
def test_framer_agrees_with_the_line_parser_however_the_bytes_are_cut(frames, data):
    stream = b"".join(report(f, end=i == len(frames) - 1) for i, f in enumerate(frames))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=10)))
    framer, newest = ProgressFramer(), None
    for a, b in zip([0] + cuts, cuts + [len(stream)]):
        block = framer.feed(stream[a:b])
        if block is not None:
            newest = block
    parser = ProgressParser()
    expected = [b for b in (parser.feed(line) for line in stream.decode().splitlines()) if b]
    assert newest == expected[-1]


def test_framer_bounds_garbage():
    framer = ProgressFramer()
    for _ in range(10):
        assert framer.feed(b"x" * 50_000) is None
    assert len(framer._pending) <= MAX_PENDING_BYTES
    assert framer.feed(b"\n" + report(7)).frame == 7


def test_the_hub_passes_a_progress_pipe_s_reports_with_their_read_time():
    got, done = [], threading.Event()
    ticks = iter(range(1000, 10**6, 1000))
    hub = PipeHub(mono_us=lambda: next(ticks), batch_s=0)
    hub.start()
    r, w = os.pipe()
    hub.add(r, lambda item: done.set() if item is None else got.append(item), progress=True)
    os.write(w, report(1) + report(2))
    os.write(w, b"frame=3\nprogr")
    os.write(w, b"ess=end\n")
    os.close(w)
    assert done.wait(5)
    frames = [block.frame for block, _ in got]
    assert frames[-1] == 3 and set(frames) <= {2, 3} and frames == sorted(frames)
    assert got[-1][0].end
    assert [t for _, t in got] == sorted(t for _, t in got)
