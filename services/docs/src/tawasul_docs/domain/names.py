"""File names as beneficiaries send them, made safe to store and to offer on download."""

from __future__ import annotations

import unicodedata

MAX_FILENAME = 255
DEFAULT_FILENAME = "document"
# Characters that mean something to file systems or shells; replaced, never stored.
_RESERVED = frozenset('/\\<>:"|?*')


def sanitize_filename(name: str) -> str:
    """A display name safe to store and to offer on download: no path, no control characters.

    Bidirectional overrides (U+202E …) are format characters and go too, so "fdp.exe" cannot be
    shown as "exe.pdf". At most MAX_FILENAME characters, keeping a short extension.
    """
    text = unicodedata.normalize("NFC", name)
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category.startswith("C"):
            continue
        kept.append(" " if category.startswith("Z") else "_" if char in _RESERVED else char)
    text = " ".join("".join(kept).split()).strip(". ")
    if not text:
        return DEFAULT_FILENAME
    if len(text) <= MAX_FILENAME:
        return text
    stem, dot, extension = text.rpartition(".")
    if dot and stem and 0 < len(extension) <= 16:
        return f"{stem[: MAX_FILENAME - len(extension) - 1].rstrip('. ')}.{extension}"
    return text[:MAX_FILENAME].rstrip(". ")
