"""The OpenCV window and its keys. Stays on the main thread."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from realtime.errors import SinkError



# Qt platforms that draw without a display server.
_HEADLESS_QT = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb")


def require_display(environ=None, platform: str | None = None) -> None:
    """:class:`SinkError` (exit 6) when a window cannot open here: on Linux and the BSDs OpenCV's Qt needs
    ``DISPLAY`` (X11) or ``WAYLAND_DISPLAY``, and without either it aborts the process (exit 134) instead of
    raising. Checked before any work; ``QT_QPA_PLATFORM=offscreen`` counts as a display."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return
    if env.get("QT_QPA_PLATFORM", "").split(":")[0] in _HEADLESS_QT:
        return
    raise SinkError("no display to open a window on (DISPLAY and WAYLAND_DISPLAY are unset); run with "
                    "--no-window (add --out FILE.mp4 to record the view)")


class Window:
    """A resizable OpenCV window. ``show`` returns the key pressed (or -1). ``close()`` twice is safe."""

    def __init__(self, title: str = "rtv"):
        require_display()
        self.title = title
        self._sized = False
        fonts = Path("/usr/share/fonts")
        if fonts.is_dir():  # OpenCV's Qt looks for fonts inside the wheel, which ships none
            os.environ.setdefault("QT_QPA_FONTDIR", str(fonts))
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise SinkError(f"cannot open a window ({exc.msg.strip() if hasattr(exc, 'msg') else exc}); "
                            "is a display available? use --no-window") from exc
        self._open = True

    def show(self, image_bgr: np.ndarray, wait_ms: int = 1) -> int:
        if not self._sized:
            cv2.resizeWindow(self.title, image_bgr.shape[1], image_bgr.shape[0])
            self._sized = True
        cv2.imshow(self.title, image_bgr)
        return cv2.waitKey(wait_ms) & 0xFF

    def wait_key(self, wait_ms: int = 30) -> int:
        return cv2.waitKey(wait_ms) & 0xFF

    def closed_by_user(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
