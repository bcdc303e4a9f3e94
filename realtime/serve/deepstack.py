"""DeepStack / CodeProject.AI Server compatible routes (``/v1/vision/...``): multipart form field ``image``, form
fields ``userid``, ``min_confidence``, ``api_key``/``admin_key``; answers
``{"success": true, "predictions": [{"label" | "userid", "confidence", "x_min", "y_min", "x_max", "y_max"}]}``
with integer pixel boxes, and ``{"success": false, "error": "...", "code": STATUS}`` with an HTTP error status.

``userid`` is decided by rtv's open-set rule (threshold, margin over the second person and the stranger cohort):
"unknown" otherwise, with confidence 0. A named face's ``confidence`` is ``1 - distance / (2 * threshold)``
(above 0.5); ``min_confidence`` can only make naming stricter. Detection labels are the COCO names of the model's
contract (``person``, ``traffic light``, ``dining table``, ...).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from realtime.serve.deps import form_image, form_images, number, read_form, require, services, who_name

router = APIRouter(prefix="/v1/vision", tags=["DeepStack compatible"])

DEFAULT_FACE_CONFIDENCE = 0.4   # DeepStack's default for face detection
DEFAULT_RECOGNIZE_CONFIDENCE = 0.0  # rtv's own rule decides; a client may ask for more


def _box(b) -> dict[str, int]:
    x1, y1, x2, y2 = b
    return {"x_min": int(round(x1)), "y_min": int(round(y1)), "x_max": int(round(x2)), "y_max": int(round(y2))}


def _ok(started: float, **body):
    return {"success": True, **body, "duration": 0, "inferenceMs": int((time.perf_counter() - started) * 1000),
            "code": 200}


@router.post("/detection")
async def detection(request: Request):
    """COCO objects: ``predictions`` of ``label``, ``confidence`` and the box."""
    started = time.perf_counter()
    form = await read_form(request)
    require(request, form, admin=False)
    engine = services(request).engine
    image = await form_image(request, form)
    floor = number(form, "min_confidence", engine.default_object_confidence)
    hits = await run_in_threadpool(engine.detect_objects, image, floor)
    return _ok(started, predictions=[{"label": h.label, "confidence": round(h.confidence, 4), **_box(h.box_xyxy)}
                                     for h in hits])


@router.post("/face")
async def face(request: Request):
    """Face detection: ``predictions`` of ``confidence`` and the box."""
    started = time.perf_counter()
    form = await read_form(request)
    require(request, form, admin=False)
    image = await form_image(request, form)
    floor = number(form, "min_confidence", DEFAULT_FACE_CONFIDENCE)
    hits = await run_in_threadpool(services(request).engine.detect_faces, image, floor)
    return _ok(started, predictions=[{"confidence": round(h.confidence, 4), **_box(h.box_xyxy)} for h in hits])


@router.post("/face/recognize")
async def recognize(request: Request):
    """Every face with ``userid`` (a registered name or "unknown") and ``confidence``."""
    started = time.perf_counter()
    form = await read_form(request)
    require(request, form, admin=False)
    image = await form_image(request, form)
    floor = number(form, "min_confidence", DEFAULT_RECOGNIZE_CONFIDENCE)
    hits = await run_in_threadpool(services(request).engine.recognize, image)
    predictions = []
    for h in hits:
        named = h.identity is not None and h.match_confidence >= floor
        predictions.append({"userid": h.identity if named else "unknown",
                            "confidence": round(h.match_confidence, 4) if named else 0,
                            **_box(h.box_xyxy)})
    return _ok(started, predictions=predictions)


@router.post("/face/register")
async def register(request: Request):
    """Register the face of each uploaded photo (fields ``image``, ``image1``...) under ``userid``."""
    started = time.perf_counter()
    form = await read_form(request)
    who = require(request, form, admin=True)
    userid = form.get("userid")
    if not isinstance(userid, str) or not userid.strip():
        from realtime.serve.uploads import UploadError

        raise UploadError(400, "user id not specified")
    images = await form_images(request, form)
    svc = services(request)
    outcome = await run_in_threadpool(svc.engine.enroll, userid, images)
    svc.admin_log.record(who_name(who), "enrol", person=outcome.name, via="deepstack",
                         detail={"photos": len(outcome.accepted), "refused": len(outcome.refused)})
    return _ok(started, message="face added", predictions={"message": "face added"},
               stored=outcome.stored, refused=[{"image": s, "reason": r} for s, r in outcome.refused])


@router.post("/face/list")
async def face_list(request: Request):
    """Registered names: ``{"success": true, "faces": [...]}``."""
    started = time.perf_counter()
    form = await read_form(request)
    require(request, form, admin=True)
    names = await run_in_threadpool(services(request).engine.names)
    return _ok(started, faces=names)


@router.post("/face/delete")
async def face_delete(request: Request):
    """Delete ``userid`` and every face registered for it."""
    started = time.perf_counter()
    form = await read_form(request)
    who = require(request, form, admin=True)
    userid = form.get("userid")
    if not isinstance(userid, str) or not userid:
        from realtime.serve.uploads import UploadError

        raise UploadError(400, "user id not specified")
    svc = services(request)
    removed = await run_in_threadpool(svc.engine.remove, userid)
    svc.admin_log.record(who_name(who), "remove", person=userid, via="deepstack", detail={"embeddings": removed})
    return _ok(started, message="user deleted successfully")


@router.post("/face/match")
async def face_match(request: Request):
    """1:1: ``similarity`` of the largest faces of ``image1`` and ``image2`` (the confidence mapping), plus rtv's
    ``distance`` and ``same_person`` (distance under the match threshold)."""
    started = time.perf_counter()
    form = await read_form(request)
    require(request, form, admin=False)
    a = await form_image(request, form, "image1")
    b = await form_image(request, form, "image2")
    engine = services(request).engine
    distance, similarity = await run_in_threadpool(engine.match, a, b)
    return _ok(started, similarity=round(similarity, 4), distance=round(distance, 4),
               same_person=distance < engine.match_threshold)
