"""Ordinary mistakes on the command line end in one `error: …` line and exit status 1, before
anything is called (port 1: a call would end in UNAVAILABLE instead)."""

from __future__ import annotations

import sys

import pytest
from tawasul_review_cli.cli import PROG, app, main
from typer.testing import CliRunner

# In English: the CLI's own errors are in Arabic unless it is asked (as the service's are).
NOWHERE = ["--address", "127.0.0.1:1", "--language", "en"]
REQUEST_ID = "6f1c8f5e-0000-4000-8000-000000000000"
# A note typed in a Windows-1256 file and passed as "$(cat note.txt)": Python keeps the bytes
# that are not UTF-8 as lone surrogates.
CP1256 = "مرحبا".encode("cp1256").decode("utf-8", "surrogateescape")
CONVERT = "is not UTF-8 text: convert it first, e.g. iconv -f cp1256 -t utf-8"
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


@pytest.mark.parametrize(
    ("args", "number"),
    [
        (["note", REQUEST_ID, CP1256], 3),
        (["search", "--since", "2026-01-01", CP1256], 4),
        (["reject", REQUEST_ID, "--reason", "x", "--message", CP1256], 6),
    ],
)
def test_an_argument_that_is_not_utf8_is_named(
    args: list[str],
    number: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Refused before anything reads the command line: no token or address is needed.
    monkeypatch.setattr(sys, "argv", [PROG, *args])
    monkeypatch.setenv("TAWASUL_LANGUAGE", "en")
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: argument {number} {CONVERT}\n"


@pytest.mark.parametrize(
    ("args", "env"),
    [
        # What main() would have refused, given to the app itself.
        (["--token", "t", *NOWHERE, "note", REQUEST_ID, CP1256], {}),
        (["--token", "t", "reasons"], {"TAWASUL_REVIEW_ADDRESS": f"127.0.0.1:{CP1256}"}),
    ],
)
def test_a_value_that_is_not_utf8_is_refused_without_a_traceback(
    args: list[str], env: dict[str, str]
) -> None:
    result = CliRunner().invoke(app, args, env={**env, "TAWASUL_LANGUAGE": "en"})
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: an argument or a TAWASUL_ setting {CONVERT}\n",
    )


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["next"], {}, "لا رمز للمراجع: مرّر --token أو اضبط TAWASUL_REVIEWER_TOKEN"),
        (
            ["next"],
            {"TAWASUL_LANGUAGE": "en"},
            "no reviewer token: pass --token or set TAWASUL_REVIEWER_TOKEN",
        ),
        (
            ["--token", "t", "search", "--until", "9999-12-31"],
            {},
            "--until: تاريخ من 2000-01-02 إلى 2099-12-31",
        ),
        (
            ["--token", "t", "--language", "ar", "queue-mode", "passports.default", "push"],
            {"TAWASUL_LANGUAGE": "en"},
            "mode: pull أو round-robin أو least-loaded",
        ),
    ],
)
def test_the_clis_own_errors_are_in_the_language_asked_for(
    args: list[str], env: dict[str, str], said: str
) -> None:
    result = CliRunner().invoke(app, ["--address", "127.0.0.1:1", *args], env=env)
    assert (result.exit_code, result.stderr) == (1, f"error: {said}\n")


@pytest.mark.parametrize(
    ("before", "said"),
    [
        ([], "الوسيط 3 ليس نصًا بترميز UTF-8: حوّله أولًا، مثلًا iconv -f cp1256 -t utf-8"),
        (["--language=en"], f"argument 4 {CONVERT}"),
        (["--language", "en"], f"argument 5 {CONVERT}"),
    ],
)
def test_an_argument_that_is_not_utf8_is_named_in_the_language_asked_for(
    before: list[str],
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "argv", [PROG, *before, "note", REQUEST_ID, CP1256])
    monkeypatch.delenv("TAWASUL_LANGUAGE", raising=False)
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().err == f"error: {said}\n"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # Past an int32, the request could not even be built: a traceback once.
        (["request-info", REQUEST_ID, "--missing", "other:x:y", "--within", "3000000000"], "30"),
        (["request-info", REQUEST_ID, "--missing", "other:x:y", "--within", "31"], "30"),
        (["request-info", REQUEST_ID, "--missing", "other:x:y", "--within", "-1"], "0"),
        (["reviewer-put", "E100", "--capacity", "3000000000"], "500"),
        (["reviewer-put", "E100", "--capacity", "501"], "500"),
        (["reviewer-put", "E100", "--capacity", "-1"], "0"),
    ],
)
def test_a_number_review_does_not_take_is_a_usage_error_naming_its_bound(
    args: list[str], said: str
) -> None:
    result = CliRunner().invoke(app, ["--token", "t", *NOWHERE, *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{args[-2]}'" in result.stderr
    assert f"than or equal to {said}" in result.stderr


def test_the_messages_language_after_reviewer_put_is_refused_not_taken_for_what_they_read() -> None:
    # The reviewer's languages are --reads (-l): --language is the CLI's own option, before
    # the command, and refused after it as after any other command.
    result = CliRunner().invoke(
        app,
        ["--token", "t", *NOWHERE, "reviewer-put", "E100", "--language", "en"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert "No such option: --language" in result.stderr
