"""The annotated video: the container follows the file extension (MP4, MOV, MKV, AVI, all H.264) or is refused
naming the supported ones; a resolution change mid-video is scaled to the first size; FFmpeg's error numbers
become sentences."""

from __future__ import annotations

import av
import numpy as np
import pytest

from realtime.errors import SinkError
from realtime.io.ffmpeg_errors import describe_av_error
from realtime.io.video import CONTAINERS, VideoWriter


@pytest.mark.parametrize("suffix, format_name", [(".mp4", "mp4"), (".mkv", "matroska"), (".avi", "avi"),
                                                 (".mov", "mov")])
def test_the_container_follows_the_extension(tmp_path, frame_factory, suffix, format_name):
    path = tmp_path / f"x{suffix}"
    with VideoWriter(path, fps=25) as writer:
        for i in range(5):
            writer.write(frame_factory(i, (64, 48)))
    with av.open(str(path)) as container:
        assert format_name in container.format.name.split(",")
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert len(list(container.decode(video=0))) == 5


def test_an_unsupported_extension_is_refused_naming_the_supported_ones(tmp_path):
    with pytest.raises(SinkError) as caught:
        VideoWriter(tmp_path / "x.webm", fps=25)
    assert all(s in str(caught.value) for s in CONTAINERS) and ".webm" in str(caught.value)
    assert not list(tmp_path.iterdir())  # nothing was created


def test_a_resolution_change_is_scaled_to_the_first_size(tmp_path, frame_factory):
    path = tmp_path / "x.mp4"
    with VideoWriter(path, fps=25) as writer:
        writer.write(frame_factory(0, (64, 48)))
        writer.write(frame_factory(1, (128, 96)))  # the camera switched resolution
        writer.write(frame_factory(2, (63, 47)))
        assert writer.resized == 2
    with av.open(str(path)) as container:
        sizes = [(f.width, f.height) for f in container.decode(video=0)]
    assert sizes == [(64, 48)] * 3


def test_ffmpeg_error_numbers_become_sentences():
    error = av.error.InvalidDataError(1094995529, "Invalid data found when processing input")
    text = describe_av_error(error)
    assert "1094995529" not in text and "damaged" in text
    assert describe_av_error(OSError(28, "No space left on device")) == "No space left on device"


def test_a_file_that_is_not_a_video_reads_as_a_sentence(tmp_path):
    from realtime.config import SourceConfig
    from realtime.errors import SourceError
    from realtime.io.capture import open_source

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError) as caught:
        with open_source(SourceConfig(), str(junk)) as source:
            source.next_packet()
    assert "Errno" not in str(caught.value) and "damaged" in str(caught.value)
