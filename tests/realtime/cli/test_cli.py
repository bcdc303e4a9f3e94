"""The CLI end to end: annotate a generated clip, error paths (one line, right exit code, no traceback)."""

import json

import av
import pytest

import realtime
from realtime.cli.main import main
from realtime.runtime import file_sha256
from realtime.serialize import SCHEMA_VERSION
from realtime.zoo import ZOO_DIR, model_path

HAS_FACE_MODELS = (ZOO_DIR / "centerface.onnx").is_file() and (ZOO_DIR / "dlib_resnet128.onnx").is_file()


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str):
    lines = [line for line in err.strip().splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_annotate_writes_playable_h264_and_jsonl(tmp_path, capsys, video_factory):
    clip = video_factory(tmp_path / "in.mp4", 20)
    out, jsonl, metrics = tmp_path / "out.mp4", tmp_path / "out.jsonl", tmp_path / "m.json"
    code, _, err = run_cli(capsys, "annotate", str(clip), "--out", str(out), "--jsonl", str(jsonl),
                           "--no-progress", "--metrics-json", str(metrics), "--set", "faces.recognize=false")
    assert code == 0, err
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) == 20
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    header = records[0]["rtv"]  # the first line says what produced the file
    assert header["schema"] == SCHEMA_VERSION and header["version"] == realtime.__version__
    assert header["source"] == {"description": f"video {clip}", "kind": "file", "live": False, "paced": False,
                                "fps": 25.0, "expected_frames": 20, "width": 160, "height": 120}
    assert set(header["models"]) == {"detector", "face_detector"} and len(header["config"]) == 16
    detector = header["models"]["detector"]
    assert detector["sha256"] == file_sha256(model_path("detector")) and detector["file"].endswith(".onnx")
    assert header["thresholds"]["detector"]["score_threshold"] == 0.5 and "faces" in header["thresholds"]
    frames = [r for r in records if "frame" in r]
    assert [r["frame"] for r in frames] == list(range(20))
    for r in frames:
        assert isinstance(r["t"], float) and isinstance(r["detections"], list) and isinstance(r["faces"], list)
    assert frames[1]["t"] == pytest.approx(1 / 25, abs=1e-3)
    assert records[-1]["end"] == {"frames": 20, "expected_frames": 20, "reason": "end", "complete": True,
                                  "error": None}
    summary = json.loads(metrics.read_text())
    assert summary["frames"] == 20 and summary["dropped"] == 0


@pytest.mark.skipif(not HAS_FACE_MODELS, reason="face models are not in realtime/zoo")
def test_annotate_finds_and_names_the_astronaut(tmp_path, capsys):
    import cv2
    from skimage import data

    frames = tmp_path / "frames"
    frames.mkdir()
    astronaut = data.astronaut()[..., ::-1]
    for i in range(3):
        cv2.imwrite(str(frames / f"f{i}.png"), astronaut)
    cv2.imwrite(str(frames / "f3.png"), data.coffee()[..., ::-1])
    gallery = tmp_path / "g.sqlite"
    photo = tmp_path / "astro.png"
    cv2.imwrite(str(photo), astronaut[:, ::-1])  # enrol from the mirror image: not the very same pixels
    assert run_cli(capsys, "enroll", "eileen", str(photo), "--set", f"faces.gallery={gallery}")[0] == 0
    jsonl = tmp_path / "a.jsonl"
    code, _, err = run_cli(capsys, "annotate", str(frames), "--jsonl", str(jsonl), "--no-progress",
                           "--set", f"faces.gallery={gallery}")
    assert code == 0, err
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if '"frame"' in line]
    assert [len(r["faces"]) for r in records] == [1, 1, 1, 0]
    face = records[0]["faces"][0]
    assert face["identity"] == "eileen" and 0 <= face["distance"] < 0.4
    x1, y1, x2, y2 = face["box"]
    assert 150 < x1 < x2 < 300 and 30 < y1 < y2 < 210  # the astronaut's face in the 512x512 photo
    assert len(face["landmarks"]) == 5


def test_truncated_video_is_annotated_up_to_the_damage(tmp_path, capsys, video_factory):
    clip = video_factory(tmp_path / "full.mp4", 60)
    data = clip.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: int(len(data) * 0.6)])
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    code, _, err = run_cli(capsys, "annotate", str(broken), "--out", str(out), "--jsonl", str(jsonl),
                           "--no-progress", "--set", "faces.enabled=false")
    assert code == 3
    assert "truncated or damaged" in err and "Traceback" not in err
    end = json.loads(jsonl.read_text().splitlines()[-1])["end"]
    assert end["complete"] is False and 0 < end["frames"] < 60
    with av.open(str(out)) as container:  # finalised and playable
        assert sum(1 for _ in container.decode(video=0)) == end["frames"]


def test_run_headless_on_a_file(tmp_path, capsys, video_factory):
    clip = video_factory(tmp_path / "in.mp4", 12)
    jsonl = tmp_path / "live.jsonl"
    code, _, err = run_cli(capsys, "run", "--source", str(clip), "--no-window", "--jsonl", str(jsonl),
                           "--set", "faces.enabled=false")
    assert code == 0, err
    assert "run: " in err and "FPS" in err


@pytest.mark.parametrize("argv, code, needles", [
    (["annotate", "missing.mp4", "--jsonl", "x.jsonl"], 3, ["not found", "missing.mp4"]),
    (["run", "--source", "97", "--no-window"], 3, ["camera index 97 does not open"]),
    (["annotate", "EMPTY_DIR", "--jsonl", "x.jsonl"], 3, ["no images found"]),
    (["annotate", "NOT_VIDEO", "--jsonl", "x.jsonl"], 3, ["not a readable video"]),
    (["--set", "faces.detect_widht=3", "doctor", "--no-camera"], 2, ["faces.detect_widht"]),
    (["doctor", "--no-camera", "--set", "runtime.providers=tpu"], 2, ["runtime.providers"]),
    (["annotate", "IN", "--jsonl", "x.jsonl", "--set", "faces.detector_model=nope.onnx"], 4, ["not found"]),
    (["annotate", "IN", "--jsonl", "x.jsonl", "--set", "faces.detector_model=NOT_ONNX"], 4, ["not a loadable"]),
    (["--config", "nope.yaml", "doctor"], 2, ["config file not found"]),
    (["annotate", "IN", "--out", "no/such/dir/x.mp4", "--set", "faces.enabled=false"], 6, ["does not exist"]),
])
def test_bad_input_gives_one_line_and_exit_code(tmp_path, capsys, monkeypatch, video_factory, argv, code, needles):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY_DIR").mkdir()
    (tmp_path / "NOT_VIDEO").write_bytes(b"garbage" * 100)
    (tmp_path / "NOT_ONNX").write_bytes(b"garbage" * 100)
    video_factory(tmp_path / "IN", 3)
    got, _, err = run_cli(capsys, *argv)
    assert got == code, err
    assert_one_line_error(err, *needles)


def test_doctor_reports(capsys):
    code, out, _ = run_cli(capsys, "doctor", "--no-camera", "--json")
    assert code == 0
    report = json.loads(out)
    assert "CPUExecutionProvider" in report["providers_available"]
    assert report["pyav_h264_encoder"] is True
    assert all(m["ok"] for m in report["models"])


def test_help_explains_every_command(capsys):
    from realtime.cli.main import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"][0]
    for name, sub in actions.choices.items():
        assert sub.format_help().strip(), name
    assert all(choice.help for choice in actions._choices_actions)


def test_top_help_lists_every_command_once_in_its_section_and_wraps(capsys, monkeypatch):
    from realtime.cli.main import COMMAND_SECTIONS, build_parser

    monkeypatch.setenv("COLUMNS", "80")
    parser = build_parser()
    text = parser.format_help()
    assert max(len(line) for line in text.splitlines()) <= 80
    titles = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles[:2] == [COMMAND_SECTIONS[0][0], COMMAND_SECTIONS[1][0]]
    listed = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and not
              line.startswith("   ") and not line.lstrip().startswith("-")]
    assert sorted(listed) == sorted(parser.commands.choices), listed  # every command, each once
    assert listed.index("run") < listed.index("enroll") < listed.index("export") < listed.index("doctor")


def test_serving_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, realtime.cli.main, realtime.session, realtime.build, realtime.face.recognition, realtime.gallery.store, "
            "realtime.cli.faces; realtime.cli.main.build_parser(); print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_doctor_reports_no_remote_provider_as_usable():
    from realtime.cli.doctor import usable_providers
    from realtime.zoo import ZOO_DIR

    import onnxruntime as ort

    usable = usable_providers(ort.get_available_providers(), ZOO_DIR / "style_teacher26_19.onnx")
    assert "CPUExecutionProvider" in usable and "AzureExecutionProvider" not in usable


def test_options_may_stand_between_a_commands_positionals():
    """`rtv enroll NAME --replace IMAGE` (an option between the name and the images) reads IMAGE as an image; it
    used to stop with 'unrecognized arguments'."""
    from realtime.cli.main import build_parser

    args = build_parser().parse_args(["enroll", "alice", "--replace", "a.jpg", "b.jpg"])
    assert (args.name, args.images, args.replace) == ("alice", ["a.jpg", "b.jpg"], True)
    args = build_parser().parse_args(["gallery", "remove", "bob"])  # a command group still parses as before
    assert (args.command, args.gallery_command, args.name) == ("gallery", "remove", "bob")
