"""The load's synthetic citizens and residents: valid IDs, never the same one twice in a
process."""

from __future__ import annotations

from tawasul_devstack.journey import _luhn_valid, new_citizen, new_resident


def test_synthetic_citizens_are_valid_and_never_repeat() -> None:
    # Past the birthday bound of 10^7 random draws (a repeat was likely by about 4,000).
    ids = [new_citizen() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("19") and len(i) == 10 and _luhn_valid(i) for i in ids)


def test_synthetic_residents_are_valid_iqama_numbers_and_never_repeat() -> None:
    ids = [new_resident() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("28") and len(i) == 10 and _luhn_valid(i) for i in ids)
