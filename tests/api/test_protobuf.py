"""The protobuf wire reader behind the reviews kubectl sends as protobuf."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubepulse.api.protobuf import MAGIC, ProtobufError, fields, strings, unwrap


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


@given(
    st.lists(
        st.tuples(st.integers(1, 2**20), st.binary(max_size=300) | st.integers(0, 2**63)),
        max_size=8,
    )
)
def test_fields_come_back_in_order_by_number(sent: list[tuple[int, bytes | int]]) -> None:
    message = b"".join(
        length_delimited(n, v) if isinstance(v, bytes) else varint(n << 3) + varint(v)
        for n, v in sent
    )
    expected: dict[int, list[bytes | int]] = {}
    for number, value in sent:
        expected.setdefault(number, []).append(value)
    assert fields(message) == expected


def test_fixed_width_fields_are_skipped() -> None:
    message = (
        varint(1 << 3 | 1) + bytes(8) + varint(2 << 3 | 5) + bytes(4) + varint(3 << 3) + b"\x07"
    )
    assert fields(message) == {3: [7]}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"\x0a\x05abc", "runs past the end"),
        (b"\x08", "truncated"),
        (b"\x08" + b"\xff" * 11, "overlong"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x02\x00", "field number 0"),
    ],
)
def test_what_is_not_a_message_is_an_error(message: bytes, error: str) -> None:
    with pytest.raises(ProtobufError, match=error):
        fields(message)


def test_strings_take_the_last_value_as_protobuf_merges() -> None:
    message = (
        length_delimited(1, b"first") + length_delimited(2, b"verb") + length_delimited(1, b"last")
    )
    assert strings(message, {1: "name", 2: "verb", 3: "absent"}) == {"name": "last", "verb": "verb"}
    with pytest.raises(ProtobufError, match="not UTF-8"):
        strings(length_delimited(1, b"\xff"), {1: "name"})


def test_the_envelope_gives_the_kind_and_the_objects_message() -> None:
    type_meta = length_delimited(1, b"authorization.k8s.io/v1") + length_delimited(2, b"Review")
    body = MAGIC + length_delimited(1, type_meta) + length_delimited(2, b"\x08\x01")
    assert unwrap(body) == ("authorization.k8s.io/v1", "Review", b"\x08\x01")
    with pytest.raises(ProtobufError, match="prefix"):
        unwrap(b'{"kind": "Review"}')
