"""Checks shared by the networks, the data layer and the CLIs (pure Python: ``stylegan-prepare`` starts without
importing torch)."""

from __future__ import annotations


def check_resolution(resolution: object, key: str, error: type[Exception] = ValueError, hint: str = "") -> None:
    """A resolution must be an integer power of two >= 4; the error names ``key`` and the nearest valid values."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4:
        raise error(f"{key}={resolution!r} must be an integer power of two >= 4 (e.g. {key}=32)")
    if resolution & (resolution - 1):
        lower = 1 << (resolution.bit_length() - 1)
        raise error(f"{key}={resolution} is not a power of two; use {key}={lower} or {key}={lower * 2}{hint}")
