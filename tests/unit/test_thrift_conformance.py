"""The thrift codec held to the conformance suite: the shipped vectors (recorded from Apache
Thrift and thriftpy2 by scripts/capture_thrift_vectors.py), and the oneway calls, which get
no reply and so no local reply either."""

from __future__ import annotations

from pathlib import Path

from mesh.conformance.pytest import codec_conformance_tests

test_conformance = codec_conformance_tests("thrift")
test_conformance_oneway = codec_conformance_tests(
    "thrift", vectors=Path(__file__).with_name("thrift_vectors") / "oneway.json",
    skip=("local_reply", "robustness.fuzz"))
