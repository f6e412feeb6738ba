"""events.timestamp: the Timestamp protobuf's own FromDatetime, without its time tuple."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tawasul_platform.events import timestamp

RIYADH = timezone(timedelta(hours=3))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 4, 10, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 12, 4, 13, 30, 15, 999999, tzinfo=RIYADH),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1938, 3, 3, 6, 0, 0, 1, tzinfo=RIYADH),
    ],
)
def test_a_moment_is_the_timestamp_from_datetime_makes_of_it(moment: datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(moment.astimezone(UTC))

    stamp = timestamp(moment)

    assert (stamp.seconds, stamp.nanos) == (expected.seconds, expected.nanos)
    assert stamp.ToDatetime(tzinfo=UTC) == moment
