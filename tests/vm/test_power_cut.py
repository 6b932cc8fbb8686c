"""Power cuts (issue 15): kill -9 QEMU at a segment boundary and in the first seconds
after a boot; each time the next boot finds the index matching the files, at most the
last 2 s of video gone, recording resumed and config.db intact.

`benchmarks/power_cut.py` runs ten cuts over every scenario of tests/vm/power_cut_rig.py.
"""

import pytest

from recorder.sim.launcher import SimCameras
from power_cut_rig import PowerCutBox

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.integration, pytest.mark.timeout(1800)]

MAX_LOSS_S = 2.0          # the promise


@pytest.fixture(scope="module")
def cut_box(vm_image, ssh_keypair, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("power-cut")
    key, pubkey = ssh_keypair
    # Keyframes every second, like the cameras the fragments are sized for.
    sim = SimCameras(cameras=1, fps=10, gop=10, kbps=1000, width=320, height=180).start()
    box = PowerCutBox(vm_image, workdir, key, pubkey, sim.port, seed=15)
    try:
        box.first_boot()
        yield box
    finally:
        box.stop()
        sim.stop()
        print(f"VM work directory: {workdir}")


@pytest.mark.parametrize("scenario", ["segment boundary", "first seconds after boot"])
def test_power_cut(cut_box, scenario):
    cut = cut_box.cut(scenario)
    print(f"{scenario}: lost {cut.loss_s} s (clock offset +/- {cut.offset_rtt_ms / 2:.0f} ms), "
          f"largest hole {cut.max_gap_s:.2f} s over {cut.covered_s} s, boot {cut.boot_s:.0f} s, "
          f"recording again {cut.resumed_s:.0f} s after the re-plug; recovery: {cut.recovered}")
    assert cut.problems(MAX_LOSS_S) == []
    rate = cut_box.root_write_rate_mb_h()
    if rate is not None:        # a window of a minute or two: benchmarks/power_cut.py measures it
        print(f"root filesystem writes after the boot: {rate:.2f} MB/h")
