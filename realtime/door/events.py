"""What door mode decides, as typed values: a verdict per face (:class:`DoorDecision`) and fail-secure alarms
(:class:`DoorAlarm`), and the end of one (:class:`DoorRecovery`). They travel in ``FramePacket.decisions``; the
overlay draws them, the audit sink logs them, :func:`realtime.serialize.event_json` writes them as JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

LIVENESS = "none"


class DoorVerdict(StrEnum):
    GRANT = "GRANT"
    DENY = "DENY"
    WAIT = "WAIT"
    ALARM = "ALARM"


GRANT, DENY, WAIT = DoorVerdict.GRANT, DoorVerdict.DENY, DoorVerdict.WAIT


@dataclass(frozen=True)
class DoorDecision:
    """A decision drawn on a face (and, when ``new``, written to the audit log and given to the hook).

    ``verdict``: GRANT, DENY or WAIT. ``box_xyxy``: the face box in source pixels. ``new``: decided on this frame
    (False: a decision still shown during its cooldown, or a WAIT).
    """

    verdict: DoorVerdict
    track_id: int
    person: str | None
    reason: str
    box_xyxy: tuple[float, float, float, float]
    distance: float = math.nan
    margin: float = math.nan
    frames_used: int = 0
    frames_agreeing: int = 0
    threshold: float = math.nan
    frame_index: int = -1
    new: bool = False
    liveness: str = LIVENESS



@dataclass(frozen=True)
class DoorAlarm:
    """A fail-secure event (camera lost, model error, gallery unreadable): never a GRANT while it stands."""

    kind: str
    reason: str
    frame_index: int = -1
    new: bool = True
    verdict: DoorVerdict = DoorVerdict.ALARM
    liveness: str = LIVENESS



@dataclass(frozen=True)
class DoorRecovery:
    """What an alarm was about is back (the gallery readable again, the camera delivering again)."""

    kind: str
    reason: str
    frame_index: int = -1
    new: bool = True
    liveness: str = LIVENESS
