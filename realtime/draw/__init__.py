"""Drawing on frames: small annotators, one per result type (object boxes, faces, the legend, the status bar),
sharing one label placer so labels stay inside the frame, off the panels and apart from each other.
``realtime.overlay.render`` composes them; door drawing lives in ``realtime.door.overlay``."""
