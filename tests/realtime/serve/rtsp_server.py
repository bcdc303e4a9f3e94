"""A tiny RTSP server for the service tests: GStreamer's rtsp-server (Debian: gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-ugly, python3-gi), run with the system Python.

    /usr/bin/python3 rtsp_server.py PORT WIDTH HEIGHT

serves rtsp://127.0.0.1:PORT/door: a live test pattern (a moving ball) at 10 fps, H.264. Runs until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate=10/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bitrate=500 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/door", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
