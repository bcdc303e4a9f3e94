"""Two enrolments that create a new gallery at the same moment both succeed (real processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from realtime.gallery.store import Gallery

ROUNDS = 20
WORKERS = 3
SHA = "ab" * 32

_WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from realtime.errors import RtvError
    from realtime.gallery.store import Gallery
    folder, me = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    for line in sys.stdin:
        path = f"{folder}/gallery{line.strip()}.db"
        try:
            with Gallery.open(path, model_sha256="ab" * 32, model_name="m", embedding_size=4) as g:
                g.enroll(f"person{me}", np.full((1, 4), float(me), np.float32))
            print("ok", flush=True)
        except RtvError as exc:
            print(f"error {exc}".replace("\\n", " "), flush=True)
""")


def test_simultaneous_creation_never_fails(tmp_path):
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), str(i)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for i in range(WORKERS)]
    try:
        assert all(w.stdout.readline().strip() == "ready" for w in workers)
        answers = []
        for round_ in range(ROUNDS):
            for w in workers:  # every worker gets the go at (nearly) the same moment
                w.stdin.write(f"{round_}\n")
                w.stdin.flush()
            answers.extend(w.stdout.readline().strip() for w in workers)
    finally:
        for w in workers:
            w.stdin.close()
            w.wait(timeout=60)
    assert [a for a in answers if a != "ok"] == []
    for round_ in range(ROUNDS):
        with Gallery.open(tmp_path / f"gallery{round_}.db", model_sha256=SHA, create=False) as g:
            assert sorted(p.name for p in g.persons()) == [f"person{i}" for i in range(WORKERS)]
