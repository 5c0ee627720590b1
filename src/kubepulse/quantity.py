"""Kubernetes resource quantities (apimachinery pkg/api/resource), read and written."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P"}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> float:
    """A quantity such as "100m", "1Gi", "2", "1e3" as a number of base units."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise QuantityError(f"invalid quantity {text!r}")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
        if suffix[:1] in ("e", "E"):
            value *= Decimal(10) ** int(suffix[1:])
        elif suffix in _SUFFIX:
            value *= _SUFFIX[suffix]
        else:
            raise QuantityError(f"invalid quantity {text!r}: unknown suffix {suffix!r}")
    except InvalidOperation as err:
        raise QuantityError(f"invalid quantity {text!r}") from err
    return float(value)


def format_nanocores(nanocores: int) -> str:
    """CPU as metrics-server writes it: NewScaledQuantity(n, -9) in canonical DecimalSI.

    Canonical form keeps an integer mantissa with the largest power-of-1000 suffix
    ("487558164n", "1500u", "250m", "2").
    """
    if nanocores == 0:
        return "0"
    value, exponent = nanocores, -9
    while value % 1000 == 0 and exponent < 15:
        value //= 1000
        exponent += 3
    return f"{value}{_DECIMAL_SUFFIXES[exponent]}"


def format_bytes(count: int) -> str:
    """Memory as metrics-server writes it: BinarySI, e.g. "732212Ki", or bytes."""
    value, power = count, 0
    while value and value % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
        value //= 1024
        power += 1
    return f"{value}{_BINARY_SUFFIXES[power]}"
