"""Budget values as people write them: `31.7GiB`, `32GB`, `46.8B` parameters, `2s` / `40ms`, `1.5k` tokens/s.

Every parser raises `LayoutError` naming the option, the text and what was expected (CLI exit 2).
"""
from __future__ import annotations

import math
import re

from designer.layout import LayoutError

_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
BYTE_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
              "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}
COUNT_UNITS = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
TIME_UNITS = {"": 1, "s": 1, "ms": 1e-3, "us": 1e-6, "min": 60}


def _parse(text: object, units: dict[str, float], what: str, example: str, key: str | None) -> float:
    s = str(text).strip().replace("_", "").replace(",", "")
    m = re.fullmatch(_NUMBER + r"\s*([A-Za-z]*)", s)
    unit = m.group(2).lower() if m else None
    if not m or unit not in units:
        raise LayoutError(f"cannot read {text!r} as {what}; expected a number with an optional unit "
                          f"({', '.join(u for u in units if u)}), e.g. {example}", key=key)
    value = float(m.group(1)) * units[unit]
    if not math.isfinite(value) or value <= 0:
        raise LayoutError(f"{what} must be a positive finite number, got {text!r}", key=key)
    return value


def parse_bytes(text: object, key: str | None = None) -> float:
    """'31.7GiB' -> 34037615820.8; plain numbers are bytes."""
    return _parse(text, BYTE_UNITS, "a memory size", "31.7GiB or 32GB", key)


def parse_count(text: object, key: str | None = None) -> float:
    """'46.8B' -> 4.68e10; '1.5k' -> 1500."""
    return _parse(text, COUNT_UNITS, "a count", "46.8B or 1.5k", key)


def parse_seconds(text: object, key: str | None = None) -> float:
    """'2s' -> 2.0, '40ms' -> 0.04; plain numbers are seconds."""
    return _parse(text, TIME_UNITS, "a duration", "2s or 40ms", key)
