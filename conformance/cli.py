"""``mesh conformance CODEC``: the suite from the command line, for CI jobs.

Prints one line per check (``PASS name — reason``), the failures' details
indented under their line, writes JUnit XML / JSON reports when asked, and
exits 1 when a check failed (2 when the codec or the vectors cannot be
loaded), so a vendor's CI can gate on it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_DESCRIPTION = """\
Check a codec against the codec contract (mesh.codec) with recorded traffic.
CODEC is an installed codec's name (see `mesh plugins`) or module:attribute
for one not registered yet. Without --vectors, the vectors the codec ships
in a vectors/ folder next to it are used. See docs/plugins.md."""


def add_parser(subparsers: Any) -> None:
    """Add the ``conformance`` subcommand to ``mesh``'s argument parser."""
    parser = subparsers.add_parser("conformance", help="check a codec plugin against the codec contract",
                                   description=_DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("codec", metavar="CODEC", help="codec name, or module:attribute")
    parser.add_argument("--vectors", metavar="PATH", help="vectors file (.msgpack or .json)")
    parser.add_argument("--report", metavar="FILE", action="append", default=[],
                        help="also write the report: JUnit XML if FILE ends in .xml, else JSON "
                             "(repeatable)")
    parser.add_argument("--fuzz", metavar="N", type=int, default=200,
                        help="fuzz inputs to try (default 200; 0 skips fuzzing)")
    parser.add_argument("--seed", metavar="S", type=int, default=0, help="seed for splits and fuzzing")
    parser.add_argument("--check", metavar="NAME", action="append", default=None,
                        help="run only this check (repeatable)")


def run(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args``; 0 all passed, 1 a check failed, 2 nothing ran."""
    from . import check_codec
    from .vectors import VectorError

    try:
        report = check_codec(args.codec, args.vectors, fuzz_examples=args.fuzz, seed=args.seed,
                             only=args.check)
    except (VectorError, KeyError, ImportError, AttributeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mesh conformance: {message}", file=sys.stderr)
        return 2
    print(report.text(), flush=True)
    for path in args.report:
        try:
            report.write(path)
        except OSError as exc:
            print(f"mesh conformance: cannot write report {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0 if report.passed else 1
