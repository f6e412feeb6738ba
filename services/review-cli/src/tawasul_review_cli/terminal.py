"""Text from outside printed safely in a terminal: every control, escape and bidi control of
an applicant's neutralised (`clean`), and Arabic isolated in its own direction so that a
left-to-right terminal keeps the columns and numbers around it in place."""

from __future__ import annotations

import unicodedata

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text

# --- applicant text, made harmless ----------------------------------------------------------

NEWLINE = "⏎"
_REPLACEMENT = "\ufffd"
# C0 controls become their visible Control Pictures (U+2400 + code): ESC shows as "␛", so an
# escape sequence (colours "\x1b[31m", OSC 8 links "\x1b]8;;…\x07", title changes, cursor
# moves) prints as inert text the reviewer can see, and "\r" as "␍" cannot overwrite the line.
_CLEAN: dict[int, str] = {code: chr(0x2400 + code) for code in range(0x20)}
_CLEAN[0x7F] = "\u2421"  # DEL → ␡
# C1 controls (0x80–0x9F, among them the one-byte CSI 0x9B and OSC 0x9D) have no pictures.
_CLEAN.update({code: _REPLACEMENT for code in range(0x80, 0xA0)})
# Bidi embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI) typed by an
# applicant could reorder what the reviewer reads ("Trojan source" spoofing) or unbalance the
# isolates this CLI puts around cells; they are shown as U+FFFD instead.
_CLEAN.update({code: _REPLACEMENT for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})
# Every line break is shown as ⏎: a cell is one logical line, and nothing starts a new one.
_CLEAN.update({code: NEWLINE for code in (0x0A, 0x85, 0x2028, 0x2029)})


def clean(text: str) -> str:
    """Text from outside, with every control, escape and bidi control neutralised.

    Nothing is dropped silently: each neutralised character stays visible as a picture
    (␛ ␍ ␀ ␇ …) or U+FFFD, and a line break as ⏎.
    """
    return text.replace("\r\n", "\n").translate(_CLEAN)


# --- right-to-left text in a left-to-right terminal -----------------------------------------

LRI, RLI, PDI = "\u2066", "\u2067", "\u2069"


def _opener(text: str) -> str:
    """RLI for text that is mostly right-to-left, LRI for mostly left-to-right text that holds
    some, and nothing for text without right-to-left letters."""
    rtl = ltr = 0
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            rtl += 1
        elif kind == "L":
            ltr += 1
    if not rtl:
        return ""
    return RLI if rtl >= ltr else LRI


# Why isolates: a terminal that applies the Unicode bidi algorithm (VTE, Konsole, mlterm…)
# treats each printed line as one paragraph. Left bare, Arabic text pulls the digits,
# punctuation and box-drawing borders next to it into its right-to-left run, so columns and
# numbers swap places, and a line that starts with Arabic flips the whole line's direction.
# Wrapping each Arabic cell, line by line, in RLI … PDI orders it right-to-left within
# itself, while the line around it stays left-to-right with its columns where they are; the
# isolate marks are zero-width, so the table's alignment is unchanged.
def isolate(text: str) -> str:
    """One line of (already cleaned) text, isolated in its own direction if it has Arabic."""
    opener = _opener(text)
    return f"{opener}{text}{PDI}" if opener else text


class Cell:
    """A table cell of outside text: cleaned, and when it is Arabic wrapped by rich to its
    column, each wrapped line in its own isolate (an isolate must not span lines) and set
    flush right, its padding outside the isolate."""

    def __init__(self, text: str, *, style: str = "", clip: int = 0) -> None:
        plain = clean(text)
        if clip and len(plain) > clip:
            plain = plain[: clip - 1] + "…"
        self.text = Text(plain, style=style, overflow="fold")
        self.opener = _opener(plain)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.opener:
            yield self.text
            return
        width = options.max_width
        for number, line in enumerate(self.text.wrap(console, width, overflow="fold")):
            line.rstrip()
            if number:
                yield Segment.line()
            if self.opener == RLI:
                yield Segment(" " * max(0, width - line.cell_len))
            yield Segment(self.opener)
            yield from line.render(console)
            yield Segment(PDI)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.text)


def line(*parts: str | Text) -> Text:
    """One printed line of our own words and (cleaned, isolated) values."""
    line = Text()
    for part in parts:
        line.append(part if isinstance(part, Text) else Text(part))
    return line


def value(text: str, style: str = "") -> Text:
    return Text(isolate(clean(text)), style=style)
