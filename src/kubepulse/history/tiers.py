"""History tiers: how finely samples are kept, and for how long.

The raw tier holds every scraped sample; each coarser tier holds one row per series and
bucket (the sum, count and maximum of the samples in it, so that averages of averages
stay exact and buckets written in two parts merge). Defaults follow what dashboards
offer: the last hour in full, a day at one-minute and a month at 15-minute resolution.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


@dataclass(frozen=True, slots=True)
class Tier:
    width: int
    """Bucket width in seconds; 0 for the raw tier (every sample)."""
    retention: int
    """Seconds of data kept, counted back from the newest sample seen."""

    @property
    def table(self) -> str:
        # Named after the width, not the position, so that changing the configured
        # tiers between restarts never mixes resolutions in one table.
        return "samples_raw" if self.width == 0 else f"samples_{self.width}s"

    @property
    def label(self) -> str:
        return "raw" if self.width == 0 else format_duration(self.width)


DEFAULT_TIERS = (Tier(0, 3600), Tier(60, 86400), Tier(900, 30 * 86400))


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r}: want a number and one of s m h d w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0 and seconds >= _UNITS[unit]:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_tiers(text: str) -> tuple[Tier, ...]:
    """`raw=1h,1m=24h,15m=30d`: the raw tier first, then widths that grow.

    Each width must divide the next, so that a coarse bucket never straddles two finer
    ones, and retention must grow with the width (a coarse tier is the longer history).
    """
    tiers: list[Tier] = []
    for part in text.split(","):
        width_text, sep, retention_text = part.partition("=")
        if not sep:
            raise ValueError(f"invalid tier {part!r}: want WIDTH=RETENTION, e.g. 1m=24h")
        width = 0 if width_text.strip() == "raw" else parse_duration(width_text)
        tiers.append(Tier(width, parse_duration(retention_text)))
    check_tiers(tiers)
    return tuple(tiers)


def check_tiers(tiers: list[Tier] | tuple[Tier, ...]) -> None:
    if not tiers or tiers[0].width != 0:
        raise ValueError("the first tier must be raw (raw=RETENTION)")
    for finer, coarser in itertools.pairwise(tiers):
        if coarser.width <= 0 or (finer.width and coarser.width % finer.width):
            raise ValueError(
                f"tier width {format_duration(coarser.width)} must be a multiple of the"
                f" finer {finer.label}"
            )
        if coarser.retention < finer.retention:
            raise ValueError(f"tier {coarser.label} keeps less than the finer {finer.label}")
