"""An attachment's local name: the applicant's, made safe, and short enough to be written."""

from __future__ import annotations

from pathlib import Path

import pytest
from tawasul_review_cli.cli import NAME_MAX, PART, safe_file_name

NAMES = {
    # Docs keeps up to 255 characters of the applicant's name.
    "latin": "passport scan of the applicant taken at the office " * 3 + "final.pdf",
    # 94 characters, 278 bytes in UTF-8.
    "chinese": "护照扫描件" * 18 + ".pdf",
    "arabic": "صورة جواز السفر الخاصة بمقدم الطلب " * 5 + ".pdf",
}


@pytest.mark.parametrize("which", NAMES)
def test_a_long_name_is_shortened_before_its_extension_to_fit_with_part(
    which: str, tmp_path: Path
) -> None:
    filename = NAMES[which]
    name = safe_file_name(filename, "d1")
    assert name.endswith(".pdf")
    assert len((name + PART).encode()) <= NAME_MAX
    # Its start is kept, whole characters only.
    assert filename.startswith(name.removesuffix(".pdf"))
    (tmp_path / (name + PART)).write_bytes(b"%PDF")  # the file system takes it


@pytest.mark.parametrize(
    ("filename", "name"),
    [
        ("scan.pdf", "scan.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..", "d1"),
        # What follows a long last dot is no extension: cut with the rest.
        ("a." + "x" * 300, "a." + "x" * (NAME_MAX - len(PART) - 2)),
    ],
)
def test_a_name_that_fits_is_only_made_safe(filename: str, name: str) -> None:
    assert safe_file_name(filename, "d1") == name
