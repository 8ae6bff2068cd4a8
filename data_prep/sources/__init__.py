"""Dataset source parsers. :data:`PARSERS` maps a source name to ``parse(root, **options) -> ParsedSource``.

One module per published layout (see each module's docstring and docs/data-layout.md#source-data-sets):
``lol``, ``reside``, ``exposure_errors``, ``ems``, ``llvip``, ``msrs``, ``m3fd``, ``roadscene``, plus the
generic ``folder`` (``<root>/{ir,vi}``) and the procedural ``demo``.
"""

from __future__ import annotations

from collections.abc import Callable

from . import demo, ems, exposure_errors, folder, llvip, lol, m3fd, msrs, reside, roadscene
from .base import FusionRecord, ParsedSource, SourceLayoutError, Stage1Record, load_image

PARSERS: dict[str, Callable[..., ParsedSource]] = {
    "lol": lol.parse,
    "reside": reside.parse,
    "exposure_errors": exposure_errors.parse,
    "ems": ems.parse,
    "llvip": llvip.parse,
    "msrs": msrs.parse,
    "m3fd": m3fd.parse,
    "roadscene": roadscene.parse,
    "folder": folder.parse,
    "demo": demo.parse,
}


def get_parser(source: str) -> Callable[..., ParsedSource]:
    """The parser of ``source``; raises ``ValueError`` listing the known sources."""
    try:
        return PARSERS[source]
    except KeyError:
        raise ValueError(f"unknown data source {source!r}; known sources: {', '.join(PARSERS)}") from None


__all__ = ["PARSERS", "FusionRecord", "ParsedSource", "SourceLayoutError", "Stage1Record", "get_parser", "load_image"]
