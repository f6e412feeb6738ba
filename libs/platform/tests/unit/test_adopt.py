"""Where a group that takes over from others starts: the slowest of them, partition by
partition, and from the start where one of them never committed."""

from __future__ import annotations

from aiokafka.structs import TopicPartition
from tawasul_platform.adopt import slowest


def test_each_partition_starts_where_the_slowest_reader_of_its_topic_stood() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    committed = {
        "access": {a0: 40, a1: 12, b0: 7},
        "sms": {a0: 25, a1: 30},
        "inapp": {a0: 41, a1: 31, TopicPartition("c", 0): 3},
    }
    readers = {"a": ("access", "sms", "inapp"), "b": ("access",), "c": ("sms", "inapp")}
    assert slowest(committed, readers) == {a0: 25, a1: 12, b0: 7}


def test_a_partition_one_reader_never_committed_is_read_from_its_start() -> None:
    a0, a1 = TopicPartition("a", 0), TopicPartition("a", 1)
    committed = {"sms": {a0: 25, a1: 30}, "email": {a0: 20, a1: -1}, "inapp": {a0: 22}}
    assert slowest(committed, {"a": ("sms", "email", "inapp")}) == {a0: 20}
    assert slowest({}, {"a": ("sms",)}) == {}
    assert slowest(committed, {"a": ()}) == {}
