"""Door events out of the service: MQTT (Home Assistant conventions) and signed webhooks.

MQTT topics (``PREFIX`` defaults to ``rtv``)::

    PREFIX/availability              "online" / "offline" (retained; "offline" is also the broker's last will)
    PREFIX/DOOR/availability         "online" while the door runs, "offline" after (retained)
    PREFIX/DOOR/event                one JSON object per committed audit record of the door (decision, alarm,
                                     recovery, start, stop): seq, ts, door_id, kind, decision, person, distance,
                                     threshold, reason
    PREFIX/DOOR/state                the last decision's JSON (retained), for a sensor's state

Webhooks: each event is POSTed as the same JSON to every configured URL with ``X-Rtv-Timestamp`` (Unix seconds)
and ``X-Rtv-Signature: sha256=HEX``, the HMAC-SHA256 of ``TIMESTAMP.BODY`` under the shared secret; a receiver
recomputes it and refuses old timestamps. Deliveries run on one background thread, in order, with a timeout; a
failed delivery is logged, never retried forever, and never delays a door.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)

EVENT_FIELDS = ("seq", "ts", "door_id", "kind", "decision", "person", "track_id", "distance", "threshold", "reason")


def event_payload(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in EVENT_FIELDS}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=HEX`` of HMAC-SHA256(secret, ``timestamp + "." + body``)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    prefix: str = "rtv"
    username: str = ""
    password: str = ""


class EventsOut:
    """Publishes door events to MQTT and webhooks. ``close`` marks everything offline and stops the threads."""

    def __init__(self, mqtt: MqttSettings | None = None, webhooks: tuple[str, ...] = (),
                 webhook_secret: bytes = b"", webhook_timeout_s: float = 5.0) -> None:
        self.mqtt_settings = mqtt
        self.webhooks = tuple(webhooks)
        self.secret = webhook_secret
        self.timeout_s = webhook_timeout_s
        self._client = None
        self._queue: queue.Queue = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        if mqtt is not None:
            self._connect(mqtt)
        if self.webhooks:
            self._thread = threading.Thread(target=self._deliver, name="webhooks", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------------------------------------------ MQTT
    def _connect(self, mqtt: MqttSettings) -> None:
        import paho.mqtt.client as paho

        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"rtv-serve-{mqtt.prefix}")
        if mqtt.username:
            client.username_pw_set(mqtt.username, mqtt.password or None)
        client.will_set(f"{mqtt.prefix}/availability", "offline", qos=1, retain=True)
        client.on_connect = lambda c, *_: c.publish(f"{mqtt.prefix}/availability", "online", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.connect_async(mqtt.host, mqtt.port, keepalive=30)
        client.loop_start()
        self._client = client

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        if self._client is not None:
            self._client.publish(f"{self.mqtt_settings.prefix}/{topic}", payload, qos=1, retain=retain)

    def availability(self, door_id: str, online: bool) -> None:
        self._publish(f"{door_id}/availability", "online" if online else "offline", retain=True)

    def publish(self, record: Mapping[str, Any]) -> None:
        payload = event_payload(record)
        body = json.dumps(payload, sort_keys=True)
        door = str(record.get("door_id"))
        self._publish(f"{door}/event", body)
        if record.get("kind") == "decision":
            self._publish(f"{door}/state", body, retain=True)
        if self.webhooks:
            try:
                self._queue.put_nowait(body.encode())
            except queue.Full:
                log.warning("webhook queue full: event %s not delivered", payload.get("seq"))

    # -------------------------------------------------------------------------------------------------- webhooks
    def _deliver(self) -> None:
        import urllib.request

        while True:
            body = self._queue.get()
            if body is None:
                return
            stamp = str(int(time.time()))
            for url in self.webhooks:
                request = urllib.request.Request(url, data=body, method="POST", headers={
                    "Content-Type": "application/json", "X-Rtv-Timestamp": stamp,
                    "X-Rtv-Signature": sign(self.secret, stamp, body), "User-Agent": "rtv-serve"})
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 (http/https only: checked at start)
                        answer.read(1024)
                except Exception as exc:  # noqa: BLE001 - a receiver that is down must not stop the doors
                    log.warning("webhook %s: %s", url, exc)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(self.timeout_s * 2)
            self._thread = None
        if self._client is not None:
            info = self._client.publish(f"{self.mqtt_settings.prefix}/availability", "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(2.0)
            except Exception:  # noqa: BLE001 - not connected: the broker's last will says offline anyway
                pass
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
