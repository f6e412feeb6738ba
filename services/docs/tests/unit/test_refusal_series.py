"""Docs' count of deletions object storage refused exists at 0 from the store's start, so that
the TawasulDocumentDeletionsRefused alert's increase() sees a pod's first refusals (a series
born at 1 has no earlier sample). Nothing else in this module refuses a deletion."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from minio.deleteobjects import DeleteObject
from prometheus_client import REGISTRY, generate_latest
from tawasul_docs.adapters.storage import MinioObjectStore, S3Client

SERIES = 'tawasul_docs_object_deletions_refused_total{code="AccessDenied"}'


@dataclass
class Refusal:
    name: str
    code: str


class Refusing:
    """A client whose object storage refuses every deletion, as a denying bucket policy does."""

    def remove_objects(self, bucket: str, objects: Iterable[DeleteObject]) -> list[Refusal]:
        return [Refusal(o.name, "AccessDenied") for o in objects]


def scraped(series: str) -> float | None:
    """The series' value as a scrape of the metrics endpoint reads it, None when absent."""
    for line in generate_latest(REGISTRY).decode().splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_refusals_are_exported_at_zero_before_the_first_then_counted() -> None:
    store = MinioObjectStore(cast(S3Client, Refusing()), "tawasul-documents")

    assert scraped(SERIES) == 0.0

    assert await store.delete_many(["documents/a", "documents/b"]) == [
        "documents/a",
        "documents/b",
    ]
    assert scraped(SERIES) == 2.0
