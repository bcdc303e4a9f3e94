"""``rtv door --out`` records the door's annotated view (the no-liveness notice on every frame) like annotate."""

from __future__ import annotations

import av
import numpy as np

from realtime.cli.main import main


def test_door_out_records_the_annotated_view(tmp_path, scene_video, astronaut_gallery, capsys):
    out = tmp_path / "door.mkv"
    code = main(["door", "--source", str(scene_video[0]), "--no-window", "--max-frames", "6", "--out", str(out),
                 "--set", f"faces.gallery={astronaut_gallery}", "--set", f"door.audit={tmp_path / 'a.sqlite'}"])
    assert code == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        assert "matroska" in container.format.name
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(frames) == 6
    corner = frames[0][-6:, :60].reshape(-1, 3).astype(int).mean(axis=0)  # the amber notice, bottom left
    b, g, r = corner
    assert r > 180 and 120 < g < 230 and b < 90, corner


def test_door_out_refuses_an_unknown_container(tmp_path, scene_video, astronaut_gallery, capsys):
    code = main(["door", "--source", str(scene_video[0]), "--no-window", "--max-frames", "2", "--out",
                 str(tmp_path / "door.webm"), "--set", f"faces.gallery={astronaut_gallery}",
                 "--set", f"door.audit={tmp_path / 'a.sqlite'}"])
    err = capsys.readouterr().err
    assert code == 6 and ".mp4" in err and ".mkv" in err and "Traceback" not in err
    assert not (tmp_path / "door.webm").exists()
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".webm"), [])
