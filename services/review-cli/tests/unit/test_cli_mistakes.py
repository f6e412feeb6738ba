"""Ordinary mistakes on the command line end in one `error: …` line and exit status 1, before
anything is called (port 1: a call would end in UNAVAILABLE instead)."""

from __future__ import annotations

import pytest
from tawasul_review_cli.cli import app
from typer.testing import CliRunner

NOWHERE = ["--address", "127.0.0.1:1"]
NOT_A_TOKEN = (
    "error: the reviewer token is not a token: only printable ASCII, as the provider gave it\n"
)


@pytest.mark.parametrize(
    ("option", "date"),
    [
        ("--until", "9999-12-31"),
        ("--since", "0001-01-01"),
        # Riyadh's midnight of 2000-01-01 is 1999-12-31 in UTC, before what review takes.
        ("--since", "2000-01-01"),
        ("--until", "2100-01-01"),
    ],
)
def test_a_date_review_does_not_take_is_refused_with_the_dates_it_takes(
    option: str, date: str
) -> None:
    result = CliRunner().invoke(app, ["--token", "t", *NOWHERE, "search", option, date])
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: {option}: a date from 2000-01-02 to 2099-12-31\n",
    )


@pytest.mark.parametrize("token", ["eyJ…abc.def", "eyJ.abc\r.def", "eyJ.abc.def\x7f", "تو.كن"])
def test_a_token_that_is_not_printable_ascii_is_refused(token: str) -> None:
    result = CliRunner().invoke(app, [*NOWHERE, "next"], env={"TAWASUL_REVIEWER_TOKEN": token})
    assert (result.exit_code, result.stderr) == (1, NOT_A_TOKEN)


def test_a_token_of_blanks_is_no_token() -> None:
    result = CliRunner().invoke(app, ["--token", " \r\n", *NOWHERE, "next"])
    assert (result.exit_code, result.stderr) == (
        1,
        "error: no reviewer token: pass --token or set TAWASUL_REVIEWER_TOKEN\n",
    )
