"""Just enough protobuf to read the review bodies kubectl sends as protobuf.

kubectl sends built-in kinds it creates (`kubectl auth can-i`: a SelfSubjectAccessReview)
as `application/vnd.kubernetes.protobuf`, whatever the server's discovery says. Such a
body is the 4 bytes "k8s\\0" and a runtime.Unknown message (apimachinery
runtime/serializer/protobuf): typeMeta (1: apiVersion, 2: kind), raw (2), the object's own
message. kubepulse answers in JSON, which kubectl also accepts.

Protocol only: a reader of the protobuf wire format (varints and length-delimited
fields; https://protobuf.dev/programming-guides/encoding/) and the envelope.
"""

from __future__ import annotations

__all__ = ["MAGIC", "ProtobufError", "fields", "strings", "unwrap"]

MAGIC = b"k8s\x00"
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """Not a protobuf message we can read."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Every field of one message, by number, in order: bytes for length-delimited
    fields (strings, messages), ints for varints; fixed-width fields are skipped."""
    found: dict[int, list[bytes | int]] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == _VARINT:
            value, at = _varint(data, at)
        elif wire == _LEN:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ProtobufError("a field runs past the end of the message")
            value, at = data[at : at + size], at + size
        elif wire in (_I64, _I32):
            at += 8 if wire == _I64 else 4
            continue
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if number == 0:
            raise ProtobufError("field number 0")
        found.setdefault(number, []).append(value)
    if at != len(data):
        raise ProtobufError("a field runs past the end of the message")
    return found


def strings(message: bytes, names: dict[int, str]) -> dict[str, str]:
    """The named string fields of a message (the last of each, as protobuf merges)."""
    found = fields(message)
    out: dict[str, str] = {}
    for number, name in names.items():
        values = [v for v in found.get(number, []) if isinstance(v, bytes)]
        if values:
            try:
                out[name] = values[-1].decode()
            except UnicodeDecodeError as err:
                raise ProtobufError(f"{name} is not UTF-8") from err
    return out


def unwrap(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, the object's message) of a Kubernetes protobuf body."""
    if not body.startswith(MAGIC):
        raise ProtobufError("no Kubernetes protobuf prefix")
    unknown = fields(body[len(MAGIC) :])
    type_meta = next((v for v in unknown.get(1, []) if isinstance(v, bytes)), b"")
    meta = strings(type_meta, {1: "apiVersion", 2: "kind"})
    raw = next((v for v in unknown.get(2, []) if isinstance(v, bytes)), b"")
    return meta.get("apiVersion", ""), meta.get("kind", ""), raw
