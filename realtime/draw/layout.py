"""Where labels and panels go: inside the frame, never on a panel (status bar, legend, notices), never on
another label. Annotators ask :class:`Layout` for a place; what it placed is kept, so a test can read the
geometry instead of pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.draw.text import Rect


@dataclass
class PlacedLabel:
    text: str
    rect: Rect


@dataclass
class Layout:
    """The frame's ``width`` x ``height``, its ``panels`` (name -> rect) and the ``labels`` placed so far."""

    width: int
    height: int
    panels: dict[str, Rect] = field(default_factory=dict)
    labels: list[PlacedLabel] = field(default_factory=list)
    dropped: int = 0  # labels for which the frame had no free place

    def reserve(self, name: str, rect: Rect) -> None:
        self.panels[name] = rect

    def free(self, rect: Rect) -> bool:
        return rect.inside(self.width, self.height) and not any(rect.overlaps(p) for p in self.panels.values()) \
            and not any(rect.overlaps(p.rect) for p in self.labels)

    def place(self, text: str, size_wh: tuple[int, int], anchors: list[tuple[int, int]]) -> Rect | None:
        """A free rect of ``size_wh`` for ``text``: the first free of the ``anchors`` (top-left corners, in order
        of preference, each first pulled inside the frame), else the nearest free spot found by sliding the first
        anchor up and down, then sideways, in half-label steps (a few labels away at most). None when the frame has no room (the label is
        left out; its box is still drawn)."""
        w, h = size_wh
        if w > self.width or h > self.height:
            self.dropped += 1
            return None
        def clamp(x: int, y: int) -> Rect:
            x, y = min(max(0, x), self.width - w), min(max(0, y), self.height - h)
            return Rect(x, y, x + w, y + h)

        for x, y in anchors:
            rect = clamp(x, y)
            if self.free(rect):
                return self._keep(text, rect)
        x0, y0 = anchors[0]
        step_y, step_x = max(1, h // 2), max(1, w // 3)
        reach_y = min(self.height // step_y + 1, 12)  # stay near the box; past that, leave it out
        for k in range(1, reach_y):
            for dy in (k * step_y, -k * step_y):
                rect = clamp(x0, y0 + dy)
                if self.free(rect):
                    return self._keep(text, rect)
        for j in range(1, min(self.width // step_x, 6) + 1):
            for dx in (j * step_x, -j * step_x):
                for k in range(0, reach_y):
                    for dy in ((0,) if k == 0 else (k * step_y, -k * step_y)):
                        rect = clamp(x0 + dx, y0 + dy)
                        if self.free(rect):
                            return self._keep(text, rect)
        self.dropped += 1
        return None

    def _keep(self, text: str, rect: Rect) -> Rect:
        self.labels.append(PlacedLabel(text, rect))
        return rect
