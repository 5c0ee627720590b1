"""Just enough of Kubernetes' protobuf encoding to read what typed clients write.

client-go's typed clients (`kubectl certificate approve`) send bodies as
application/vnd.kubernetes.protobuf: the magic "k8s\\0", then a runtime.Unknown
{typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2}, raw being the object's own message
(k8s.io/apimachinery/pkg/runtime/serializer/protobuf). Field numbers are those of
k8s.io/api/certificates/v1/generated.proto and meta/v1 ObjectMeta.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

Fields = dict[int, list[Any]]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def fields(data: bytes) -> Fields:
    """Every field of a message by number; length-delimited ones as bytes."""
    found: Fields = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, at = data[at : at + width], at + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def _text(message: Fields, number: int) -> str:
    return bytes(message.get(number, [b""])[0]).decode()


def _message(message: Fields, number: int) -> Fields:
    return fields(message.get(number, [b""])[0])


def csr_approval(body: bytes) -> dict[str, Any]:
    """The parts of a CertificateSigningRequest the /approval subresource reads."""
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _message(unknown, 1)
    csr = _message(unknown, 2)
    meta = _message(csr, 1)  # ObjectMeta: name = 1, resourceVersion = 6
    status = _message(csr, 3)  # CertificateSigningRequestStatus: conditions = 1
    conditions = []
    for raw in status.get(1, []):
        condition = fields(raw)  # type = 1, reason = 2, message = 3, status = 6
        conditions.append(
            {
                "type": _text(condition, 1),
                "status": _text(condition, 6) or "True",
                "reason": _text(condition, 2),
                "message": _text(condition, 3),
            }
        )
    return {
        "kind": _text(type_meta, 2),
        "apiVersion": _text(type_meta, 1),
        "metadata": {"name": _text(meta, 1), "resourceVersion": _text(meta, 6)},
        "status": {"conditions": conditions},
    }
