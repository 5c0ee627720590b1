"""Just enough of Kubernetes' protobuf encoding to read what typed clients write.

client-go's typed clients (`kubectl certificate approve`) send bodies as
application/vnd.kubernetes.protobuf: the magic "k8s\\0", then a runtime.Unknown
{typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2}, raw being the object's own message
(k8s.io/apimachinery/pkg/runtime/serializer/protobuf). Field numbers are those of
k8s.io/api/certificates/v1/generated.proto and meta/v1 ObjectMeta.
"""

from __future__ import annotations

from typing import Any

from kubepulse.api.protobuf import MAGIC, fields  # the product's wire reader

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

Fields = dict[int, list[bytes | int]]


def _bytes(message: Fields, number: int) -> bytes:
    value = message.get(number, [b""])[0]
    return value if isinstance(value, bytes) else b""


def _text(message: Fields, number: int) -> str:
    return _bytes(message, number).decode()


def _message(message: Fields, number: int) -> Fields:
    return fields(_bytes(message, number))


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
        # type = 1, reason = 2, message = 3, status = 6
        condition = fields(raw if isinstance(raw, bytes) else b"")
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
