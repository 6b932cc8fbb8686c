"""ffmpeg's -progress blocks and segment-list lines."""

from recorder.progress import ProgressParser, StreamMetrics, parse_segment_line

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
