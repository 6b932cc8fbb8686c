"""A simulated IP camera: GStreamer's RTSP server streaming test H.264.

Run with the system Python, which has GStreamer's bindings (python3-gi):

    /usr/bin/python3 -m recorder.sim.rtsp_server --port 8554 --cameras 2

Each camera N is served at rtsp://127.0.0.1:PORT/camN (main stream) and
rtsp://127.0.0.1:PORT/camN/sub (a smaller sub stream). The password, if any,
is read from a file or standard input so that it never shows in a process list.

A new client joins the running stream: it never restarts the stream (or its
timestamps) for the clients already watching. Faults of real cameras can be
switched on for tests (--jump, --clock-rate, --freeze, --resize), and --stamp
burns the wall-clock time of each frame into it as a QR code. --scene NAME plays a
scripted scene (recorder/sim/scenes.py) on a camera instead of the test pattern,
and --scene-truth FILE records when each scene's stream began.
"""

import argparse
import signal
import sys
import time
from dataclasses import dataclass, field
from functools import partial

from recorder.sim.scenes import SCENES, Scene, truth_record

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, GObject, Gst, GstRtspServer
except (ImportError, ValueError) as exc:     # ValueError: a typelib is not installed
    print(f"ERROR GStreamer's Python bindings are missing ({exc}): install python3-gi "
          f"and gir1.2-gst-rtsp-server-1.0", flush=True)
    sys.exit(2)

# The GStreamer elements of each kind of stream, and the Debian package holding each.
ELEMENT_PACKAGES = {
    "videotestsrc": "gstreamer1.0-plugins-base", "timeoverlay": "gstreamer1.0-x",
    "textoverlay": "gstreamer1.0-x", "x264enc": "gstreamer1.0-plugins-ugly",
    "h264parse": "gstreamer1.0-plugins-bad", "rtph264pay": "gstreamer1.0-plugins-good",
    "x265enc": "gstreamer1.0-plugins-bad", "h265parse": "gstreamer1.0-plugins-bad",
    "rtph265pay": "gstreamer1.0-plugins-good", "filesrc": "libgstreamer1.0-0",
    "qtdemux": "gstreamer1.0-plugins-good", "vp8enc": "gstreamer1.0-plugins-good",
    "rtpvp8pay": "gstreamer1.0-plugins-good", "videoscale": "gstreamer1.0-plugins-base",
    "capsfilter": "libgstreamer1.0-0", "debugqroverlay": "gstreamer1.0-plugins-bad",
    "compositor": "gstreamer1.0-plugins-base", "videobalance": "gstreamer1.0-plugins-good",
    "videoconvert": "gstreamer1.0-plugins-base",
}
PATTERN_ELEMENTS = ("videotestsrc", "videoscale", "capsfilter", "timeoverlay", "textoverlay")
CODEC_ELEMENTS = {"h264": ("x264enc", "h264parse", "rtph264pay"),
                  "hevc": ("x265enc", "h265parse", "rtph265pay"),
                  "vp8": ("vp8enc", "rtpvp8pay")}
CLIP_ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")
SCENE_ELEMENTS = ("videotestsrc", "compositor", "videobalance", "videoconvert", "x264enc",
                  "h264parse", "rtph264pay")


# Patterns that look like a picture (the demo, screenshots); "noise" cycles through
# all of videotestsrc's patterns, starting with snow, which is costly to encode.
PICTURE_PATTERNS = ("ball", "smpte", "pinwheel", "circular", "spokes", "gradient")


def pattern_for(camera: int, style: str) -> str:
    """videotestsrc pattern of camera N (1-based) for the style "picture" or "noise"."""
    if style == "picture":
        return PICTURE_PATTERNS[(camera - 1) % len(PICTURE_PATTERNS)]
    return str(camera % 20)


def pipeline(width: int, height: int, fps: int, kbps: int, gop: int, pattern: str, label: str,
             codec: str = "h264", stamp: bool = False) -> str:
    """Live test pattern with a clock, encoded for RTSP (frame timing from the source).

    The raw frames pass a capsfilter named "size" (--resize changes it) and, with
    `stamp`, a QR code of each frame's timestamp, which configure_media makes the
    wall-clock time of its capture (UTC ns).
    """
    src = (f"videotestsrc is-live=true pattern={pattern} ! "
           f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
           f"videoscale ! capsfilter name=size caps=video/x-raw,width={width},height={height} ! "
           f"timeoverlay halignment=right valignment=bottom ! "
           f"textoverlay text=\"{label}\" valignment=top halignment=left ! ")
    if stamp:
        src += f"debugqroverlay name=stamp x=2 y=20 pixel-size={STAMP_PIXEL_SIZE} ! "
    if codec == "hevc":
        enc = (f"x265enc bitrate={kbps} speed-preset=ultrafast tune=zerolatency "
               f"key-int-max={gop} ! h265parse config-interval=-1 ! rtph265pay name=pay0 pt=96")
    elif codec == "vp8":
        # A codec some cameras offer that MP4 cannot carry (the muxer refuses it).
        enc = (f"vp8enc target-bitrate={kbps * 1000} deadline=1 cpu-used=8 "
               f"keyframe-max-dist={gop} ! rtpvp8pay name=pay0 pt=96")
    else:
        enc = (f"x264enc bitrate={kbps} speed-preset=ultrafast tune=zerolatency "
               f"key-int-max={gop} bframes=0 ! video/x-h264,profile=baseline ! "
               f"h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96")
    return "( " + src + enc + " )"


def scene_pipeline(scene: Scene, width: int, height: int, fps: int, kbps: int, gop: int) -> str:
    """A scripted scene (SceneDriver moves the object and the light): a still picture, a
    layer of sensor noise and an object, mixed, lit, then encoded in VBR or CBR."""
    raw = f"video/x-raw,width={width},height={height},framerate={fps}/1"
    if scene.encoding == "vbr":
        rate = "pass=qual quantizer=26"
    else:
        rate = f"pass=cbr bitrate={kbps} vbv-buf-capacity=1000"
    return (f"( compositor name=mix background=black sink_1::alpha={scene.noise} "
            f"sink_2::alpha=0 ! {raw},format=I420 ! videobalance name=light ! videoconvert ! "
            f"x264enc {rate} speed-preset=ultrafast tune=zerolatency key-int-max={gop} "
            f"bframes=0 ! video/x-h264,profile=baseline ! h264parse config-interval=-1 ! "
            f"rtph264pay name=pay0 pt=96 "
            f"videotestsrc is-live=true pattern=smpte ! {raw} ! mix.sink_0 "
            f"videotestsrc is-live=true pattern=snow ! {raw} ! mix.sink_1 "
            f"videotestsrc is-live=true pattern=solid-color foreground-color=0xffd8b040 ! "
            f"video/x-raw,width={width // 8},height={height // 3},framerate={fps}/1 ! "
            f"mix.sink_2 )")


class SceneDriver:
    """Plays a Scene on one media's pipeline: before each mixed frame, sets the light
    and the object for that frame's time since the stream's first frame."""

    def __init__(self, scene: Scene, mount: str, width: int, truth_path: str | None):
        self.scene, self.mount, self.width, self.truth_path = scene, mount, width, truth_path

    def attach(self, element) -> None:
        mix = element.get_by_name("mix")
        light = element.get_by_name("light")
        thing = mix.get_static_pad("sink_2")
        first = []
        mix.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                            partial(self._frame, first, light, thing))

    def _frame(self, first: list, light, thing, pad, info):
        buf = info.get_buffer()
        if not first:
            first.append(buf.pts)
            if self.truth_path:
                with open(self.truth_path, "a", encoding="utf-8") as fh:
                    fh.write(truth_record(self.mount, self.scene, time.time()) + "\n")
        state = self.scene.state((buf.pts - first[0]) / SECOND_NS)
        light.set_property("brightness", state.brightness)
        light.set_property("saturation", state.saturation)
        if state.across is None:
            thing.set_property("alpha", 0.0)
        else:
            size = self.width // 8
            thing.set_property("xpos", int(-size + state.across * (self.width + size)))
            thing.set_property("ypos", int(self.width * 0.2))
            thing.set_property("alpha", 1.0)
        return Gst.PadProbeReturn.OK


def clip_pipeline(path: str) -> str:
    """A pre-encoded H.264 MP4 replayed at its own pace: no encoder, so one machine
    can serve many streams (the recorder benchmark). The stream ends with the clip."""
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    return (f"( filesrc location=\"{quoted}\" ! qtdemux ! h264parse config-interval=-1 ! "
            f"rtph264pay name=pay0 pt=96 )")


def needed_elements(args) -> tuple[str, ...]:
    """The elements the streams of these options use (all of them for --check-elements)."""
    if args.check_elements:
        return tuple(ELEMENT_PACKAGES)
    if args.clip:
        return CLIP_ELEMENTS
    if args.scene:
        return PATTERN_ELEMENTS + SCENE_ELEMENTS
    return PATTERN_ELEMENTS + CODEC_ELEMENTS[args.codec] + (("debugqroverlay",) if args.stamp else ())


def missing_elements_error(names) -> str | None:
    """None when GStreamer has every element, else what is missing and what to install."""
    missing = [name for name in names if Gst.ElementFactory.find(name) is None]
    if not missing:
        return None
    packages = sorted({ELEMENT_PACKAGES[name] for name in missing})
    return (f"GStreamer elements missing: {', '.join(missing)} "
            f"(install {' '.join(packages)})")


STAMP_PIXEL_SIZE = 2         # QR module size in pixels: survives 640x360 at 1 Mbit/s
SECOND_NS = 1_000_000_000


def parse_at(text: str) -> tuple[str, float]:
    """"VALUE@SECONDS" -> (VALUE, SECONDS): a fault and when it strikes (after the first frame)."""
    value, sep, at = text.partition("@")
    try:
        when = float(at)
    except ValueError:
        when = -1.0
    if not sep or not value or when < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected VALUE@SECONDS")
    return value, when


def parse_jump(text: str) -> tuple[float, float]:
    """"-30@12": at 12 s, the timestamps jump back 30 s (cumulative with earlier jumps)."""
    value, at = parse_at(text)
    try:
        return float(value), at
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the jump must be seconds") from None


def parse_freeze(text: str) -> tuple[float, float]:
    """"8@20": at 20 s, no frame is sent for 8 s (the connection stays up)."""
    seconds, at = parse_jump(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a freeze lasts more than 0 s")
    return seconds, at


def parse_resize(text: str) -> tuple[tuple[int, int], float]:
    """"320x180@15": at 15 s, the picture becomes 320x180."""
    value, at = parse_at(text)
    width, sep, height = value.partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT@SECONDS")
    return (int(width), int(height)), at


@dataclass
class Faults:
    """What a misbehaving camera does; times in seconds after the stream's first frame."""

    jumps: list[tuple[float, float]] = field(default_factory=list)     # (seconds, at)
    clock_rate: float = 1.0                                           # media s per real s
    freezes: list[tuple[float, float]] = field(default_factory=list)   # (seconds, at)
    resizes: list[tuple[tuple[int, int], float]] = field(default_factory=list)
    stamp: bool = False

    @property
    def retimes(self) -> bool:
        return bool(self.jumps) or self.clock_rate != 1.0


class FaultInjector:
    """Pad probes that make one camera misbehave as asked, each fault once.

    The faults' times count from the camera's first frame, whichever client it went
    to: a client that reconnects (a recorder restarting ffmpeg) does not see them
    again. Raw frames (before the encoder) are dropped while frozen and resized;
    encoded frames get their timestamps jumped and scaled. The server paces its
    sending by the timestamps, so they are only ever moved back: the pipeline runs on
    the wall clock (see configure_media) and every timestamp goes back by
    RETIME_BASE_NS first, which leaves room for jumps forward and a fast clock (a
    client sees only differences).
    """

    RETIME_BASE_NS = 24 * 3600 * SECOND_NS

    def __init__(self, faults: Faults):
        self.faults = faults
        self.started: float | None = None

    def attach(self, element) -> None:
        """Probe one media's pipeline (a new one for a client after the last one left)."""
        size = element.get_by_name("size")
        if size is not None and (self.faults.freezes or self.faults.resizes):
            resized = set()
            size.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER,
                                                 partial(self._raw, size, resized))
        if self.faults.retimes:
            first_pts = []
            element.get_by_name("pay0").get_static_pad("sink").add_probe(
                Gst.PadProbeType.BUFFER, partial(self._encoded, first_pts))

    def _elapsed_s(self) -> float:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        return now - self.started

    def _raw(self, size, resized: set, pad, info):
        t = self._elapsed_s()
        for seconds, at in self.faults.freezes:
            if at <= t < at + seconds:
                return Gst.PadProbeReturn.DROP
        for i, ((width, height), at) in enumerate(self.faults.resizes):
            if t >= at and i not in resized:
                resized.add(i)
                caps = Gst.Caps.from_string(f"video/x-raw,width={width},height={height}")
                GLib.idle_add(size.set_property, "caps", caps)
        return Gst.PadProbeReturn.OK

    def _encoded(self, first_pts: list, pad, info):
        buf = info.get_buffer()
        if buf.pts == Gst.CLOCK_TIME_NONE:
            return Gst.PadProbeReturn.OK
        t = self._elapsed_s()
        if not first_pts:
            first_pts.append(buf.pts)
        media_s = (buf.pts - first_pts[0]) / SECOND_NS * self.faults.clock_rate
        shift_s = sum(seconds for seconds, at in self.faults.jumps if t >= at)
        retimed = first_pts[0] - self.RETIME_BASE_NS + int((media_s + shift_s) * SECOND_NS)
        buf.pts = min(buf.pts, max(0, retimed))
        if buf.dts != Gst.CLOCK_TIME_NONE:
            buf.dts = buf.pts
        return Gst.PadProbeReturn.OK


def _not_seekable(pad, info):
    """Answer "not seekable" for the stream: a new client's PLAY (Range: npt=0-) then does
    not seek the shared pipeline, which would restart every client's timestamps."""
    if info.get_query().type == Gst.QueryType.SEEKING:
        return Gst.PadProbeReturn.HANDLED       # a new seeking query says "not seekable"
    return Gst.PadProbeReturn.OK


def _keep_prepared(media, *_):
    """A camera's encoder runs whether anyone watches or not: one extra hold on the
    media keeps its pipeline up after the last client leaves, so a client that connects
    then joins the running stream at its next keyframe, as with a camera, instead of
    waiting for a pipeline built afresh (which no camera does)."""
    if not getattr(media, "_held", False):
        media._held = True
        GLib.idle_add(lambda: media.prepare(None) and False)


def configure_media(faults: Faults, injector, keep_encoding: bool, factory, media) -> None:
    """media-configure: keep the stream running for everyone; inject the faults."""
    if keep_encoding:
        media.connect("prepared", _keep_prepared)
    element = media.get_element()
    element.get_by_name("pay0").get_static_pad("sink").add_probe(
        Gst.PadProbeType.QUERY_UPSTREAM, _not_seekable)
    if faults.stamp or faults.retimes:
        # On the realtime clock with base time 0, a live source's timestamps are the
        # wall-clock time of capture (the stamp shows them; retiming moves them back).
        pipeline = element.get_parent()
        pipeline.set_start_time(Gst.CLOCK_TIME_NONE)
        pipeline.set_base_time(0)
    if injector is not None:
        injector.attach(element)      # a FaultInjector or a SceneDriver


def faults_from_args(args) -> Faults:
    return Faults(jumps=args.jump, clock_rate=args.clock_rate, freezes=args.freeze,
                  resizes=args.resize, stamp=args.stamp)


def build_server(args) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    auth = None
    if args.user:
        password = read_password(args.password_file)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, password), token)
        server.set_auth(auth)
    faults = faults_from_args(args)
    clock = None
    if faults.stamp or faults.retimes:
        clock = GObject.new(Gst.SystemClock, clock_type=Gst.ClockType.REALTIME)
    for n in range(1, args.cameras + 1):
        streams = [("", args.width, args.height, args.kbps),
                   ("/sub", args.width // 2, args.height // 2, max(64, args.kbps // 4))]
        for suffix, width, height, kbps in streams:
            factory = GstRtspServer.RTSPMediaFactory()
            scene = SCENES[args.scene[n - 1]] if n <= len(args.scene) else None
            if args.clip:
                factory.set_launch(clip_pipeline(args.clip))
            elif scene is not None:
                factory.set_launch(scene_pipeline(scene, width, height, args.fps, kbps,
                                                  args.gop))
            else:
                factory.set_launch(pipeline(width, height, args.fps, kbps, args.gop,
                                            pattern_for(n, args.patterns),
                                            f"cam{n}{suffix}", args.codec, args.stamp))
            factory.set_shared(True)
            if clock is not None:
                factory.set_clock(clock)
            injector = FaultInjector(faults) if faults.retimes or faults.freezes \
                or faults.resizes else None
            if scene is not None:
                injector = SceneDriver(scene, f"cam{n}{suffix}", width, args.scene_truth)
            keep = not args.clip and not args.rebuild_per_client
            factory.connect("media-configure",
                            partial(configure_media, faults, injector, keep))
            if auth is not None:
                permissions = GstRtspServer.RTSPPermissions()
                permissions.add_permission_for_role("user", "media.factory.access", True)
                permissions.add_permission_for_role("user", "media.factory.construct", True)
                factory.set_permissions(permissions)
            mounts.add_factory(f"/cam{n}{suffix}", factory)
    return server


def read_password(path: str | None) -> str:
    if not path or path == "-":
        return sys.stdin.readline().rstrip("\r\n")
    with open(path, encoding="utf-8") as fh:
        return fh.read().rstrip("\r\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--kbps", type=int, default=1000)
    parser.add_argument("--gop", type=int, default=15, help="keyframe interval in frames")
    parser.add_argument("--codec", choices=("h264", "hevc", "vp8"), default="h264")
    parser.add_argument("--patterns", choices=("noise", "picture"), default="noise",
                        help="test pictures: noise (high bitrate) or picture (demo)")
    parser.add_argument("--clip", help="serve this H.264 MP4 on every mount instead of "
                                       "encoding a test pattern (the benchmark's cameras)")
    parser.add_argument("--jump", type=parse_jump, action="append", default=[],
                        metavar="SECONDS@AT", help="timestamps jump by SECONDS (negative: back) "
                        "AT seconds after the first frame; repeatable")
    parser.add_argument("--clock-rate", type=float, default=1.0, metavar="RATE",
                        help="the camera's clock runs at RATE (1.005: 0.5 %% fast)")
    parser.add_argument("--freeze", type=parse_freeze, action="append", default=[],
                        metavar="SECONDS@AT", help="send no frame for SECONDS, AT seconds "
                        "after the first frame, with the connection up; repeatable")
    parser.add_argument("--resize", type=parse_resize, action="append", default=[],
                        metavar="WxH@AT", help="change the resolution AT seconds after "
                        "the first frame; repeatable")
    parser.add_argument("--stamp", action="store_true",
                        help="burn each frame's capture time (UTC ns) in as a QR code")
    parser.add_argument("--scene", choices=sorted(SCENES), action="append", default=[],
                        help="camera N plays the Nth scripted scene given (repeatable)")
    parser.add_argument("--scene-truth", metavar="FILE",
                        help="append when each scene's stream began (JSON lines)")
    parser.add_argument("--rebuild-per-client", action="store_true",
                        help="stop encoding when the last client leaves and start afresh "
                             "for the next one (by default a camera keeps encoding, as "
                             "cameras do; --clip mounts always start afresh)")
    parser.add_argument("--user")
    parser.add_argument("--password-file", help="file with the password ('-': stdin)")
    parser.add_argument("--check-elements", action="store_true",
                        help="check that GStreamer has every element any stream uses, then exit")
    args = parser.parse_args(argv)
    if args.clock_rate <= 0:
        parser.error("--clock-rate must be greater than 0")
    if args.clip and (args.freeze or args.resize or args.stamp):
        parser.error("--freeze, --resize and --stamp need the test pattern, not --clip")
    if args.scene and (args.clip or args.freeze or args.resize or args.stamp or args.jump
                       or args.clock_rate != 1.0 or args.codec != "h264"):
        parser.error("--scene plays alone: no --clip, faults, --stamp or other codec")
    if args.clip is not None:
        try:
            with open(args.clip, "rb"):
                pass
        except OSError as exc:
            parser.error(f"--clip {args.clip}: {exc.strerror}")

    Gst.init(None)
    # A missing element would only show at the first client, as "503 Service Unavailable".
    error = missing_elements_error(needed_elements(args))
    if error:
        print(f"ERROR {error}", flush=True)
        return 2
    if args.check_elements:
        print("OK", flush=True)
        return 0
    server = build_server(args)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr)
        return 1
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    print(f"READY rtsp://{args.address}:{server.get_bound_port()}/cam1", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
