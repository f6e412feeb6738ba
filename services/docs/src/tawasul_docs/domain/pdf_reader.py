"""pypdf's reader held to a budget of decoded bytes, for inspection; imported by the first PDF.

PDF 1.5 packs objects in compressed object streams. pypdf decodes such a stream whole when it
first needs one of its objects, parses and caches all of them, and keeps the decoded bytes with
the stream: a file of a few hundred KB whose streams inflate to 74 MB each (under pypdf's own
75 MB limit per stream) held gigabytes once every object was read. Here no stream decodes to
more than `budget` bytes, and an object stream's decoded bytes are counted against `budget`
for the whole file and dropped as soon as pypdf has parsed its objects. pypdf keeps a decoded
object stream only when get_object asked for one of its objects (the first, or one needed on
the way, such as a stream's /Length), so that is where the count is taken.

Past the budget, LimitReachedError: pypdf raises it for its own limits and lets it through the
recovery paths that swallow other errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import EncodedStreamObject, IndirectObject, PdfObject


@contextmanager
def open_pdf(file: IO[bytes], *, budget: int, max_xref_entries: int) -> Iterator[PdfReader]:
    """A strict reader of `file`, usable inside the block: no stream decodes to more than
    `budget` bytes, object streams not to more in all, and the cross-reference streams list
    at most `max_xref_entries` entries in all (pypdf keeps each entry)."""
    # pypdf's limits on one stream's decoded bytes, for each filter such a stream may use.
    with apply_configuration(
        zlib_maximum_output_length=budget,
        lzw_maximum_output_length=budget,
        run_length_maximum_output_length=budget,
        brotli_maximum_output_length=budget,
    ):
        yield _BudgetedReader(file, budget=budget, max_xref_entries=max_xref_entries)


class _BudgetedReader(PdfReader):
    def __init__(self, file: IO[bytes], *, budget: int, max_xref_entries: int) -> None:
        self._left = budget  # before PdfReader reads the file, which resolves objects
        super().__init__(file, strict=True, xref_stream_maximum_entries=max_xref_entries)

    def get_object(self, indirect_reference: int | IndirectObject) -> PdfObject | None:
        try:
            return super().get_object(indirect_reference)
        finally:
            self._spend(indirect_reference)

    def _spend(self, reference: int | IndirectObject) -> None:
        """Counts and drops what the object stream holding `reference` has just decoded."""
        number = reference if isinstance(reference, int) else reference.idnum
        packed = self.xref_objStm.get(number)
        if packed is not None:
            stream = self.cache_get_indirect_object(0, packed[0])
            if isinstance(stream, EncodedStreamObject) and stream.decoded_self is not None:
                self._left -= len(stream.decoded_self.get_data())
                stream.decoded_self = None
        if self._left < 0:  # again on every later call, should pypdf have swallowed the first
            raise LimitReachedError("the object streams decode to more than the budget")
