"""A simulated IP camera: GStreamer's RTSP server streaming test H.264.

Run with the system Python, which has GStreamer's bindings (python3-gi):

    /usr/bin/python3 -m recorder.sim.rtsp_server --port 8554 --cameras 2

Each camera N is served at rtsp://127.0.0.1:PORT/camN (main stream) and
rtsp://127.0.0.1:PORT/camN/sub (a smaller sub stream). The password, if any,
is read from a file or standard input so that it never shows in a process list.
"""

import argparse
import signal
import sys

try:
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer
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
    "rtpvp8pay": "gstreamer1.0-plugins-good",
}
PATTERN_ELEMENTS = ("videotestsrc", "timeoverlay", "textoverlay")
CODEC_ELEMENTS = {"h264": ("x264enc", "h264parse", "rtph264pay"),
                  "hevc": ("x265enc", "h265parse", "rtph265pay"),
                  "vp8": ("vp8enc", "rtpvp8pay")}
CLIP_ELEMENTS = ("filesrc", "qtdemux", "h264parse", "rtph264pay")


# Patterns that look like a picture (the demo, screenshots); "noise" cycles through
# all of videotestsrc's patterns, starting with snow, which is costly to encode.
PICTURE_PATTERNS = ("ball", "smpte", "pinwheel", "circular", "spokes", "gradient")


def pattern_for(camera: int, style: str) -> str:
    """videotestsrc pattern of camera N (1-based) for the style "picture" or "noise"."""
    if style == "picture":
        return PICTURE_PATTERNS[(camera - 1) % len(PICTURE_PATTERNS)]
    return str(camera % 20)


def pipeline(width: int, height: int, fps: int, kbps: int, gop: int, pattern: str, label: str,
             codec: str = "h264") -> str:
    """Live test pattern with a clock, encoded for RTSP (frame timing from the source)."""
    src = (f"videotestsrc is-live=true pattern={pattern} ! "
           f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
           f"timeoverlay halignment=right valignment=bottom ! "
           f"textoverlay text=\"{label}\" valignment=top halignment=left ! ")
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
    return PATTERN_ELEMENTS + CODEC_ELEMENTS[args.codec]


def missing_elements_error(names) -> str | None:
    """None when GStreamer has every element, else what is missing and what to install."""
    missing = [name for name in names if Gst.ElementFactory.find(name) is None]
    if not missing:
        return None
    packages = sorted({ELEMENT_PACKAGES[name] for name in missing})
    return (f"GStreamer elements missing: {', '.join(missing)} "
            f"(install {' '.join(packages)})")


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
    for n in range(1, args.cameras + 1):
        streams = [("", args.width, args.height, args.kbps),
                   ("/sub", args.width // 2, args.height // 2, max(64, args.kbps // 4))]
        for suffix, width, height, kbps in streams:
            factory = GstRtspServer.RTSPMediaFactory()
            if args.clip:
                factory.set_launch(clip_pipeline(args.clip))
            else:
                factory.set_launch(pipeline(width, height, args.fps, kbps, args.gop,
                                            pattern_for(n, args.patterns),
                                            f"cam{n}{suffix}", args.codec))
            factory.set_shared(True)
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
    parser.add_argument("--user")
    parser.add_argument("--password-file", help="file with the password ('-': stdin)")
    parser.add_argument("--check-elements", action="store_true",
                        help="check that GStreamer has every element any stream uses, then exit")
    args = parser.parse_args(argv)
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
