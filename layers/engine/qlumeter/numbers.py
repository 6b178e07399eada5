"""Exact arithmetic and the one rounding rule (spec section 2): half up, shown without
trailing zeros. Values stay ``Fraction`` until a rounding step turns them into ``Decimal``."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

ZERO = Fraction(0)
ONE = Fraction(1)


def round_half_up(value: Fraction | Decimal | int, places: int = 0) -> Decimal:
    """Round ``value`` half up (away from zero on a tie) to ``places`` decimals."""
    frac = Fraction(value)
    scale = 10**places
    scaled = frac * scale
    sign = -1 if scaled < 0 else 1
    magnitude = abs(scaled)
    whole = magnitude.numerator // magnitude.denominator
    if (magnitude - whole) * 2 >= 1:
        whole += 1
    return (Decimal(sign * whole) / Decimal(scale)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP
    )


def fmt(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros: ``187.5``, ``0``, ``15000``."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def fmt4(value: Fraction | Decimal | int) -> str:
    """A value shown to 4 decimals, half up, trailing zeros dropped."""
    return fmt(round_half_up(value, 4))
