"""Logging for the ``geoproc`` logger: one stderr handler, a level from ``-v`` or ``GEOPROC_LOG_LEVEL``.

Library modules only create loggers (``log = logging.getLogger(__name__)``); a program (the CLI, a
batch script, a notebook) calls :func:`configure_logging` once. Records go to stderr, never stdout, so
``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import logging
import sys

from .errors import UserError

LOGGER = "geoproc"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it; the property wins
        pass


def parse_level(text: str | int | None, default: int = logging.WARNING) -> int:
    """A logging level from a name (``debug``, ``INFO``) or a number; None gives ``default``."""
    if text is None or text == "":
        return default
    if isinstance(text, int) or str(text).isdigit():
        return int(text)
    name = str(text).strip().upper()
    if name not in LEVELS:
        raise UserError(f"Unknown log level {text!r}; use one of {', '.join(LEVELS)}.")
    return getattr(logging, name)


def level_for(verbosity: int, configured: str | int | None) -> int:
    """``-v`` gives INFO and ``-vv`` DEBUG; without ``-v`` the configured level (else WARNING) holds."""
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1:
        return logging.INFO
    return parse_level(configured)


def configure_logging(level: int | str = logging.WARNING) -> logging.Logger:
    """Send the ``geoproc`` logger's records at ``level`` and above to stderr; safe to call again."""
    logger = logging.getLogger(LOGGER)
    for h in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    logger.setLevel(parse_level(level) if isinstance(level, str) else level)
    return logger
