"""The `more:` line's command for the next page: typed back, it is the same command."""

from __future__ import annotations

import shlex

from tawasul_review_cli.cli import Command


def test_the_next_page_command_splits_back_into_what_was_given() -> None:
    again = Command(
        "search",
        ["فاطمة o'neil; rm -rf ~"],
        [("--kind", "text"), ("--state", "queued"), ("--state", "claimed"), ("--page-size", 0)],
    )
    typed = shlex.join(again.typed("tok/en=="))
    assert shlex.split(typed) == [
        "tawasul-review-cli", "search", "--kind", "text", "--state", "queued",
        "--state", "claimed", "--page-token", "tok/en==", "فاطمة o'neil; rm -rf ~",
    ]  # fmt: skip


def test_an_argument_that_looks_like_an_option_comes_after_a_double_dash() -> None:
    again = Command("quality", ["-x"], [("--all", True), ("--page-size", 5)])
    assert again.typed("t") == [
        "tawasul-review-cli", "quality", "--all", "--page-size", "5", "--page-token", "t", "--",
        "-x",
    ]  # fmt: skip
    assert Command("queue", ["passports"], [("--all", False)]).typed("t")[2:] == [
        "--page-token", "t", "passports",
    ]  # fmt: skip


def test_the_options_typed_before_the_command_come_before_it() -> None:
    before = (("--address", "review.example:443"), ("--tls-ca", "office ca.pem"))
    again = Command("queue", ["passports"], [("--page-size", 5)], before)
    assert shlex.split(shlex.join(again.typed("t"))) == [
        "tawasul-review-cli", "--address", "review.example:443", "--tls-ca", "office ca.pem",
        "queue", "--page-size", "5", "--page-token", "t", "passports",
    ]  # fmt: skip
