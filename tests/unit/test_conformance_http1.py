"""The HTTP/1.1 codec passes the conformance suite with the vectors recorded from curl and nginx.

The vectors ship in codecs/http1/vectors/ (scripts/capture_http1_vectors.py
records them), so the suite finds them by itself, as ``mesh conformance
http1`` does.
"""

from __future__ import annotations

import pytest
from mesh.conformance import check_codec
from mesh.conformance.pytest import codec_conformance_tests
from mesh.conformance.vectors import for_codec

# The module, not just the package: codecs/http1/vectors/ alone would import as a namespace.
pytest.importorskip("mesh.codecs.http1._codec", reason="the http1 codec does not import yet")
http1 = pytest.importorskip("mesh.codecs.http1")

test_http1 = codec_conformance_tests("http1", fuzz_examples=200)


def test_vectors_are_found_next_to_the_codec() -> None:
    vectors = for_codec(http1.codec)
    names = {v.name for v in vectors}
    assert {"get-hello.request", "get-hello.response", "put-expect.response"} <= names
    assert all(v.expect.events for v in vectors)


def test_the_entry_point_name_and_the_object_give_one_report() -> None:
    by_name = check_codec("http1", only=["vectors.decode", "local_reply"])
    by_object = check_codec(http1.codec, only=["vectors.decode", "local_reply"])
    assert by_name.passed and by_object.passed
    assert [r.reason for r in by_name.results] == [r.reason for r in by_object.results]
