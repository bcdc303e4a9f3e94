"""Door mode: the face pipeline plus the door policy, the audit log, the unlock hook and alarms.

Order per frame: the gallery watch (changes since the last frame: new embeddings, or an alarm) -> detect faces ->
recognise (tracked, embedded every ``door.reembed_every`` frames, with the door's threshold and margin) ->
:class:`DoorPolicy` -> for each new decision: audit record committed, *then* the hook (GRANT only) -> outputs. Hook
outcomes come back from the worker thread and are logged on the main thread.

Fail secure: the gallery missing, unreadable or holding an invalid name at start, a model that fails, or a source
that cannot be opened -> an alarm record, the reason on screen, and the run ends with the matching error (and a stop
record). Mid-run, a gallery that disappears, is replaced or cannot be read is an alarm and no GRANT until it reads
again (:mod:`realtime.door.live_gallery`); a lost camera is an alarm, the door stays locked and the camera is
reopened until it is back or ``door.max_camera_down_s`` runs out (:mod:`realtime.door.camera`). Every run that
opened the audit log ends with a stop record saying how it ended. There is no liveness check; door mode says so at
start, on screen and in every record.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from realtime.config import Config
from realtime.door.audit import AuditLog, load_key
from realtime.door.camera import ResilientSource
from realtime.door.calibrate import calibration_path, choose_threshold, gallery_fingerprint, load_calibration
from realtime.door.hook import FAILED, TIMED_OUT, HookJob, HookResult, UnlockHook, check_hook
from realtime.door.events import DENY, GRANT, DoorAlarm, DoorDecision, DoorRecovery
from realtime.door.live_gallery import GalleryWatch, LiveGallery
from realtime.door.policy import DoorPolicy, DoorRules
from realtime.errors import AuditError, GalleryError, ModelError, RtvError, SourceError
from realtime.face.recognition import FaceRecognition
from realtime.pipeline import Pipeline
from realtime.types import RunResult
from realtime.types import EndReason
from realtime.types import FramePacket

log = logging.getLogger(__name__)

NO_LIVENESS = "NO LIVENESS CHECK: a photo or screen of an enrolled person is accepted like the person"


@dataclass
class DoorOutcome:
    """How door mode ended, what it decided, and the threshold it used."""

    result: RunResult
    summary: dict[str, Any]
    threshold: float
    threshold_text: str
    grants: list[str] = field(default_factory=list)
    denies: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    hook_results: list[HookResult] = field(default_factory=list)


def door_rules(config: Config, threshold: float) -> DoorRules:
    d = config.door
    return DoorRules(min_frames=d.min_frames, window_frames=d.window_frames, majority=d.majority,
                     min_face_px=d.min_face_px, min_sharpness=d.min_sharpness, max_yaw=d.max_yaw,
                     max_roll_deg=d.max_roll_deg, match_threshold=threshold, match_margin=d.match_margin,
                     deny_threshold=d.deny_threshold, cooldown_s=d.cooldown_s, track_cooldown_s=d.track_cooldown_s)


def door_faces_config(config: Config, threshold: float):
    """The faces section door mode runs with: recognition on, the door's threshold, margin and re-embedding."""
    return dataclasses.replace(config.faces, enabled=True, recognize=True, match_threshold=threshold,
                               match_margin=config.door.match_margin, reembed_every=config.door.reembed_every)


def resolve_threshold(config: Config) -> tuple[float, str, str]:
    """``(threshold, sentence saying which, embedder sha256)``; :class:`GalleryError` when the gallery is missing
    or unreadable (fail secure: door mode never runs on an empty gallery)."""
    from realtime.build import model_path
    from realtime.gallery.store import Gallery
    from realtime.runtime import file_sha256

    gallery_path = Path(config.faces.gallery)
    if not gallery_path.is_file():
        raise GalleryError(f"door mode needs an enrolled gallery, and there is none at {gallery_path}; enrol with "
                           "'rtv enroll NAME PHOTO' (or set faces.gallery)")
    sha = file_sha256(model_path(config.faces.embedder_model, "face_embedder"))
    with Gallery.open(gallery_path, create=False) as gallery:
        vectors, labels = gallery.vectors()
    if len(labels) == 0:
        raise GalleryError(f"gallery {gallery_path} has nobody enrolled; door mode would deny everyone. Enrol "
                           "with 'rtv enroll NAME PHOTO'")
    calibration = load_calibration(calibration_path(gallery_path))
    threshold, text = choose_threshold(config.door.match_threshold, config.door.use_calibration, calibration, sha,
                                       gallery_fingerprint(vectors, labels))
    return threshold, text, sha


class AuditSink:
    """The door's sink: each new decision or alarm in the packet is committed to the audit log (then, for a GRANT,
    handed to the hook); hook outcomes are logged as they come back. Counts what happened in the outcome."""

    needs_display = False

    def __init__(self, config: Config, audit: AuditLog, hook: UnlockHook, outcome: DoorOutcome, sha: str,
                 echo: Callable[[str], None]) -> None:
        self.config = config
        self.audit = audit
        self.hook = hook
        self.outcome = outcome
        self.sha = sha
        self.echo = echo
        self.last_packet: FramePacket | None = None

    def write(self, packet: FramePacket, display_bgr: np.ndarray | None) -> None:
        self.last_packet = packet
        self.audit.watch()  # the log on disk must still be ours (swapped/altered: AuditError, nothing granted)
        for item in packet.decisions:
            if isinstance(item, DoorAlarm) and item.new:
                self.alarm(item.kind, item.reason)
            elif isinstance(item, DoorRecovery) and item.new:
                self.recovery(item.kind, item.reason)
            elif isinstance(item, DoorDecision) and item.new and item.verdict in (GRANT, DENY):
                self.decision(packet, item)
        self.log_hook_results(self.hook.poll())

    def finish(self, result: RunResult) -> None:
        pass

    def close(self) -> None:
        pass

    def decision(self, packet: FramePacket, d: DoorDecision) -> None:
        door = self.config.door
        face = _face_jpeg(packet.frame_bgr, d.box_xyxy) if door.store_faces else None
        seq = self.audit.append("decision", door.door_id, d.reason, decision=d.verdict, person=d.person,
                                track_id=d.track_id, distance=d.distance, margin=d.margin,
                                frames_used=d.frames_used, threshold=d.threshold, model_sha256=self.sha,
                                detail={"frame": packet.index, "frames_agreeing": d.frames_agreeing},
                                face_jpeg=face)
        who = d.person or "unknown"
        self.echo(f"{d.verdict} {who} ({d.reason}; {d.frames_agreeing}/{d.frames_used} frames, audit #{seq})")
        if d.verdict == GRANT:
            self.outcome.grants.append(who)
            self.hook.submit(HookJob(who, door.door_id, seq))  # only after the record is committed
        else:
            self.outcome.denies.append(who)

    def alarm(self, kind: str, reason: str) -> None:
        self.outcome.alarms.append(f"{kind}: {reason}")
        self.echo(f"ALARM {kind}: {reason}")
        self.audit.append("alarm", self.config.door.door_id, reason, model_sha256=self.sha,
                          detail={"alarm": kind})

    def recovery(self, kind: str, reason: str) -> None:
        self.echo(f"RECOVERED {kind}: {reason}")
        self.audit.append("recovery", self.config.door.door_id, reason, model_sha256=self.sha,
                          detail={"alarm": kind})

    def log_hook_results(self, results: list[HookResult]) -> None:
        for r in results:
            self.outcome.hook_results.append(r)
            reason = "unlock hook ok" if r.ok else (
                "unlock hook FAILED" if r.status in (FAILED, TIMED_OUT) else f"unlock hook {r.status}")
            if not r.ok:
                self.echo(f"{reason} for {r.job.person} (audit #{r.job.audit_seq}): {r.detail}")
            self.audit.append("hook", r.job.door_id, reason, person=r.job.person, model_sha256=self.sha,
                              detail={"grant_seq": r.job.audit_seq, "action": r.action, "ok": r.ok,
                                      "status": r.status, "result": r.detail, "seconds": round(r.seconds, 3)})


def run_door(config: Config, source_uri: str | None = None, show_window: bool = True,
             max_frames: int | None = None, out_jsonl: Path | None = None, source=None,
             out_video: Path | None = None,
             now: Callable[[], datetime] = datetime.now,
             echo: Callable[[str], None] | None = None) -> DoorOutcome:
    """Run door mode until the source ends, ``max_frames``, a key (q/Esc), a signal or a fatal alarm.

    ``out_video``: also record the annotated door view (decisions, notice) there, as ``rtv annotate`` records.
    ``source``: an already-made (not started) :class:`realtime.io.capture.Source` (tests script one); else opened
    from ``source_uri``/config. ``now``: local wall-clock time for access windows. ``echo``: where the one-line
    status messages go (default stderr). Raises the alarm's error (:class:`GalleryError`, :class:`ModelError`,
    :class:`SourceError` when the source cannot be opened) after logging it; a source lost for good (a damaged
    file, or a camera down longer than ``door.max_camera_down_s``) ends the run with ``result.reason == "error"``.
    Whatever the ending, once the audit log is open a stop record is written.
    """
    from realtime.build import build_pipeline
    from realtime.io.capture import open_source

    echo = echo or (lambda text: print(f"door: {text}", file=sys.stderr))
    door = config.door
    check_hook(door.hook_command, door.hook_url, door.hook_timeout_s)
    key = load_key(door.audit_key_file) if door.audit_key_file else None
    with AuditLog.open(door.audit, key=key) as audit:
        outcome = DoorOutcome(RunResult(0, EndReason.ERROR), {}, float("nan"), "")
        hook = UnlockHook(door.hook_command, door.hook_url, door.hook_timeout_s)
        outputs = AuditSink(config, audit, hook, outcome, "", echo)
        live: LiveGallery | None = None
        failure: BaseException | None = None
        try:
            try:
                threshold, text, sha = resolve_threshold(config)
                outputs.sha = sha
                live = LiveGallery(config.faces.gallery, sha)
                live.open()
                rules = door_rules(config, threshold)
                run_config = dataclasses.replace(config, faces=door_faces_config(config, threshold),
                                                 detector=dataclasses.replace(config.detector, enabled=False))
                pipeline = build_pipeline(run_config)
            except GalleryError as exc:
                outputs.alarm("gallery", str(exc))
                raise
            except ModelError as exc:
                outputs.alarm("model", str(exc))
                raise
            outcome.threshold, outcome.threshold_text = threshold, text
            echo(f"{door.door_id}: {text}")
            echo(NO_LIVENESS)
            audit.append("start", door.door_id, f"door mode started: {text}", threshold=threshold,
                         model_sha256=sha, detail={"hook": hook.action or None, "rules": dataclasses.asdict(rules),
                                                   "audit_mac": audit.meta.get("mac")})
            with pipeline:
                outcome.result = _run(config, pipeline, rules, live, source, source_uri, open_source, show_window,
                                      max_frames, out_jsonl, outputs, now, out_video)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            if live is not None:
                live.close()
            _stop(config, audit, hook, outputs, outcome, failure, show_window)
    return outcome


def _stop(config: Config, audit: AuditLog, hook: UnlockHook, outputs: AuditSink, outcome: DoorOutcome,
          failure: BaseException | None, show_window: bool) -> None:
    """Hook jobs still pending are logged as not run; a lost source is an alarm; then the stop record, whatever
    the ending (``outcome.result.reason``, or the error that is propagating)."""
    results = hook.close()
    try:
        outputs.log_hook_results(results)
        result = outcome.result
        if failure is None and result.reason == EndReason.ERROR:
            outputs.alarm("camera", f"camera/source lost: {result.error}")
            _show_alarm(config, outputs.last_packet, f"ALARM camera lost: {result.error}", show_window)
        if failure is None:
            reason = str(result.reason)
        elif isinstance(failure, KeyboardInterrupt):
            reason = str(EndReason.INTERRUPTED)
        else:
            reason = f"error: {type(failure).__name__}"
        audit.append("stop", config.door.door_id, f"door mode stopped ({reason})", model_sha256=outputs.sha,
                     detail={"frames": result.frames, "reason": reason,
                             "error": None if failure is None else str(failure)[:500]})
    except AuditError:
        if failure is None:
            raise
        log.debug("the stop record could not be written", exc_info=True)  # the original failure is reported


def _run(config, pipeline: Pipeline, rules: DoorRules, live: LiveGallery, source, source_uri, open_source,
         show_window, max_frames, out_jsonl, outputs: AuditSink, now,
         out_video: Path | None = None) -> RunResult:
    from contextlib import ExitStack

    from realtime.io.display import Window
    from realtime.io.jsonl_sink import JsonlSink
    from realtime.io.status_sinks import WindowSink
    from realtime.door.overlay import door_annotator
    from realtime.overlay import render
    from realtime.provenance import run_header
    from realtime.session import run_session

    recognizer = pipeline.find("recognize")
    if not isinstance(recognizer, FaceRecognition):
        raise ModelError("door mode needs the face recognition stage; check faces.enabled and faces.recognize")
    with ExitStack() as stack:
        door_pipeline = stack.enter_context(pipeline.extended(
            before=[GalleryWatch(live, recognizer)], after=[DoorPolicy(rules, live.access, now=now)]))
        inner = source if source is not None else open_source(config.source, source_uri)

        def camera_back(reason: str) -> None:
            recognizer.forget_tracks()  # tracks from before the outage never carry votes over it
            outputs.recovery("camera", reason)

        resilient = ResilientSource(inner, on_lost=lambda reason: outputs.alarm("camera", reason),
                                    on_back=camera_back, max_down_s=config.door.max_camera_down_s)
        try:
            stack.enter_context(resilient)
        except SourceError as exc:
            outputs.alarm("camera", f"source failed to open: {exc}")
            raise
        sinks: list = [outputs]
        if out_jsonl is not None:
            header = run_header(config, resilient.info, door_pipeline.stages)
            sinks.append(stack.enter_context(JsonlSink(out_jsonl, header=header)))
        if out_video is not None:  # the annotated view, as annotate records it (H.264 off the frame loop)
            from realtime.session import file_sinks, source_fps

            sinks.extend(file_sinks(stack, config, source_fps(resilient, config), out_video, None))
        if show_window:
            sinks.append(stack.enter_context(WindowSink(Window(f"rtv door {config.door.door_id}"))))

        def render_door(packet: FramePacket, show_overlays: bool) -> np.ndarray:
            # overlays always on (the notice stands even with nobody in view); the window adds the status bar
            return render(packet, None, config.overlay, True, extra=(door_annotator,))

        try:
            run = run_session(resilient, door_pipeline, sinks, config.overlay, max_frames, render=render_door)
        except RtvError as exc:
            if isinstance(exc, GalleryError):
                outputs.alarm("gallery", str(exc))
            elif not isinstance(exc, AuditError):  # an audit log that fails cannot take an alarm either
                outputs.alarm("model" if isinstance(exc, ModelError) else "error", str(exc))
            _show_alarm(config, outputs.last_packet, f"ALARM {exc}", show_window)
            raise
        except Exception as exc:  # noqa: BLE001 - an inference failure is an alarm, then a ModelError
            outputs.alarm("model", f"{type(exc).__name__}: {exc}")
            _show_alarm(config, outputs.last_packet, f"ALARM model error: {exc}", show_window)
            raise ModelError(f"door mode stopped: model error during a frame ({type(exc).__name__}: {exc}); "
                             "no GRANT was given") from exc
        outputs.outcome.summary = run.summary
        return run.result


def _show_alarm(config: Config, packet: FramePacket | None, text: str, show_window: bool) -> None:
    """Show the last frame (or a black one) with the alarm for ``door.alarm_display_s`` when there is a window."""
    if not show_window or config.door.alarm_display_s <= 0:
        return
    from realtime.io.display import Window
    from realtime.door.overlay import draw_alarm

    image = np.zeros((480, 640, 3), np.uint8) if packet is None else packet.frame_bgr.copy()
    draw_alarm(image, text, config.overlay)
    with Window(f"rtv door {config.door.door_id}") as window:
        window.show(image)
        window.wait_key(int(config.door.alarm_display_s * 1000))


def _face_jpeg(frame_bgr: np.ndarray, box_xyxy) -> bytes | None:
    h, w = frame_bgr.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box_xyxy)
    crop = frame_bgr[max(0, y1):min(h, y2), max(0, x1):min(w, x2)]
    if crop.size == 0:
        return None
    ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return data.tobytes() if ok else None
