"""``rtv bench pipeline``: the configured pipeline on a clip, headless, through the same run loop as every command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from realtime.build import build_pipeline
from realtime.config import Config
from realtime.io.capture import open_source
from realtime.session import annotate, run_session
from realtime.types import FramePacket


class ViewSink:
    """Asks the loop to render the overlay (as a live window would) and discards it: the view's cost is counted."""

    needs_display = True

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        pass

    def finish(self, result) -> None:
        pass

    def close(self) -> None:
        pass


def bench_pipeline(config: Config, clip: Path) -> dict[str, Any]:
    """Two headless runs of the configured pipeline on ``clip``.

    ``throughput``: every frame, as fast as possible (per-stage ms, FPS the pipeline can sustain).
    ``live``: the clip replayed at its own frame rate with the ``latest`` policy, as a camera would deliver it,
    overlays rendered as in a live view: FPS delivered, frames dropped, capture-to-output latency.
    """
    with build_pipeline(config) as pipeline:
        throughput = annotate(config, str(clip), None, None, progress=False, pipeline=pipeline)
    # A fresh pipeline for the second run: trackers and caches start empty, as in a real live session.
    live_source = dataclasses.replace(config.source, policy="latest", pace=True)
    with build_pipeline(config) as pipeline, open_source(live_source, str(clip)) as source:
        live = run_session(source, pipeline, [ViewSink()], config.overlay)
        stages = list(pipeline.names)
    return {"clip": str(clip), "stages": stages, "threads": dataclasses.asdict(config.runtime),
            "throughput": throughput.summary, "live": live.summary}
