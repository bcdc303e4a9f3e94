"""One worker slot: the pipeline (its ONNX sessions) built once, then one input after another, each with fresh
per-input state (face tracks, style stabiliser), so an input's outputs do not depend on what the worker did before
or on which worker got it. Used by the local process pool and by the Ray actors alike."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from realtime.batch.inputs import input_sha256
from realtime.config import Config
from realtime.errors import RtvError
from realtime.pipeline import Pipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """An input to annotate: absolute ``input`` path, output stem ``name``, absolute output paths, the config
    fingerprint recorded with the result. A video's annotated copy is ``mp4``; a photo's is ``image`` (the input's
    suffix; ``mp4`` then unused), annotated as a photo (:func:`realtime.session.annotate_photo`)."""

    input: str
    name: str
    mp4: str
    jsonl: str
    config: str
    image: str | None = None

    @property
    def annotated(self) -> str:
        """The annotated copy: :attr:`image` for a photo, else :attr:`mp4`."""
        return self.image or self.mp4

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        """(ledger key, final path) of each output: ``("image" or "mp4", ...)``, ``("jsonl", ...)``."""
        return ("image" if self.image else "mp4", self.annotated), ("jsonl", self.jsonl)

    @property
    def partial_mp4(self) -> str:
        """Where a worker writes the MP4: ``<name>.partial.mp4``; only the driver renames it to :attr:`mp4`."""
        return staging_path(self.mp4)

    @property
    def partial_image(self) -> str | None:
        """Where a worker writes a photo's annotated copy: ``<name>.partial<suffix>``."""
        return staging_path(self.image) if self.image else None

    @property
    def partial_jsonl(self) -> str:
        return staging_path(self.jsonl)

    @property
    def staged(self) -> tuple[tuple[str, str], ...]:
        """(staging path, final path) of each output, as the driver publishes them."""
        return tuple((staging_path(final), final) for _, final in self.outputs)


def staging_path(final: str) -> str:
    """``dir/clip.mp4`` -> ``dir/clip.partial.mp4``: an unfinished output keeps its extension (the container
    follows it) and never carries the final name."""
    path = Path(final)
    return str(path.with_name(f"{path.stem}.partial{path.suffix}"))


class Abandon(KeyboardInterrupt):
    """Raised from inside the run loop when the driver abandons in-flight inputs (Ctrl-C twice); the loop ends
    the input as "interrupted" and its outputs are finalised, as Ctrl-C does for ``rtv annotate``."""


def worker_config(config: Config, threads: int) -> Config:
    """``config`` sized for one of several workers (workers x threads <= cores): one stage worker (stages in
    sequence), ``threads`` ONNX Runtime intra-op threads, as many FFmpeg decoder and libx264 encoder threads, one
    inter-op, OpenCV and BLAS thread."""
    threads = max(1, int(threads))
    # One stage worker per process: the batch's processes are the parallelism (workers x threads <= cores).
    runtime = dataclasses.replace(config.runtime, workers=1, frames_in_flight=1, intra_op_threads=threads,
                                  inter_op_threads=1, opencv_threads=1, blas_threads=1)
    return dataclasses.replace(config, runtime=runtime,
                               source=dataclasses.replace(config.source, decode_threads=threads),
                               output=dataclasses.replace(config.output, encode_threads=threads))


def annotate_input(config: Config, job: Job, pipeline: Pipeline, on_frame: Callable[[], None] | None):
    """The one call into the library's annotate path (adapt here if its signature changes). ``on_frame()`` is
    called by the run loop as each frame completes (progress, and the driver's chance to abandon)."""
    from realtime.session import annotate

    counted = (lambda packet: on_frame()) if on_frame is not None else None
    return annotate(config, job.input, Path(job.partial_mp4), Path(job.partial_jsonl), progress=False,
                    pipeline=pipeline, on_frame=counted)


def annotate_photo_input(config: Config, job: Job, pipeline: Pipeline) -> None:
    """A photo input through the library's photo path (the one :meth:`realtime.api.Vision.predict` and
    ``rtv annotate photos/`` use), into the job's staging names."""
    from realtime.session import annotate_photo

    annotate_photo(config, pipeline, job.input, Path(job.partial_image or ""), Path(job.partial_jsonl))


def job_record(job: Job, status: str, frames: int = 0, expected: int | None = None, seconds: float = 0.0,
               sha256: str | None = None, error: str | None = None) -> dict[str, Any]:
    """A ``batch.jsonl`` line (see :mod:`realtime.batch.ledger`); a photo's names its ``image`` (``mp4`` null)."""
    image = {"image": Path(job.image).name} if job.image else {}
    return {"input": job.input, "name": job.name, "status": status, "frames": int(frames),
            "expected_frames": expected or None, "seconds": round(float(seconds), 3), "sha256": sha256,
            "config": job.config, "mp4": None if job.image else Path(job.mp4).name, **image,
            "jsonl": Path(job.jsonl).name, "error": error}


class BatchWorker:
    """Builds the pipeline for ``config`` (sized by :func:`worker_config`) once; ``process`` annotates one input.

    ``process`` never raises for a bad input: a damaged, missing or unreadable input, or a failing output, is a
    "failed" record with the one-line reason. :class:`Abandon` from ``on_frame`` ends it as "interrupted".
    """

    def __init__(self, config: Config, threads: int = 1):
        from realtime.build import build_pipeline
        from realtime.style.stage import offline_style

        self.config = offline_style(worker_config(config, threads))  # style at its configured width
        self._build = build_pipeline
        self.pipeline = build_pipeline(self.config)
        self._stage_names = self.pipeline.names
        self._stills: Pipeline | None = None  # photos: built on the first one (:func:`realtime.api.stills_config`)
        self._stills_names: tuple[str, ...] = ()
        self.inputs = 0

    def process(self, job: Job, on_frame: Callable[[], None] | None = None) -> dict[str, Any]:
        t0 = time.perf_counter()
        sha256 = None
        try:
            sha256 = input_sha256(job.input)
            if job.image:
                annotate_photo_input(self.config, job, self._stills_pipeline())
                _count_photo(on_frame)
                return job_record(job, "done", 1, 1, time.perf_counter() - t0, sha256)
            self._fresh_pipeline()
            outcome = annotate_input(self.config, job, self.pipeline, on_frame)
        except Abandon:
            return job_record(job, "interrupted", seconds=time.perf_counter() - t0, sha256=sha256,
                              error="abandoned on Ctrl-C")
        except RtvError as exc:
            return job_record(job, "failed", seconds=time.perf_counter() - t0, sha256=sha256, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch; the record says what
            log.debug("%s failed", job.input, exc_info=True)
            return job_record(job, "failed", seconds=time.perf_counter() - t0, sha256=sha256,
                              error=f"{type(exc).__name__}: {exc}")
        finally:
            self.inputs += 1
        result = outcome.result
        seconds = time.perf_counter() - t0
        expected = result.expected_frames or None
        if result.reason == "end":
            return job_record(job, "done", result.frames, expected, seconds, sha256)
        if result.reason == "interrupted":
            return job_record(job, "interrupted", result.frames, expected, seconds, sha256, "abandoned on Ctrl-C")
        return job_record(job, "failed", result.frames, expected, seconds, sha256,
                          result.error or f"ended: {result.reason}")

    def _fresh_pipeline(self) -> None:
        if self.pipeline.names != self._stage_names:  # a fail-soft stage turned itself off on an earlier input
            self.pipeline.close()
            self.pipeline = self._build(self.config)
        elif self.inputs:
            self.pipeline.reset()  # fresh per-input state: tracks, votes, stabilisers

    def _stills_pipeline(self) -> Pipeline:
        """The photo pipeline, rebuilt when a fail-soft stage turned itself off on an earlier photo (each photo's
        state is reset where it runs: :func:`realtime.api.predict_still`)."""
        from realtime.api import stills_config

        if self._stills is not None and self._stills.names != self._stills_names:
            self._stills.close()
            self._stills = None
        if self._stills is None:
            self._stills = self._build(stills_config(self.config))
            self._stills_names = self._stills.names
        return self._stills

    def close(self) -> None:
        self.pipeline.close()
        if self._stills is not None:
            self._stills.close()
            self._stills = None


def _count_photo(on_frame: Callable[[], None] | None) -> None:
    """A finished photo counts as one frame; an abandon that arrives now is too late to matter (it is done)."""
    if on_frame is not None:
        try:
            on_frame()
        except Abandon:
            pass
