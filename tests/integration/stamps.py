"""Read the wall-clock stamps the simulated camera burns into its frames (--stamp).

Each frame carries its capture time (UTC ns, GStreamer's debugqroverlay JSON) as a
QR code; libzbar (the library behind GStreamer's zbar element) reads it from the
frames ffmpeg decodes.
"""

import ctypes
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Where the sim draws the code (x=2 %, y=20 %, 2-pixel modules): a crop around it,
# scaled to one size whatever the picture's resolution, keeps the decode and scan cheap.
CROP_FILTER = "crop=iw/2:ih*0.8:0:ih*0.1,scale=320:288,format=gray"
CROP_SIZE = (320, 288)


def _fourcc(text: str) -> int:
    return sum(ord(c) << (8 * i) for i, c in enumerate(text))


class QrReader:
    """libzbar through ctypes (the Debian package has no Python binding)."""

    def __init__(self) -> None:
        z = self.z = ctypes.CDLL("libzbar.so.0")
        z.zbar_image_scanner_create.restype = ctypes.c_void_p
        z.zbar_image_scanner_set_config.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                                    ctypes.c_int, ctypes.c_int]
        z.zbar_image_create.restype = ctypes.c_void_p
        z.zbar_image_set_format.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        z.zbar_image_set_size.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        z.zbar_image_set_data.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.c_void_p]
        z.zbar_scan_image.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        z.zbar_image_first_symbol.argtypes = [ctypes.c_void_p]
        z.zbar_image_first_symbol.restype = ctypes.c_void_p
        z.zbar_symbol_get_data.argtypes = [ctypes.c_void_p]
        z.zbar_symbol_get_data.restype = ctypes.c_char_p
        z.zbar_image_destroy.argtypes = [ctypes.c_void_p]
        self.scanner = z.zbar_image_scanner_create()
        z.zbar_image_scanner_set_config(self.scanner, 0, 0, 1)     # all symbologies on

    def read(self, gray: bytes, width: int, height: int) -> str | None:
        z = self.z
        image = z.zbar_image_create()
        buf = ctypes.create_string_buffer(gray, len(gray))
        try:
            z.zbar_image_set_format(image, _fourcc("Y800"))
            z.zbar_image_set_size(image, width, height)
            z.zbar_image_set_data(image, buf, len(gray), None)
            if z.zbar_scan_image(self.scanner, image) <= 0:
                return None
            symbol = z.zbar_image_first_symbol(image)
            return z.zbar_symbol_get_data(symbol).decode() if symbol else None
        finally:
            z.zbar_image_destroy(image)


@dataclass(frozen=True)
class StampedFrame:
    pts_us: int                 # the frame's time in its file, from the file's first frame
    stamp_us: int | None        # the wall time the camera burnt in (None: unreadable)


def frame_times(path: Path) -> list[int]:
    """Presentation times (us) of a file's video frames, from its first frame."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "frame=pts_time,pkt_dts_time", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    times = []
    for frame in json.loads(out).get("frames", []):
        t = frame.get("pts_time", frame.get("pkt_dts_time"))
        if t is not None:
            times.append(round(float(t) * 1e6))
    return [t - times[0] for t in times] if times else []


def stamped_frames(path: Path, reader: QrReader | None = None) -> list[StampedFrame]:
    """Every decoded frame of a segment file with the wall time burnt into it."""
    reader = reader or QrReader()
    w, h = CROP_SIZE
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-vf", CROP_FILTER, "-fps_mode", "passthrough",
                          "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    times = frame_times(path)
    size = w * h
    frames = []
    for i, pts in enumerate(times):
        chunk = raw[i * size:(i + 1) * size]
        text = reader.read(chunk, w, h) if len(chunk) == size else None
        frames.append(StampedFrame(pts, _stamp_us(text)))
    return frames


def _stamp_us(text: str | None) -> int | None:
    try:
        return json.loads(text)["TIMESTAMP"] // 1000 if text else None
    except (ValueError, KeyError, TypeError):
        return None
