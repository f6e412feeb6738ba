"""The web page fills in the fields the catalog marks names_subject (app.js's `subjectId` and
`filledValue`), run by Node: intake takes such a field only when it names the person the
request is about, so the page offers that person's ID rather than a blank to get wrong."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

PageScript = Callable[..., object]


def run(page_script: PageScript, call: str) -> object:
    """`call`'s value, with app.js's subjectId and filledValue defined."""
    return page_script(call, ("subjectId", "filledValue"))


@pytest.mark.parametrize(
    ("typed", "role", "subject"),
    [
        ("", "citizen", "1000000008"),  # about oneself: one's own ID
        (" 1023456781 ", "citizen", "1023456781"),  # a dependent
        ("", "establishment", ""),  # an establishment always names its worker
        ("2023456789", "establishment", "2023456789"),
    ],
)
def test_the_subject_is_the_typed_id_or_ones_own(
    page_script: PageScript, typed: str, role: str, subject: str
) -> None:
    own = "7000000005" if role == "establishment" else "1000000008"
    assert (
        run(page_script, f"subjectId({json.dumps(typed)}, {json.dumps(own)}, {json.dumps(role)})")
        == subject
    )


@pytest.mark.parametrize(
    ("current", "filled", "value"),
    [
        ("", "", "1023456781"),  # empty: filled in
        ("1000000008", "1000000008", "1023456781"),  # still what the page put: follows
        ("1012345672", "1000000008", "1012345672"),  # typed by the person: kept
    ],
)
def test_a_field_naming_the_subject_follows_it_until_typed_over(
    page_script: PageScript, current: str, filled: str, value: str
) -> None:
    call = f"filledValue({json.dumps(current)}, {json.dumps(filled)}, '1023456781')"
    assert run(page_script, call) == value


@pytest.mark.parametrize(
    ("kind", "subject", "fits"),
    [
        ("national_id", "1000000008", True),
        ("national_id", "2000000006", False),
        ("iqama_number", "2000000006", True),
        ("id_number", "1000000008", True),
        # A visitor's border number is never the signed-in person's own ID.
        ("border_number", "1000000008", False),
        ("border_number", "3000000129", True),
        ("passport_number", "1000000008", True),
        ("border_number", "", True),
    ],
)
def test_a_field_is_filled_only_with_an_id_of_its_kind(
    page_script: PageScript, kind: str, subject: str, fits: bool
) -> None:
    call = f"fits({json.dumps(kind)}, {json.dumps(subject)})"
    assert page_script(call, ("ID_FIRST_DIGITS", "fits")) is fits


@pytest.mark.parametrize(
    ("typed", "named", "sent"),
    [
        ("1023456781", "3000000129", "1023456781"),  # typed above: that person
        ("", "3000000129", "3000000129"),  # a visitor named by their border number only
        ("", "1000000008", ""),  # the account holder's own, as the page filled it
        ("", "", ""),
    ],
)
def test_the_subject_sent_is_the_typed_id_or_a_person_a_field_names(
    page_script: PageScript, typed: str, named: str, sent: str
) -> None:
    call = f"subjectToSend({json.dumps(typed)}, {json.dumps(named)}, '1000000008')"
    assert page_script(call, ("subjectToSend",)) == sent
