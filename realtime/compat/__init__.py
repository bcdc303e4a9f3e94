"""Drop-in replacements for other libraries' APIs, running on rtv's models (``realtime.compat.face_recognition``)."""
