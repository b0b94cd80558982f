"""Conformance suite for codec plugins: is this codec fit to carry traffic?

In the manner of ``trio.testing.check_*_stream``: hand it a codec (or a
factory, an entry-point name, ``module:attr``) and recorded traffic, and it
checks the codec against the contract in :mod:`mesh.codec`::

    report = check_codec(my_codec, "tests/vectors.msgpack")
    print(report.text())          # PASS/FAIL/SKIP name — reason, one line each
    report.raise_for_failures()   # ConformanceError (an AssertionError)

Each check also runs alone (``check_splits(my_codec, vectors)``), and
:mod:`mesh.conformance.pytest` turns the suite into one pytest test per
check. ``mesh conformance CODEC`` is the same from the command line.
Writing vectors and a codec plugin: docs/plugins.md.
"""

from __future__ import annotations

from ._api import (
    check_frame_limit,
    check_fuzz,
    check_header_limit,
    check_heartbeat,
    check_local_reply,
    check_match_foreign,
    check_match_prefixes,
    check_match_pure,
    check_passthrough,
    check_request_id,
    check_shape,
    check_splits,
    check_vectors,
)
from ._match import AGAIN_BOUND, FOREIGN_SAMPLES, SNIFF_LIMIT
from ._report import CheckResult, CheckSkipped, ConformanceError, Outcome, Report
from ._suite import CHECKS, Check, check_codec, run_check
from .vectors import Expect, Vector, VectorError

__all__ = [
    "AGAIN_BOUND",
    "CHECKS",
    "FOREIGN_SAMPLES",
    "SNIFF_LIMIT",
    "Check",
    "CheckResult",
    "CheckSkipped",
    "ConformanceError",
    "Expect",
    "Outcome",
    "Report",
    "Vector",
    "VectorError",
    "check_codec",
    "check_frame_limit",
    "check_fuzz",
    "check_header_limit",
    "check_heartbeat",
    "check_local_reply",
    "check_match_foreign",
    "check_match_prefixes",
    "check_match_pure",
    "check_passthrough",
    "check_request_id",
    "check_shape",
    "check_splits",
    "check_vectors",
    "run_check",
]
