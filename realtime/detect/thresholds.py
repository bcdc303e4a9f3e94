"""The one owner of the object detector's score thresholds, for the detector and the tracker alike.

One convention everywhere: a box is *shown* (drawn, reported as a detection) when its score is **at least** its
class's threshold (``class_score_thresholds`` for the classes named there, else ``score_threshold``). The tracker's
low-score pass (ByteTrack's second pass, ``tracking.low_score_threshold``) is independent of those: the detector
always decodes down to the lowest of all of them, boxes below their class's threshold but at least the low
threshold may continue a confirmed track (never start one), and such a box is marked ``continued`` instead of
being shown as a detection. So lowering a class's threshold can only add boxes of that class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from realtime.checks import check_fraction
from realtime.errors import ConfigError


@dataclass(frozen=True)
class ScoreThresholds:
    """Per-class thresholds resolved against a model's class names.

    ``per_class``: float32 (C,), the threshold a box of each class must reach to be shown; ``low``: the tracker's
    continuation floor (None: no second pass); ``keep_ids``: int64 class ids to keep (None: all).
    """

    per_class: np.ndarray
    low: float | None = None
    keep_ids: np.ndarray | None = None

    @property
    def floor(self) -> float:
        """The lowest score anything downstream needs: what the detector decodes down to."""
        lowest = float(self.per_class.min()) if len(self.per_class) else 0.0
        return lowest if self.low is None else min(lowest, self.low)

    def kept(self, class_ids: np.ndarray) -> np.ndarray:
        """bool (N,): the box's class is one to keep (``detector.classes``)."""
        class_ids = np.asarray(class_ids, np.int64)
        return np.ones(len(class_ids), bool) if self.keep_ids is None else np.isin(class_ids, self.keep_ids)

    def shown(self, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """bool (N,): ``score >= threshold of its class`` (and the class is kept). The one comparison."""
        scores = np.asarray(scores, np.float32)
        class_ids = np.asarray(class_ids, np.int64)
        if not len(scores):
            return np.zeros(0, bool)
        return self.kept(class_ids) & (scores >= self.per_class[class_ids])

    def candidates(self, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """bool (N,): boxes worth passing on: shown, or (with a second pass) at least the low threshold."""
        shown = self.shown(scores, class_ids)
        if self.low is None:
            return shown
        return shown | (self.kept(class_ids) & (np.asarray(scores, np.float32) >= np.float32(self.low)))


def score_thresholds(class_names: Sequence[str], score_threshold: float,
                     class_score_thresholds: Mapping[str, float] | Sequence[tuple[str, float]] = (),
                     low_score_threshold: float | None = None, keep_classes: Sequence[str] = ()
                     ) -> ScoreThresholds:
    """Resolve the configured thresholds against ``class_names``; :class:`ConfigError` for an unknown class name
    or a value outside [0, 1]."""
    score_threshold = check_fraction("detector.score_threshold", score_threshold, allow_zero=True)
    if low_score_threshold is not None:
        low_score_threshold = check_fraction("tracking.low_score_threshold", low_score_threshold, allow_zero=True)
    index = {n: i for i, n in enumerate(class_names)}
    pairs = list(class_score_thresholds.items()) if isinstance(class_score_thresholds, Mapping) \
        else list(class_score_thresholds)
    unknown = [n for n in list(keep_classes) + [n for n, _ in pairs] if n not in index]
    if unknown:
        raise ConfigError(f"detector classes {unknown} are not in the model's {len(index)} classes "
                          f"({', '.join(class_names[:12])}{', ...' if len(index) > 12 else ''})")
    table = np.full(len(class_names), score_threshold, np.float32)
    for name, value in pairs:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"detector.class_score_thresholds.{name}={value!r}: must be in [0, 1]")
        table[index[name]] = float(value)
    keep_ids = np.array(sorted(index[n] for n in keep_classes), np.int64) if keep_classes else None
    return ScoreThresholds(per_class=table, low=low_score_threshold, keep_ids=keep_ids)
