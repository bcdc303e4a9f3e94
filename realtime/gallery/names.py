"""Person names: what a name may hold, and how text from the gallery or the audit log is shown safely.

A name reaches terminals (``rtv gallery list``, ``rtv audit list``), CSV files and the unlock hook's argv and
environment, so it must not be able to forge a line, reorder text or pass for an option. A valid name is:

* text of 1 to :data:`MAX_NAME_CHARS` characters, in Unicode NFC form, without surrounding white space;
* printable (:meth:`str.isprintable`: no control characters, no format characters such as the bidi controls
  U+202A..U+202E, U+2066..U+2069, U+200E/U+200F or zero-width characters, no line or paragraph separators
  U+2028/U+2029, no white space other than the ASCII space);
* not starting with ``-`` (an option to most programs).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from realtime.errors import GalleryError

MAX_NAME_CHARS = 100
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_SEPARATORS = frozenset("\u2028\u2029\x85")


def name_problem(name: Any) -> str | None:
    """Why ``name`` (exactly as stored) is not a valid person name, or None when it is."""
    if not isinstance(name, str):
        return f"it is {type(name).__name__}, not text"
    if not name or not name.strip():
        return "it is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"it has {len(name)} characters, more than {MAX_NAME_CHARS}"
    if name != name.strip():
        return "it starts or ends with white space"
    for ch in name:
        if ch in BIDI_CONTROLS:
            return f"it holds the bidi control U+{ord(ch):04X}, which reorders text on screen"
        if ch in LINE_SEPARATORS:
            return f"it holds the line separator U+{ord(ch):04X}"
        if not ch.isprintable():
            return f"it holds the non-printable character U+{ord(ch):04X} ({unicodedata.category(ch)})"
    if name.startswith("-"):
        return "it starts with '-', which programs read as an option"
    return None


def check_name(name: Any) -> str:
    """The name to store for a new person: surrounding white space removed, NFC form, then validated.

    :class:`GalleryError` saying what is wrong (the name shown escaped, see :func:`escape_text`).
    """
    cleaned = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else name
    problem = name_problem(cleaned)
    if problem is not None:
        shown = escape_text(name) if isinstance(name, str) else repr(name)
        raise GalleryError(f"person name {shown!r} is refused: {problem}; a name is 1 to {MAX_NAME_CHARS} "
                           "printable characters, without control or bidi characters, not starting with '-'")
    return cleaned


def escape_text(text: Any) -> str:
    """``text`` for a terminal or a listing: control, format (bidi, zero-width) and separator characters become
    ``\\xNN`` / ``\\uNNNN`` escapes, and a backslash becomes ``\\\\``, so one record stays one line and shows in the
    order it was written. None becomes ``""``."""
    if text is None:
        return ""
    out = []
    for ch in str(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
    return "".join(out)


def spreadsheet_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will show, not run: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return gets a leading ``'`` (numbers are left alone: they cannot be formulas)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# Letters of other scripts that look like Latin ones (Cyrillic, Greek), mapped to the Latin letter they pass for.
_LOOKALIKES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m",
    "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "γ": "y", "ӏ": "l", "ℓ": "l", "ı": "i", "0": "o", "1": "l", "|": "l",
})


def confusable_key(name: str) -> str:
    """What ``name`` looks like on screen, for telling look-alikes apart: compatibility forms folded (NFKC), case
    folded, letters of other scripts that pass for Latin ones mapped to them, digits 0/1 read as o/l, spaces
    squeezed. Two different names with the same key are refused side by side (a Cyrillic "Аlice" next to
    "Alice")."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES)
    return " ".join(folded.split())


def check_not_confusable(name: str, others: "dict[str, str]") -> None:
    """:class:`GalleryError` when ``name`` differs from a name in ``others`` (confusable key -> stored name) but
    looks like it."""
    other = others.get(confusable_key(name))
    if other is not None and other != name:
        raise GalleryError(f"person name {escape_text(name)!r} looks like {escape_text(other)!r} already there (same "
                           "letters on screen, different characters); use a clearly different name, or the same one")
