"""What the page makes of an answer's body (app.js's `parsed`), run by Node: a proxy in front
of the gateway answers a 413 or a 502 with a page of its own, and the upload must still end in
an error shown, not a progress bar left spinning."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

PageScript = Callable[..., object]


@pytest.mark.parametrize(
    ("body", "data"),
    [
        ('{"error": {"code": "INVALID_ARGUMENT"}}', {"error": {"code": "INVALID_ARGUMENT"}}),
        ("", {}),
        ("<html><body><h1>413 Request Entity Too Large</h1></body></html>", {}),
        ("Internal Server Error", {}),
    ],
)
def test_a_body_that_is_not_json_reads_as_nothing(
    page_script: PageScript, body: str, data: object
) -> None:
    assert page_script(f"parsed({json.dumps(body)})", ("parsed",)) == data
