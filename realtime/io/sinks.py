"""Where each sink lives (this module re-exports them for existing imports):

* :mod:`realtime.io.sink` - the :class:`Sink` protocol, :class:`SinkBase`, :class:`BackgroundSink`;
* :mod:`realtime.io.video` - the annotated video (:class:`VideoWriter`, :class:`VideoSink`; MP4, MKV, AVI);
* :mod:`realtime.io.jsonl_sink` - the JSONL sidecar (:class:`JsonlWriter`, :class:`JsonlSink`);
* :mod:`realtime.io.status_sinks` - the window, the progress bar, the metrics;
* door mode adds its audit sink in ``realtime.door.mode``.
"""

from realtime.io.jsonl_sink import JsonlSink, JsonlWriter
from realtime.io.sink import BackgroundSink, KeySink, Sink, SinkBase
from realtime.io.status_sinks import MetricsSink, ProgressSink, WindowSink
from realtime.io.video import Mp4Sink, Mp4Writer, VideoSink, VideoWriter
from realtime.serialize import end_record, packet_record  # the records themselves (older imports)

__all__ = ["BackgroundSink", "JsonlSink", "KeySink", "JsonlWriter", "MetricsSink", "Mp4Sink", "Mp4Writer", "ProgressSink",
           "Sink", "SinkBase", "VideoSink", "VideoWriter", "WindowSink", "end_record", "packet_record"]
