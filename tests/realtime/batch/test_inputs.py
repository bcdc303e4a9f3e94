"""Expanding inputs (files, folders, globs, list files), unique output names, the config fingerprint, ledger."""

import dataclasses
import json
from pathlib import Path

import pytest

from realtime.batch.inputs import check_outputs_spare_inputs, expand_inputs, input_sha256
from realtime.batch.ledger import Ledger, config_fingerprint
from realtime.batch.run import plan_workers
from realtime.config import load_config
from realtime.errors import ConfigError, OutputError, SourceError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folders_globs_lists_and_duplicates(tmp_path):
    a = touch(tmp_path / "in" / "a.mp4")
    b = touch(tmp_path / "in" / "deep" / "b.MOV")
    touch(tmp_path / "in" / "notes.md")
    c = touch(tmp_path / "other" / "c.mkv")
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\nother/c.mkv\n\nin/a.mp4\nnowhere.mp4\n")
    items = expand_inputs([str(tmp_path / "in"), str(tmp_path / "other" / "*.mkv"), f"@{listing}"])
    assert [i.path for i in items] == [str(a), str(b), str(c), str(tmp_path / "nowhere.mp4")]
    assert [i.name for i in items] == ["a", "b", "c", "nowhere"]
    assert [i.exists for i in items] == [True, True, True, False]
    assert expand_inputs([str(listing)]) == expand_inputs([f"@{listing}"])  # a .txt is a list file too


def test_a_glob_that_matches_nothing_is_a_missing_input(tmp_path):
    (item,) = expand_inputs([str(tmp_path / "*.mp4")])
    assert not item.exists


def test_colliding_names_get_a_path_hash_independent_of_order(tmp_path):
    x = touch(tmp_path / "x" / "clip.mp4")
    y = touch(tmp_path / "y" / "Clip.mp4")
    z = touch(tmp_path / "z" / "batch.mp4")  # would collide with the ledger batch.jsonl
    forward = {i.path: i.name for i in expand_inputs([str(x), str(y), str(z)])}
    backward = {i.path: i.name for i in expand_inputs([str(z), str(y), str(x)])}
    assert forward == backward
    assert len(set(forward.values())) == 3
    assert forward[str(x)].startswith("clip-") and forward[str(y)].startswith("Clip-")
    assert forward[str(z)].startswith("batch-")


def test_a_folder_never_picks_up_the_out_dir(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "out" / "a.mp4")
    items = expand_inputs([str(tmp_path)], out_dir=tmp_path / "out")
    assert [Path(i.path).parent for i in items] == [tmp_path]


def test_an_output_onto_an_input_is_refused(tmp_path):
    items = expand_inputs([str(touch(tmp_path / "a.mp4"))])
    with pytest.raises(OutputError, match="would overwrite the input"):
        check_outputs_spare_inputs(items, tmp_path)
    check_outputs_spare_inputs(items, tmp_path / "out")


def test_sha256_of_files_and_image_folders(tmp_path):
    f = touch(tmp_path / "a.mp4", b"abc")
    assert input_sha256(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    touch(tmp_path / "imgs" / "1.png", b"1")
    before = input_sha256(tmp_path / "imgs")
    touch(tmp_path / "imgs" / "2.png", b"2")
    assert input_sha256(tmp_path / "imgs") != before
    with pytest.raises(SourceError, match="not found"):
        input_sha256(tmp_path / "nope.mp4")


def test_fingerprint_follows_results_not_threads():
    base = load_config(None, ["faces.enabled=false"])
    threads = dataclasses.replace(base, runtime=dataclasses.replace(base.runtime, intra_op_threads=4))
    threshold = dataclasses.replace(base, detector=dataclasses.replace(base.detector, score_threshold=0.3))
    assert config_fingerprint(base) == config_fingerprint(threads)
    assert config_fingerprint(base) != config_fingerprint(threshold)


def test_ledger_last_line_wins_and_compaction(tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(json.dumps({"name": "a", "status": "failed"}) + "\n" + '{"name": "b", "sta\n')
    with Ledger(path) as ledger:
        ledger.append({"name": "a", "status": "done"})
        ledger.append({"name": "z", "status": "done"})
        assert ledger.read() == {"a": {"name": "a", "status": "done"}, "z": {"name": "z", "status": "done"}}
        ledger.compact([{"name": "a", "status": "skipped"}])
        with pytest.raises(ConfigError, match="another 'rtv batch'"):
            Ledger(path).open()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"name": "a", "status": "skipped"}, {"name": "z", "status": "done"}]


@pytest.mark.parametrize("requested, jobs, cores, expected", [
    (0, 10, 8, (8, 1)), (2, 10, 8, (2, 4)), (0, 3, 8, (3, 2)), (3, 10, 2, (3, 1)), (0, 0, 4, (4, 1))])
def test_workers_times_threads_fit_the_cores(requested, jobs, cores, expected):
    assert plan_workers(requested, jobs, cores) == expected
