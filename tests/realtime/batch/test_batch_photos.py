"""``rtv batch`` on photos: each photo annotated as a photo (its own size, its own JSONL, the boxes
``Vision.predict`` gives on it alone), staged under ``.partial`` names until the driver publishes, skipped on resume."""

import json
from itertools import islice
from pathlib import Path

import cv2
import pytest

from realtime.batch.run import run_batch
from realtime.errors import OutputError

# (file, width, height): different sizes and formats, one in a sub-folder
PHOTOS = (("p1.png", 320, 240), ("p2.jpg", 200, 260), ("sub/p3.png", 96, 80))


def ledger(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, (out / "batch.jsonl").read_text().splitlines())}


@pytest.fixture
def mixed_dir(tmp_path, tiny_clip) -> Path:
    """Three photos of the demo scene (two people) at different sizes and one 6-frame clip."""
    from realtime.samples.clips import demo_frames

    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    scene = next(islice(demo_frames(seconds=4, fps=10), 16, None))
    for name, w, h in PHOTOS:
        cv2.imwrite(str(folder / name), cv2.resize(scene, (w, h), interpolation=cv2.INTER_AREA))
    tiny_clip(folder / "clip.mp4", 6)
    return folder


def test_photos_are_annotated_as_photos_and_videos_as_before(tmp_path, mixed_dir, fast_config):
    from realtime.api import Vision

    out = tmp_path / "out"
    result = run_batch(fast_config, [str(mixed_dir)], out, workers=1)
    assert result.ok, result.records
    records = ledger(out)
    assert list(records) == ["clip", "p1", "p2", "p3"]  # the folder's videos and photos, each an input
    found = 0
    with Vision(fast_config) as vision:
        for file, w, h in PHOTOS:
            stem, suffix = Path(file).stem, Path(file).suffix
            r = records[stem]
            assert (r["status"], r["frames"], r["image"], r["mp4"], r["jsonl"]) == (
                "done", 1, f"{stem}{suffix}", None, f"{stem}.jsonl")
            image = cv2.imread(str(out / f"{stem}{suffix}"))
            assert image.shape == (h, w, 3)  # its own size: no letterboxing to another photo's
            header, row, end = map(json.loads, (out / f"{stem}.jsonl").read_text().splitlines())
            assert header["rtv"]["source"]["kind"] == "image"
            assert (header["rtv"]["source"]["width"], header["rtv"]["source"]["height"]) == (w, h)
            assert row["source"] == str(mixed_dir / file) and end["end"]["complete"] is True
            alone = vision.predict(mixed_dir / file).to_json()
            assert row["detections"] == alone["detections"] and row["faces"] == alone["faces"]
            found += len(alone["detections"])
    assert found >= len(PHOTOS)  # the comparison compared boxes, not empty lists
    clip = records["clip"]
    assert (clip["status"], clip["frames"], clip["mp4"], clip["jsonl"]) == ("done", 6, "clip.mp4", "clip.jsonl")
    assert "image" not in clip
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["batch.jsonl", "clip.mp4", "clip.jsonl", "p1.png", "p1.jsonl", "p2.jpg", "p2.jsonl", "p3.png", "p3.jsonl"])

    # resume: done photos are skipped (an orphaned staging copy beside one is removed); a photo whose annotated
    # copy is gone, with an orphaned staging copy left by a run that died, is redone
    kept = (out / "p1.png").stat().st_mtime_ns
    (out / "p1.partial.png").write_bytes(b"half an image")
    (out / "p2.jpg").unlink()
    (out / "p2.partial.jpg").write_bytes(b"half an image")
    (out / "p2.partial.jpg.partial").write_bytes(b"half an image")  # the image writer's own temporary
    second = run_batch(fast_config, [str(mixed_dir)], out, workers=1)
    statuses = {r["name"]: r["status"] for r in second.records}
    assert statuses == {"clip": "skipped", "p1": "skipped", "p2": "done", "p3": "skipped"}
    assert (out / "p1.png").stat().st_mtime_ns == kept
    assert cv2.imread(str(out / "p2.jpg")).shape == (260, 200, 3)
    assert not list(out.glob("*.partial*"))
    assert ledger(out)["p1"]["image"] == "p1.png"


def test_a_photo_is_never_written_over_itself(tmp_path, mixed_dir, fast_config):
    with pytest.raises(OutputError, match="would overwrite the input"):
        run_batch(fast_config, [str(mixed_dir / "p1.png")], mixed_dir, workers=1)
    assert not (mixed_dir / "batch.jsonl").exists()


def test_an_unreadable_photo_fails_alone_and_names_no_outputs(tmp_path, mixed_dir, fast_config):
    (mixed_dir / "bad.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    result = run_batch(fast_config, [str(mixed_dir / "bad.jpg"), str(mixed_dir / "sub" / "p3.png")], out,
                       workers=1)
    bad, good = result.records
    assert bad["status"] == "failed" and bad["image"] is None and bad["jsonl"] is None and bad["error"]
    assert good["status"] == "done" and (out / "p3.png").is_file()
    assert not list(out.glob("bad*"))
