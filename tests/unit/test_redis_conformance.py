"""The redis codec against the conformance suite, on vectors recorded from redis-cli and redis-server."""

from mesh.conformance.pytest import codec_conformance_tests

test_conformance = codec_conformance_tests("mesh.codecs.redis:codec")
