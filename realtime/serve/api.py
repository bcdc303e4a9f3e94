"""rtv's native REST API under ``/api/v1`` (its OpenAPI schema at ``/openapi.json``).

Reads need a key or a session (or nothing while no key exists and the service runs with open reads); writes need an
admin key, or an administrator's session plus the ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from realtime.serve.deps import (capture_and_enrol, form_image, form_images, json_ready, number, read_form,
                                 require, services, who_name)

router = APIRouter(prefix="/api/v1", tags=["rtv"])


def _box(box_xyxy) -> list:
    """Boxes as everywhere in rtv's JSON (:func:`realtime.serialize.box_json`)."""
    from realtime.serialize import box_json

    return box_json(box_xyxy)


def _face(h) -> dict:
    return {"box": _box(h.box_xyxy), "score": round(h.confidence, 4), "identity": h.identity,
            "distance": json_ready(round(h.distance, 4)), "second_distance": json_ready(round(h.second_distance, 4)),
            "confidence": round(h.match_confidence, 4)}


def _schema() -> int:
    from realtime.serialize import SCHEMA_VERSION

    return SCHEMA_VERSION


@router.get("/health")
async def health(request: Request):
    """Liveness: always answers while the process serves (no authentication)."""
    engine = services(request).engine
    return {"status": "ok", "detector": engine.has_detector, "match_threshold": engine.match_threshold}


@router.post("/detect")
async def detect(request: Request):
    """COCO objects of the uploaded ``image`` (score at least ``min_confidence``, default the configured one)."""
    form = await read_form(request)
    require(request, form, admin=False)
    engine = services(request).engine
    image = await form_image(request, form)
    floor = number(form, "min_confidence", engine.default_object_confidence)
    hits = await run_in_threadpool(engine.detect_objects, image, floor)
    return {"schema_version": _schema(), "objects": [{"label": h.label, "score": round(h.confidence, 4),
                                                      "box": _box(h.box_xyxy)} for h in hits]}


@router.post("/faces")
async def faces(request: Request):
    """Face boxes and detector scores of ``image``."""
    form = await read_form(request)
    require(request, form, admin=False)
    image = await form_image(request, form)
    hits = await run_in_threadpool(services(request).engine.detect_faces, image, 0.0)
    return {"schema_version": _schema(),
            "faces": [{"box": _box(h.box_xyxy), "score": round(h.confidence, 4)} for h in hits]}


@router.post("/identify")
async def identify(request: Request):
    """1:K: every face of ``image`` with its identity (null: unknown), distances and confidence."""
    form = await read_form(request)
    require(request, form, admin=False)
    image = await form_image(request, form)
    engine = services(request).engine
    hits = await run_in_threadpool(engine.recognize, image)
    return {"schema_version": _schema(), "threshold": engine.match_threshold, "margin": engine.match_margin,
            "faces": [_face(h) for h in hits]}


@router.get("/persons")
async def persons(request: Request):
    """Everyone enrolled: name, embeddings, access, schedule."""
    require(request, admin=False)
    people = await run_in_threadpool(services(request).engine.persons)
    return {"persons": [p.__dict__ for p in people]}


@router.post("/persons/{name}/photos")
async def enrol(name: str, request: Request):
    """Enrol ``name`` from the uploaded photos (fields ``image...``) with the quality gates; ``replace=true``
    replaces the stored faces."""
    form = await read_form(request)
    who = require(request, form, admin=True)
    images = await form_images(request, form)
    svc = services(request)
    replace = str(form.get("replace", "")).lower() in ("1", "true", "yes", "on")
    outcome = await run_in_threadpool(lambda: svc.engine.enroll(name, images, replace=replace))
    svc.admin_log.record(who_name(who), "enrol", person=outcome.name, via="api",
                         detail={"photos": len(outcome.accepted), "refused": len(outcome.refused)})
    return {"name": outcome.name, "stored": outcome.stored, "accepted": list(outcome.accepted),
            "refused": [{"image": s, "reason": r} for s, r in outcome.refused],
            "look_alikes": [{"person": p, "distance": round(d, 4)} for p, d in outcome.look_alikes]}


@router.post("/persons/{name}/capture")
async def enrol_from_door(name: str, request: Request, door: str = "", shots: int = 3):
    """Enrol ``name`` from ``shots`` frames of a running door's camera that pass the quality gates (within 20 s)."""
    who = require(request, admin=True)
    svc = services(request)
    outcome = await run_in_threadpool(capture_and_enrol, svc, name, door, max(1, min(int(shots), 10)))
    svc.admin_log.record(who_name(who), "enrol", person=outcome.name, via="api",
                         detail={"photos": len(outcome.accepted), "from_door": door})
    return {"name": outcome.name, "stored": outcome.stored, "accepted": list(outcome.accepted),
            "look_alikes": [{"person": p, "distance": round(d, 4)} for p, d in outcome.look_alikes]}


@router.delete("/persons/{name}")
async def remove(name: str, request: Request):
    """Remove a person: the next frame of a running door no longer knows them."""
    who = require(request, admin=True)
    svc = services(request)
    removed = await run_in_threadpool(svc.engine.remove, name)
    svc.admin_log.record(who_name(who), "remove", person=name, via="api", detail={"embeddings": removed})
    return {"removed": name, "embeddings": removed}


@router.put("/persons/{name}/access")
async def access(name: str, request: Request):
    """JSON ``{"allowed": bool, "schedule": [...] or null}``: allow or deny at the doors."""
    who = require(request, admin=True)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("allowed"), bool):
        return JSONResponse({"success": False, "error": 'send JSON {"allowed": true|false, "schedule": [...]}',
                             "code": 400}, status_code=400)
    svc = services(request)
    await run_in_threadpool(svc.engine.set_access, name, body["allowed"], body.get("schedule"))
    svc.admin_log.record(who_name(who), "allow" if body["allowed"] else "deny", person=name, via="api",
                         detail={"schedule": body.get("schedule")})
    return {"name": name, "allowed": body["allowed"], "schedule": body.get("schedule")}


@router.get("/audit")
async def audit(request: Request, kind: str = "", person: str = "", limit: int = 200):
    """Latest audit records first (kind, person filters; at most ``limit``, up to 5000)."""
    require(request, admin=True)
    rows = await run_in_threadpool(services(request).admin_log.records, kind or None, person or None,
                                   max(1, min(int(limit), 5000)))
    return {"records": rows}


@router.get("/audit/verify")
async def audit_verify(request: Request):
    """Walk the hash chain: ``{"ok": bool, "detail": "..."}``."""
    require(request, admin=True)
    ok, detail = await run_in_threadpool(services(request).admin_log.verify)
    return {"ok": ok, "detail": detail}


@router.get("/audit/head")
async def audit_head(request: Request):
    """``SEQ:HASH`` of the last record of the service's own log, after verifying every log: keep it elsewhere and
    compare later."""
    require(request, admin=True)
    log = services(request).admin_log
    ok, detail = await run_in_threadpool(log.verify)
    if not ok:
        return JSONResponse({"success": False, "error": f"a log does not verify: {detail}", "code": 409},
                            status_code=409)
    head = await run_in_threadpool(log.head)
    if head is None:
        return JSONResponse({"success": False, "error": "no audit records yet", "code": 404}, status_code=404)
    return {"head": head}


@router.get("/audit/{log_name}/{seq}/face.jpg")
async def audit_face(log_name: str, seq: int, request: Request):
    """The face snapshot stored with a decision (only with ``door.store_faces``; 404 otherwise)."""
    require(request, admin=True)
    jpeg = await run_in_threadpool(services(request).admin_log.face_jpeg, log_name, seq)
    if not jpeg:
        return JSONResponse({"success": False, "error": f"no face image with record {log_name} #{seq}",
                             "code": 404}, status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/audit.csv")
async def audit_csv(request: Request):
    """The whole audit log as CSV (formula-like cells quoted for spreadsheets)."""
    require(request, admin=True)
    folder = tempfile.mkdtemp(prefix="rtv-audit-")
    path = Path(folder) / "audit.csv"
    await run_in_threadpool(services(request).admin_log.export_csv, path)

    def cleanup():
        path.unlink(missing_ok=True)
        Path(folder).rmdir()

    return FileResponse(path, media_type="text/csv", filename="audit.csv", background=BackgroundTask(cleanup))


@router.get("/doors")
async def doors(request: Request):
    """Each running door: id, state, frames, last decisions."""
    require(request, admin=False)
    runner = services(request).doors
    return {"doors": [] if runner is None else runner.status()}


@router.get("/doors/{door_id}/snapshot.jpg")
async def snapshot(door_id: str, request: Request):
    """The door's latest frame as JPEG (404 before the first frame)."""
    require(request, admin=False)
    runner = services(request).doors
    jpeg = None if runner is None else runner.snapshot(door_id)
    if jpeg is None:
        return JSONResponse({"success": False, "error": f"no frame from door {door_id!r} yet", "code": 404},
                            status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
