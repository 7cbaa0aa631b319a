"""Byte counts as people read them."""

from __future__ import annotations

_UNITS = ("KB", "MB", "GB", "TB")


def human_bytes(n: int) -> str:
    """A byte count in decimal units, as the server's messages and the CLI print it.

    Parameters
    ----------
    n : int
        A number of bytes.

    Returns
    -------
    str
        ``"NNN B"`` below 1000, else one decimal in KB, MB, GB or TB (powers
        of 1000): ``4500000`` gives ``"4.5 MB"``.

    Examples
    --------
    >>> human_bytes(999), human_bytes(1000), human_bytes(4_500_000)
    ('999 B', '1.0 KB', '4.5 MB')

    """
    n = int(n)
    if abs(n) < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in _UNITS[:-1]:
        # Compare the rounded figure, so 999_999 reads "1.0 MB", not "1000.0 KB"
        if abs(round(value, 1)) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} {_UNITS[-1]}"
