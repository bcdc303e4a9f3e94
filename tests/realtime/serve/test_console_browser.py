"""The console in a real headless Chromium (Debian's chromium driven by Playwright): sign in, enrol a person by
upload, see them granted at a door running on a file source, revoke them and see the next decision become DENY,
read the audit log. Screenshots of each page go to $RTV_SERVE_SHOTS (default: the test's temporary folder)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import DOOR_SETTINGS, ServeProcess, _photo_arrays, enrol_in_process, write_door_video

pytestmark = pytest.mark.slow
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "a long enough password"


def _latest_decision(page, person: str, decision: str, timeout_s: float = 120.0) -> None:
    """Reload the dashboard until the newest decision about ``person`` is ``decision``."""
    deadline = time.monotonic() + timeout_s
    seen = ""
    while time.monotonic() < deadline:
        page.goto(page.url)
        items = page.locator("ul.decisions li").all_inner_texts()
        about = [t for t in items if person in t]
        if about and decision in about[0].split():
            return
        seen = " | ".join(items[:4])
        time.sleep(1.0)
    raise AssertionError(f"no {decision} for {person} within {timeout_s} s; the dashboard shows: {seen}")


def test_sign_in_enrol_grant_revoke_deny_audit(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    import cv2

    shots = Path(os.environ.get("RTV_SERVE_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    photos = _photo_arrays()
    enrol_in_process(tmp_path / "gallery.sqlite", "cameraman", photos["cameraman"])
    video = write_door_video(tmp_path / "door.mp4")
    upload = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(upload), photos["astronaut"])
    server = ServeProcess(tmp_path, extra_args=["--door", f"front={video}", "--door-loop"],
                          extra_settings=DOOR_SETTINGS + ["door.store_faces=true"], users=[("admin", PASSWORD)])
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url + "/console/")
            assert page.url.endswith("/console/login")
            page.screenshot(path=str(shots / "1-sign-in.png"))
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("#sign-in")
            page.wait_for_url("**/console/")
            page.locator("#door-front img.snapshot").wait_for()
            _latest_decision(page, "unknown", "DENY")
            page.screenshot(path=str(shots / "2-doors-unknown-denied.png"))

            page.goto(server.url + "/console/enrol")
            page.fill("input[name=name]", "astronaut")
            page.set_input_files("input[name=photos]", str(upload))
            page.click("#enrol")
            page.locator("#result").wait_for()
            assert "Enrolled astronaut" in page.inner_text("#result")
            page.screenshot(path=str(shots / "3-enrolled.png"))

            page.goto(server.url + "/console/")
            _latest_decision(page, "astronaut", "GRANT")
            face = page.locator("ul.decisions li.decision-GRANT img.face").first
            face.wait_for()  # the face snapshot stored with the decision (door.store_faces)
            assert page.evaluate("img => img.complete && img.naturalWidth > 0", face.element_handle())
            page.screenshot(path=str(shots / "4-doors-granted.png"))

            page.goto(server.url + "/console/gallery")
            row = page.locator("tr[data-name=astronaut]")
            row.locator("button.toggle").click()
            page.wait_for_url("**/console/gallery")
            assert page.locator("tr[data-name=astronaut] td.access").inner_text().startswith("denied")
            page.screenshot(path=str(shots / "5-gallery-revoked.png"))

            page.goto(server.url + "/console/")
            _latest_decision(page, "astronaut", "DENY")
            page.screenshot(path=str(shots / "6-doors-denied-after-revoke.png"))

            page.goto(server.url + "/console/audit")
            assert "Chain verified" in page.inner_text("#verify")
            text = page.inner_text("#records")
            assert "enrol by session:admin" in text and "deny by session:admin" in text and "GRANT" in text
            page.screenshot(path=str(shots / "7-audit-log.png"), full_page=True)
            page.select_option("select[name=kind]", "admin")
            page.click("form.filters button")
            assert set(page.locator("#records tbody td:nth-child(4)").all_inner_texts()) == {"admin"}
            page.set_viewport_size({"width": 390, "height": 800})  # a phone
            page.goto(server.url + "/console/")
            page.screenshot(path=str(shots / "8-doors-phone.png"))
            assert not [e for e in errors if "Content Security Policy" in e], errors
            browser.close()
    finally:
        server.stop()
