"""The dubbo codec against the conformance suite, on vectors recorded from the Node provider
and the Node and Python consumers (scripts/capture_dubbo_vectors.py)."""

from pathlib import Path

from mesh.conformance.pytest import codec_conformance_tests

LARGE = Path(__file__).parent / "dubbo_vectors" / "large.json"

test_conformance = codec_conformance_tests("mesh.codecs.dubbo:codec")
# Frames of 32 KiB and more, kept apart to keep the main vector file small.
test_conformance_large = codec_conformance_tests("mesh.codecs.dubbo:codec", vectors=LARGE)
