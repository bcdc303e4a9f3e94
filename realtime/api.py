"""The public Python API: open a configured pipeline and run it on an image, many files, or a stream.

    >>> import realtime
    >>> with realtime.open_pipeline(overrides={"faces.recognize": False}) as vision:   # doctest: +SKIP
    ...     for result in vision.predict_files("photos/"):
    ...         print(result.source, len(result.detections), len(result.faces))

Photos are stills: each is processed on its own, at its own size (no letterboxing to another photo's size), with no
object or face tracks and no votes carried from one photo to the next, so a face is named from its own embedding.
Videos, cameras and streams run through the same pipeline as ``rtv annotate`` and ``rtv run`` (tracks and votes
over frames).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator, Iterator, Mapping, Sequence

import numpy as np

from realtime.config import Config, apply_override, build_section, load_config
from realtime.errors import ConfigError
from realtime.results import Result
from realtime.types import FramePacket

if TYPE_CHECKING:
    from realtime.pipeline import Pipeline

STILL_DETECT_WIDTH = 640  # face detection working width for photos (at least; a live frame uses faces.detect_width)

def resolve_config(config: Config | str | Path | None = None,
                   overrides: Mapping[str, Any] | Sequence[str] | None = None) -> Config:
    """A validated :class:`Config` from ``config`` (a Config, a YAML file, or None for the defaults) with
    ``overrides`` applied: a mapping of dotted keys to values (``{"faces.detect_width": 640}``) or ``--set``
    style strings (``["faces.detect_width=640"]``). Bad keys or values raise :class:`ConfigError` naming them.

    Example::

        >>> from realtime.api import resolve_config
        >>> resolve_config(overrides={"detector.score_threshold": 0.3}).detector.score_threshold
        0.3
    """
    if overrides is None:
        overrides = {}
    if isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides must be a mapping of dotted keys to values, got the string {overrides!r}")
    items: list = list(overrides.items()) if isinstance(overrides, Mapping) else [str(i) for i in overrides]
    if config is None or isinstance(config, (str, Path)):
        config = load_config(config, [item for item in items if isinstance(item, str)])
        items = [item for item in items if not isinstance(item, str)]
        if not items:
            return config
    elif not isinstance(config, Config):
        raise ConfigError(f"config must be a realtime.config.Config, a YAML path or None, got {type(config).__name__}")
    data = config.to_dict()
    for item in items:
        if isinstance(item, str):
            apply_override(data, item)
        else:
            set_dotted(data, *item)
    folder = Path(config.path).resolve().parent if config.path else Path.cwd()
    return dataclasses.replace(build_section(Config, data, "", folder), path=config.path)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data[section][name] = value`` for ``key`` = ``"section.name"`` (a mapping override, value as given)."""
    parts = str(key).split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"override key {key!r}: expected section.key, e.g. 'faces.detect_width'")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override key {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = list(value) if isinstance(value, tuple) else value


def stills_config(config: Config) -> Config:
    """``config`` for photos: no object tracking (no second, low-score pass either: a photo's boxes are the
    detector's own at ``detector.score_threshold``), the detector on every image, a face named by its own embedding
    (one vote decides), faces detected at least :data:`STILL_DETECT_WIDTH` wide, style at its fixed width."""
    faces = dataclasses.replace(config.faces, vote_window=1, name_votes=1, change_votes=1, reembed_every=1,
                                detect_width=max(config.faces.detect_width, STILL_DETECT_WIDTH))
    return dataclasses.replace(config, tracking=dataclasses.replace(config.tracking, enabled=False),
                               detector=dataclasses.replace(config.detector, every=1), faces=faces,
                               style=dataclasses.replace(config.style, adaptive=False))


def without_tracks(packet: FramePacket) -> FramePacket:
    """A photo's packet without face track ids (each photo is its own: no id means the same face elsewhere)."""
    identities = packet.identities
    if identities is None or not len(identities):
        return packet
    return dataclasses.replace(packet, identities=dataclasses.replace(
        identities, track_ids=np.full(len(identities), -1, np.int64)))


def predict_still(pipeline: "Pipeline", frame: np.ndarray, source: str | None, config: Config) -> Result:
    """One photo through ``pipeline`` (built from :func:`stills_config`), its state reset first: the result
    depends on nothing run before. ``config``: the overlay and JSONL decimals the result draws and writes with.
    :meth:`Vision.predict` and ``rtv batch`` both run photos through here."""
    pipeline.reset()
    try:
        packet = pipeline(FramePacket(index=0, t_capture=time.perf_counter(), t_source=0.0, frame_bgr=frame))
    finally:
        pipeline.close_pool()  # no worker thread outlives the call (they restart on the next photo)
    return Result(without_tracks(packet), source, config.overlay, config.output.jsonl_decimals)


class Vision:
    """A configured pipeline (object detection, faces, recognition, style as the config says), opened once and
    used for many images, files and streams. Open it with :func:`open_pipeline`; a context manager (``close()``
    releases the models; safe twice). Models load on first use.

    Example::

        >>> import numpy as np, realtime
        >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
        ...     result = vision.predict(np.zeros((120, 160, 3), np.uint8))
        >>> result.frame_bgr.shape
        (120, 160, 3)
    """

    def __init__(self, config: Config):
        self.config = config
        self._video: "Pipeline | None" = None
        self._stills: "Pipeline | None" = None
        self._closed = False

    # -- pipelines (built on first use)
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Vision is closed; open another with realtime.open_pipeline()")

    def video_pipeline(self) -> "Pipeline":
        """The pipeline for videos and live sources (tracks and votes over frames), built on first use."""
        from realtime.build import build_pipeline

        self._check_open()
        if self._video is None:
            self._video = build_pipeline(self.config)
        return self._video

    def stills_pipeline(self) -> "Pipeline":
        """The pipeline for photos (:func:`stills_config`), built on first use."""
        from realtime.build import build_pipeline

        self._check_open()
        if self._stills is None:
            self._stills = build_pipeline(stills_config(self.config))
        return self._stills

    # -- photos
    def predict(self, image: np.ndarray | str | Path, source: str | None = None) -> Result:
        """Run the pipeline on one photo: a uint8 (H, W, 3) BGR array or an image file (EXIF orientation applied).
        The result is in the photo's own pixels and depends on nothing run before.

        Example::

            >>> import numpy as np, realtime
            >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
            ...     result = vision.predict(np.full((100, 200, 3), 127, np.uint8))
            >>> result.source is None, result.index, len(result.detections)
            (True, 0, 0)
        """
        from realtime.io.capture import as_image, read_image

        if isinstance(image, (str, Path)):
            frame = read_image(image)
            source = str(image) if source is None else source
        else:
            frame = as_image(image)
        return self._still(frame, source)

    def _still(self, frame: np.ndarray, source: str | None) -> Result:
        return predict_still(self.stills_pipeline(), frame, source, self.config)

    def predict_files(self, inputs: str | Path | Sequence[str | Path]) -> Iterator[Result]:
        """Results for every photo and video frame in ``inputs``: a file, a folder (its photos and videos, sorted by
        name), a glob (``"photos/*.jpg"``) or a list of these. Each photo is processed on its own
        (:meth:`predict`); each video frame by frame with tracks that start over for each video. A generator:
        missing inputs raise :class:`SourceError` before the first result.

        Example::

            >>> import cv2, numpy as np, realtime, tempfile, pathlib
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> for name, size in (("a.png", (40, 60)), ("b.jpg", (90, 50))):
            ...     _ = cv2.imwrite(str(folder / name), np.zeros((*size, 3), np.uint8))
            >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
            ...     shapes = [(pathlib.Path(r.source).name, r.frame_bgr.shape[:2])
            ...               for r in vision.predict_files(folder)]
            >>> shapes
            [('a.png', (40, 60)), ('b.jpg', (90, 50))]
        """
        from realtime.io.capture import expand_inputs

        return self._files(expand_inputs(inputs))

    def _files(self, paths: Sequence[Path]) -> Iterator[Result]:
        from realtime.io.capture import is_image, read_image

        for path in paths:
            if is_image(path):
                yield self._still(read_image(path), str(path))
            else:
                yield from self.stream(path, name=str(path))

    # -- videos and live sources
    def stream(self, source: str | int | Path, max_frames: int | None = None,
               name: str | None = None) -> Iterator[Result]:
        """Results frame by frame from a video file, a camera (``0``), a stream URL (rtsp/http), or a photo folder
        or glob (those as :meth:`predict_files`). Live sources give the newest frame (frames that arrive while the
        pipeline is busy are dropped), files every frame. A generator: leaving the loop early (``break``) or
        ``close()`` stops the capture thread and the stage workers; tracks start over for each stream.
        ``max_frames``: stop after that many results. ``name``: the ``source`` the results carry (default: the
        source as given). A source that fails mid-way raises :class:`SourceError` after the frames before it.

        Example::

            >>> import realtime
            >>> with realtime.open_pipeline() as vision:                      # doctest: +SKIP
            ...     for result in vision.stream("street.mp4", max_frames=100):
            ...         print(result.index, len(result.detections))
        """
        from realtime.io.capture import expand_inputs, is_image

        text = str(source)
        path = Path(text).expanduser()
        if is_image(path) or path.is_dir() or (not path.exists() and any(ch in text for ch in "*?[")):
            results = self._files(expand_inputs(text))
            return results if max_frames is None else _limited(results, max_frames)
        return self._stream(text, max_frames, text if name is None else name)

    def _stream(self, uri: str, max_frames: int | None, name: str) -> Iterator[Result]:
        from realtime.io.capture import open_source

        src = open_source(self.config.source, uri)  # a missing file or bad URI raises here; the thread starts later
        return _frames(src, self.video_pipeline(), max_frames, name, self.config)

    def close(self) -> None:
        """Release every model and worker thread; safe twice."""
        if self._closed:
            return
        self._closed = True
        for pipeline in (self._video, self._stills):
            if pipeline is not None:
                pipeline.close()
        self._video = self._stills = None

    def __enter__(self) -> "Vision":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _limited(results: Generator[Result, None, None], max_frames: int) -> Iterator[Result]:
    try:
        for count, result in enumerate(results):
            if count >= max_frames:
                return
            yield result
    finally:
        results.close()  # releases a video's source


def _frames(source, pipeline: "Pipeline", max_frames: int | None, name: str, config: Config) -> Iterator[Result]:
    """The run loop's frame flow as a generator: packets from ``source`` (started on the first ``next``) through
    ``pipeline`` (its stateful stages reset first), in capture order, up to ``pipeline.in_flight`` frames
    overlapping for files (one for live sources). A source error (a damaged file, a stream that gave up) is raised
    after the frames read before it; so is a file that ends before the frame count its header announces. Closing
    the generator waits for frames in flight, stops the pipeline's workers and closes the source."""
    from realtime.errors import SourceError
    from realtime.io.capture import VideoFileReader

    pipeline.reset()
    live = source.policy == "latest"
    depth = (pipeline.live_in_flight if live else pipeline.in_flight) if pipeline.pipelined else 1
    pending: collections.deque = collections.deque()
    done = 0
    ended = False
    error: SourceError | None = None
    try:
        source.start()
        while max_frames is None or done < max_frames:
            room = len(pending) < depth and (max_frames is None or done + len(pending) < max_frames)
            if not ended and room and (not pending or source.frame_ready()):
                try:
                    packet = source.next_packet()
                except SourceError as exc:  # finish the frames already read, then say what happened
                    error, packet = exc, None
                if packet is None:
                    ended = True
                else:
                    pending.append(pipeline.start(packet, overlap=depth > 1))
                continue
            if not pending:
                reader = source.reader
                if error is None and isinstance(reader, VideoFileReader) and reader.expected_frames and \
                        source.stats.read < reader.expected_frames:
                    error = SourceError(f"{reader.description}: ended at frame {source.stats.read} of the "
                                        f"{reader.expected_frames} its header announces (truncated or damaged file)")
                if error is not None:
                    raise error
                return
            packet = pipeline.complete(pending.popleft())
            done += 1
            yield Result(packet, name, config.overlay, config.output.jsonl_decimals)
    finally:
        for item in pending:
            item.wait()
        pipeline.close_pool()
        source.close()


def open_pipeline(config: Config | str | Path | None = None,
                  overrides: Mapping[str, Any] | Sequence[str] | None = None) -> Vision:
    """Open the pipeline that ``config`` describes (a :class:`realtime.config.Config`, a YAML file, or None for the
    built-in defaults) with ``overrides`` (dotted keys to values, e.g. ``{"faces.recognize": False}``). Models load
    on first use; use it as a context manager or call ``close()``.

    Example::

        >>> import numpy as np, realtime
        >>> with realtime.open_pipeline(overrides={"detector.score_threshold": 0.4}) as vision:
        ...     vision.config.detector.score_threshold
        0.4
    """
    return Vision(resolve_config(config, overrides))


def open_gallery(path: str | Path | None = None, config: Config | str | Path | None = None,
                 overrides: Mapping[str, Any] | Sequence[str] | None = None):
    """The face gallery at ``path`` (default: ``faces.gallery`` of ``config``) as a
    :class:`realtime.face.enroll.Gallery`: ``enroll(name, images)``, ``identify(image)``, ``names()``,
    ``remove(name)``. Nothing is created until the first enrolment.

    Example::

        >>> import realtime, tempfile, os
        >>> gallery = realtime.open_gallery(os.path.join(tempfile.mkdtemp(), "people.sqlite"))
        >>> gallery.names(), gallery.path.name
        ([], 'people.sqlite')
    """
    from realtime.face.enroll import Gallery

    resolved = resolve_config(config, overrides)
    if path is not None:
        resolved = dataclasses.replace(resolved, faces=dataclasses.replace(resolved.faces, gallery=str(path)))
    return Gallery(resolved)


def open_faces(config: Config | str | Path | None = None,
               overrides: Mapping[str, Any] | Sequence[str] | None = None):
    """Face detection, descriptors and 1:1 verification on photos (:class:`realtime.face.describe.FaceModels`:
    ``describe(image)``, ``verify(image1, image2)``), from ``config`` and ``overrides``; models load on first use.

    Example::

        >>> import realtime
        >>> with realtime.open_faces() as faces:
        ...     round(faces.match_threshold, 2)
        0.6
    """
    from realtime.face.describe import FaceModels

    return FaceModels(resolve_config(config, overrides))
