"""How long a sub-service takes, as the page says it (app.js's `duration`), run by Node: Arabic
agrees with the number, so "7 يوم عمل" reads as a mistake on the Arabic-first page."""

from __future__ import annotations

from collections.abc import Callable

import pytest

PageScript = Callable[..., object]


@pytest.mark.parametrize(
    ("amount", "unit", "lang", "shown"),
    [
        (1, "working_days", "ar", "يوم عمل واحد"),
        (2, "working_days", "ar", "يوما عمل"),
        (3, "working_days", "ar", "٣ أيام عمل"),
        (7, "working_days", "ar", "٧ أيام عمل"),
        (10, "working_days", "ar", "١٠ أيام عمل"),
        (15, "working_days", "ar", "١٥ يوم عمل"),
        (100, "working_days", "ar", "١٠٠ يوم عمل"),
        (1, "working_hours", "ar", "ساعة عمل واحدة"),
        (2, "working_hours", "ar", "ساعتا عمل"),
        (5, "working_hours", "ar", "٥ ساعات عمل"),
        (72, "working_hours", "ar", "٧٢ ساعة عمل"),
        (1, "working_days", "en", "1 working day"),
        (7, "working_days", "en", "7 working days"),
        (1, "working_hours", "en", "1 working hour"),
        (72, "working_hours", "en", "72 working hours"),
    ],
)
def test_a_duration_agrees_with_its_number(
    page_script: PageScript, amount: int, unit: str, lang: str, shown: str
) -> None:
    said = page_script(f"duration({amount}, '{unit}')", ("DURATIONS", "duration"), lang=lang)
    assert said == shown
