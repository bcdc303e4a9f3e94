import dataclasses

import numpy as np
import pytest

from realtime.config import OverlayConfig
from realtime.overlay import Hud, render
from realtime.pipeline import Pipeline
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket


class AddDetection:
    name = "detect"
    pure = False
    fail_soft = False

    def __init__(self):
        self.closed = 0

    def __call__(self, packet):
        return dataclasses.replace(packet, detections=Detections(
            np.array([[2, 2, 20, 20]], np.float32), np.array([0.9], np.float32), np.array([0]), ("thing",)))

    def reset(self):
        pass

    def close(self):
        self.closed += 1


class Broken:
    name = "style"
    pure = False
    fail_soft = True

    def __init__(self):
        self.closed = 0

    def __call__(self, packet):
        raise RuntimeError("boom")

    def reset(self):
        pass

    def close(self):
        self.closed += 1


def packet():
    return FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=np.zeros((32, 32, 3), np.uint8))


def test_stages_run_in_order_and_are_timed():
    pipeline = Pipeline([AddDetection()])
    out = pipeline(packet())
    assert len(out.detections) == 1
    assert set(out.timings_ms) == {"detect"}
    assert out.timings_ms["detect"] >= 0


def test_fail_soft_stage_turns_itself_off():
    broken = Broken()
    pipeline = Pipeline([AddDetection(), broken])
    out = pipeline(packet())
    assert len(out.detections) == 1
    assert pipeline.names == ("detect",)
    assert broken.closed == 1 and "boom" in pipeline.disabled[0]


def test_analysis_error_propagates():
    class Fails(AddDetection):
        def __call__(self, packet):
            raise ValueError("model broke")

    with pytest.raises(ValueError):
        Pipeline([Fails()])(packet())


def test_close_is_idempotent():
    stage = AddDetection()
    pipeline = Pipeline([stage])
    pipeline.close()
    pipeline.close()
    assert stage.closed == 1


def test_render_never_mutates_the_frame():
    p = Pipeline([AddDetection()])(packet())
    p = dataclasses.replace(p, faces=FaceDetections(np.array([[4, 4, 12, 12]], np.float32), np.ones(1, np.float32),
                                                    np.full((1, 5, 2), 8, np.float32)),
                            identities=dataclasses.replace(FaceIdentities.unknown(1), names=("bob",),
                                                           distances=np.array([0.3], np.float32),
                                                           track_ids=np.array([1])))
    before = p.frame_bgr.copy()
    image = render(p, Hud(fps=30.0), OverlayConfig())
    assert np.array_equal(p.frame_bgr, before)
    assert image.any()
    assert not render(p, Hud(), OverlayConfig(), show_overlays=False).any()
