"""Notification results for the dashboards: the last hour's deliveries by channel and status,
read from the database on a timer (the platform's `every`) and served with the platform's
metrics.

A gauge read from the table rather than a counter the handlers bump: a batch's deliveries are
settled in transactions that may roll back and be applied again one event at a time, receipts
settle them later in another loop, and any replica may do either. The table counts each
delivery once, in its latest status, whatever was replayed; every replica reports the same
figures, so a dashboard takes their max, not their sum.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Gauge
from sqlalchemy import func, select
from tawasul_platform.sql import Database

from tawasul_notify.adapters.tables import deliveries
from tawasul_notify.domain.model import Channel, DeliveryStatus

WINDOW = timedelta(hours=1)
DELIVERIES = Gauge(
    "tawasul_notify_deliveries_last_hour",
    "Deliveries made in the last hour by channel and their status now: pending (not sent "
    "yet), sent (taken by the SMS gateway or the mail server), delivered, failed",
    ["channel", "status"],
)

_LAST_HOUR = (
    select(deliveries.c.channel, deliveries.c.status, func.count())
    .where(deliveries.c.created_at > func.now() - WINDOW)
    .group_by(deliveries.c.channel, deliveries.c.status)
)


class DeliveryGauge:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def __call__(self) -> bool:
        async with self._database.connection() as driver:
            rows = await self._database.fetch(driver, _LAST_HOUR)
        counts = {(channel, status): count for channel, status, count in rows}
        # Every pair, 0 included: a status that ceased reads 0, not its last value.
        for channel in Channel:
            for status in DeliveryStatus:
                DELIVERIES.labels(channel.value, status.value).set(counts.get((channel, status), 0))
        return False
