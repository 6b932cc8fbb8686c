"""Scripted scenes for the simulated camera: what moves when, and what only the light does.

A scene is a static picture with sensor noise, lighting changes (clouds: a slow
brightness drift; a light switched on or off: a step; the day/night IR switch:
colour to grey plus a brightness step) and an object crossing the picture in known
intervals only. It repeats every `seconds`. This module is plain Python (the
benchmark and the tests read the truth from it); rtsp_server plays it with GStreamer.
"""

import json
import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scene:
    """One scripted scene; times in seconds from the stream's first frame."""

    name: str
    seconds: float
    encoding: str                       # "vbr" (constant quality) or "cbr"
    moves: tuple = ()                   # (start, end): the object crosses the picture
    lights: tuple = ()                  # (at, brightness after): a light switched on/off
    ir: tuple = ()                      # at: day/night switch (toggles colour <-> grey)
    clouds: float = 0.08                # amplitude of the slow brightness drift
    cloud_period_s: float = 50.0
    noise: float = 0.06                 # sensor noise: alpha of a snow layer
    base_brightness: float = -0.15

    def state(self, t: float) -> "SceneState":
        """Brightness, saturation and the object's position (fraction across, or None) at t."""
        t = t % self.seconds
        brightness = self.base_brightness
        for at, after in self.lights:
            if t >= at:
                brightness = after
        grey = sum(1 for at in self.ir if t >= at) % 2 == 1
        if grey:
            brightness += 0.12
        brightness += self.clouds * math.sin(2 * math.pi * t / self.cloud_period_s)
        across = None
        for start, end in self.moves:
            if start <= t < end:
                across = (t - start) / (end - start)
        return SceneState(brightness, 0.0 if grey else 1.0, across)

    def truth(self) -> list[tuple[float, float]]:
        """The intervals with motion in one period."""
        return [tuple(m) for m in self.moves]


@dataclass(frozen=True)
class SceneState:
    brightness: float
    saturation: float
    across: float | None


_MOTION = dict(moves=((20, 32), (55, 63), (90, 105), (125, 135)),
               lights=((40, 0.1),), ir=(75, 115))
_STATIC = dict(lights=((30, 0.1), (100, -0.15)), ir=(60, 130))

SCENES = {scene.name: scene for scene in (
    Scene("motion-vbr", 150, "vbr", **_MOTION),
    Scene("motion-cbr", 150, "cbr", **_MOTION),
    Scene("static-vbr", 150, "vbr", **_STATIC),
    Scene("static-cbr", 150, "cbr", **_STATIC),
    # Short, for the e2e tests: someone walks by twice, a light is switched on between.
    Scene("walk-by", 40, "cbr", moves=((10, 18), (28, 34)), lights=((22, 0.1),)),
)}


def truth_record(mount: str, scene: Scene, start_utc: float) -> str:
    """One line of the truth file: a mount's scene and the wall time of its first frame."""
    return json.dumps({"mount": mount, "start_utc": start_utc, "scene": asdict(scene)})


def read_truth(path) -> dict:
    """mount -> (Scene, start_utc) from a truth file (the last line of each mount wins)."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                fields = rec["scene"]
                for key in ("moves", "lights"):
                    fields[key] = tuple(tuple(v) for v in fields[key])
                fields["ir"] = tuple(fields["ir"])
                out[rec["mount"]] = (Scene(**fields), rec["start_utc"])
    return out
