"""Record face_recognition 1.3.0's own answers on the test photos of ``tests/data/face_recognition`` (run with the
python of an environment that has face_recognition, dlib and click; never an rtv dependency).

The tests of ``realtime.compat.face_recognition`` compare rtv's answers with these, without needing dlib::

    /path/to/dlib-venv/bin/python recipes/face_recognition_answers.py tests/data/face_recognition

Writes ``answers.json`` there: face_recognition's boxes and encodings of every photo, the same/different answers
of its documented examples at tolerance 0.6, and the output lines of its ``face_recognition`` and
``face_detection`` commands (run in that folder, on ``known`` and ``unknown``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path


def main(folder: str) -> int:
    import dlib
    import face_recognition
    from face_recognition import face_detection_cli, face_recognition_cli

    os.chdir(folder)
    files = sorted(str(p) for p in Path(".").glob("*/*.jpg"))
    answers: dict = {"face_recognition": "1.3.0", "dlib": dlib.__version__, "tolerance": 0.6,
                     "locations": {}, "encodings": {}}
    encodings = {}
    for file in files:
        image = face_recognition.load_image_file(file)
        answers["locations"][file] = [list(map(int, b)) for b in face_recognition.face_locations(image)]
        encodings[file] = face_recognition.face_encodings(image)
        answers["encodings"][file] = [[round(float(v), 7) for v in e] for e in encodings[file]]
    # recognize_faces_in_pictures.py: biden and obama known, is the unknown photo either of them?
    known = [encodings["known/biden.jpg"][0], encodings["known/obama.jpg"][0]]
    answers["compare_faces"] = {f: [[bool(m) for m in face_recognition.compare_faces(known, e)] for e in encodings[f]]
                                for f in files if f.startswith("unknown/")}
    answers["compare_faces_known"] = ["known/biden.jpg", "known/obama.jpg"]
    runs = {"recognize": ["known", "unknown"], "recognize_distance": ["known", "unknown", "--show-distance", "true"],
            "detect": ["unknown"]}
    answers["cli"] = {}
    for name, argv in runs.items():
        out = io.StringIO()
        command = face_detection_cli.main if name == "detect" else face_recognition_cli.main
        with contextlib.redirect_stdout(out):
            try:
                command.main(args=argv, standalone_mode=False)
            except SystemExit:
                pass
        answers["cli"][name] = out.getvalue().splitlines()
    Path("answers.json").write_text(json.dumps(answers, indent=1))
    print(json.dumps({k: v for k, v in answers.items() if k != "encodings"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/face_recognition"))
