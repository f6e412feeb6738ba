import itertools
import random
import re
import secrets

import pytest
from tawasul_platform.request_numbers import (
    MAX_NEAR_MISSES,
    damm_digit,
    near_misses,
    new_request_number,
    parse_request_number,
)

CANONICAL = re.compile(r"TW[0-9]{9}")
SAMPLES = [
    "TW482913578",
    "TW000000000",
    "TW999999999",
    *[new_request_number(random.Random(seed).randrange) for seed in range(5)],
]


def single_substitutions(number: str) -> list[str]:
    return [
        number[:index] + digit + number[index + 1 :]
        for index in range(2, len(number))
        for digit in "0123456789"
        if digit != number[index]
    ]


def adjacent_transpositions(number: str) -> list[str]:
    return [
        number[:index] + number[index + 1] + number[index] + number[index + 2 :]
        for index in range(2, len(number) - 1)
        if number[index] != number[index + 1]
    ]


@pytest.mark.parametrize(
    ("digits", "check"),
    [("572", "4"), ("5724", "0"), ("", "0"), ("00000000", "0"), ("48291357", "8")],
)
def test_damm_digit(digits: str, check: str) -> None:
    assert damm_digit(digits) == check


@pytest.mark.parametrize("number", SAMPLES)
def test_samples_are_valid(number: str) -> None:
    assert CANONICAL.fullmatch(number)
    assert parse_request_number(number) == number


@pytest.mark.parametrize("number", SAMPLES)
def test_every_single_digit_substitution_is_caught(number: str) -> None:
    typos = single_substitutions(number)
    assert len(typos) == 9 * 9
    assert [typo for typo in typos if parse_request_number(typo)] == []


@pytest.mark.parametrize("number", SAMPLES)
def test_every_adjacent_transposition_is_caught(number: str) -> None:
    typos = adjacent_transpositions(number)
    assert [typo for typo in typos if parse_request_number(typo)] == []


def test_transpositions_are_caught_for_every_pair_of_digits() -> None:
    for first in "0123456789":
        for second in "0123456789":
            if first != second:
                body = f"4829{first}{second}57"
                number = "TW" + body + damm_digit(body)
                for typo in adjacent_transpositions(number):
                    assert parse_request_number(typo) is None


@pytest.mark.parametrize("seed", range(5))
def test_new_numbers_are_canonical(seed: int) -> None:
    number = new_request_number(random.Random(seed).randrange)
    assert CANONICAL.fullmatch(number)
    assert damm_digit(number[2:]) == "0"


def test_production_randomness_gives_canonical_numbers() -> None:
    assert CANONICAL.fullmatch(new_request_number(secrets.randbelow))


@pytest.mark.parametrize(
    ("drawn", "number"), [(0, "TW000000000"), (10**8 - 1, "TW999999999"), (48291357, "TW482913578")]
)
def test_numbers_are_zero_padded_draws_over_eight_digits(drawn: int, number: str) -> None:
    bounds: list[int] = []

    def randbelow(bound: int) -> int:
        bounds.append(bound)
        return drawn

    assert new_request_number(randbelow) == number
    assert bounds == [10**8]


def test_consecutive_numbers_tell_nothing_about_the_next() -> None:
    rng = random.Random(20261122)
    bodies = [int(new_request_number(rng.randrange)[2:10]) for _ in range(1000)]
    steps = [after - before for before, after in itertools.pairwise(bodies)]
    assert len(set(bodies)) == len(bodies)
    assert not {-1, 0, 1} & set(steps)
    assert len(set(steps)) == len(steps)


@pytest.mark.parametrize(
    "typed",
    [
        "TW482913578",
        "tw482913578",
        " Tw 4829 1357 8 ",
        "TW-4829-1357-8",
        "TW–4829–1357–8",
        "482913578",
        "4829 135 78",
    ],
)
def test_parse_accepts_what_people_type(typed: str) -> None:
    assert parse_request_number(typed) == "TW482913578"


@pytest.mark.parametrize("typed", ["٤٨٢٩١٣٥٧٨", "tw ٤٨٢ ٩١٣ ٥٧٨", "TW۴۸۲۹۱۳۵۷۸", "TW48291357٨"])
def test_other_scripts_digits_are_no_request_number(typed: str) -> None:
    # Refused, not converted: callers answer fields.FOREIGN_DIGITS for them.
    assert parse_request_number(typed) is None
    assert near_misses(typed) == []


@pytest.mark.parametrize(
    "typed",
    [
        "TW482913570",
        "TW482913579",
        "TW48291357",
        "TW4829135780",
        "XX482913578",
        "T482913578",
        "TW48291357A",
        "TW 4829\x00 13578",
        "TWTW482913578",
        "",
        "TW",
    ],
)
def test_parse_rejects_anything_else(typed: str) -> None:
    assert parse_request_number(typed) is None


def check_suggestions(suggestions: list[str]) -> None:
    assert suggestions == sorted(set(suggestions))
    assert len(suggestions) <= MAX_NEAR_MISSES
    assert all(parse_request_number(number) == number for number in suggestions)


@pytest.mark.parametrize("number", SAMPLES)
def test_near_misses_find_the_number_behind_a_one_digit_typo(number: str) -> None:
    for typo in single_substitutions(number):
        suggestions = near_misses(typo)
        check_suggestions(suggestions)
        assert number in suggestions


@pytest.mark.parametrize("number", SAMPLES)
def test_near_misses_find_the_number_behind_a_transposition(number: str) -> None:
    for typo in adjacent_transpositions(number):
        suggestions = near_misses(typo.lower())
        check_suggestions(suggestions)
        assert number in suggestions


@pytest.mark.parametrize("number", SAMPLES)
def test_near_misses_append_a_missing_check_digit(number: str) -> None:
    assert near_misses(number[:-1]) == [number]
    assert near_misses(number[2:-1]) == [number]


def test_near_misses_read_what_people_type() -> None:
    assert near_misses("tw 4829-1357") == ["TW482913578"]
    assert "TW482913578" in near_misses("482913570")


@pytest.mark.parametrize(
    "typed", ["TW482913578", "", "TW", "TW4829135", "TW4829135780", "not a number", "XX48291357"]
)
def test_near_misses_has_nothing_for_valid_or_malformed_input(typed: str) -> None:
    assert near_misses(typed) == []
