"""The ways a history file gets broken, for the tests that check it is set aside."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest


def random_bytes_in_the_middle(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(size // 3)
        f.write(random.Random(0).randbytes(size // 3))


def truncated_to_half(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def junk_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"this is not SQLite" * 10)


def a_directory(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "something").write_text("kept")


def parametrize_damage() -> pytest.MarkDecorator:
    """@parametrize("damage", ...) over every way above."""
    damages: list[Callable[[Path], None]] = [
        random_bytes_in_the_middle,
        truncated_to_half,
        junk_header,
        a_directory,
    ]
    return pytest.mark.parametrize(
        "damage", damages, ids=["random-bytes", "truncated", "junk-header", "directory"]
    )
