"""FFmpeg's errors as sentences: PyAV raises them as ``[Errno 1094995529] Invalid data found when processing
input``; people read "not valid video data (damaged, cut short, or not a video)"."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def _sentences() -> tuple[tuple[type, str], ...]:
    import av

    return (
        (av.error.InvalidDataError, "not valid video data (the file is damaged, cut short, or not a video)"),
        (av.error.EOFError, "the data ended sooner than its header said"),
        (av.error.DecoderNotFoundError, "no decoder for its codec in this PyAV build"),
        (av.error.EncoderNotFoundError, "no encoder for that codec in this PyAV build"),
        (av.error.DemuxerNotFoundError, "not a container format this PyAV build can read"),
        (av.error.MuxerNotFoundError, "not a container format this PyAV build can write"),
        (av.error.ProtocolNotFoundError, "that kind of address (URL scheme) is not supported"),
        (av.error.OptionNotFoundError, "an encoder or container option was not recognised"),
        (av.error.PatchWelcomeError, "FFmpeg does not support this feature yet"),
        (av.error.BugError, "FFmpeg hit an internal error"),
        (av.error.ExternalError, "a library FFmpeg uses failed"),
        (av.error.ExitError, "FFmpeg was asked to stop"),
        (av.error.HTTPBadRequestError, "the server answered 400 Bad Request"),
        (av.error.HTTPUnauthorizedError, "the server answered 401 Unauthorized (check the user name and password)"),
        (av.error.HTTPForbiddenError, "the server answered 403 Forbidden"),
        (av.error.HTTPNotFoundError, "the server answered 404 Not Found"),
        (av.error.HTTPTooManyRequestsError, "the server answered 429 Too Many Requests"),
        (av.error.HTTPOtherClientError, "the server refused the request (HTTP 4xx)"),
        (av.error.HTTPServerError, "the server failed (HTTP 5xx)"),
    )


def describe_av_error(exc: BaseException) -> str:
    """One plain sentence for a PyAV/FFmpeg error (or an OSError), without FFmpeg's internal error number."""
    import av

    for cls, sentence in _sentences():
        if isinstance(exc, cls):
            return sentence
    if isinstance(exc, (av.error.FFmpegError, OSError)):
        number = exc.errno if isinstance(exc.errno, int) else None
        if number is not None and 0 < number < 4096:
            return os.strerror(number)  # an operating-system error number (disk full, permission denied)
        text = exc.strerror if isinstance(exc.strerror, str) and exc.strerror else ""
        return text or type(exc).__name__
    return str(exc)
