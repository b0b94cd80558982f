"""The conformance suite as pytest tests, one per check, for a codec vendor's own suite.

    # tests/test_conformance.py
    from mesh.conformance.pytest import codec_conformance_tests

    test_conformance = codec_conformance_tests(
        "my_codec:codec", vectors="tests/vectors/my_codec.msgpack")

pytest then collects ``test_conformance[decode.splits]`` and so on: a
failing check fails its own test with the suite's message (no traceback
into the suite), a check that does not apply is skipped with its reason.
The codec is resolved and the vectors loaded once, when the first of these
tests runs, so an import error shows up as a test error, not at collection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from ._report import CheckSkipped, ConformanceError
from ._subject import CodecLike, Subject, VectorsLike, make_subject
from ._suite import CHECKS, run_check

__all__ = ["codec_conformance_tests"]


def _params(skip: Iterable[str], xfail: Mapping[str, str]) -> list[Any]:
    names = {c.name for c in CHECKS}
    unknown = (set(skip) | set(xfail)) - names
    if unknown:
        raise ValueError(f"no checks named {sorted(unknown)}; checks: {', '.join(sorted(names))}")
    params = []
    for check in CHECKS:
        if check.name in skip:
            continue
        marks = [pytest.mark.xfail(reason=xfail[check.name], raises=ConformanceError, strict=True)] \
            if check.name in xfail else []
        params.append(pytest.param(check.name, id=check.name, marks=marks))
    return params


def codec_conformance_tests(codec: CodecLike, vectors: VectorsLike = None, *, fuzz_examples: int = 200,
                            seed: int = 0, skip: Iterable[str] = (),
                            xfail: Mapping[str, str] | None = None) -> Callable[[str], None]:
    """A pytest test function parametrized over every check; assign it to a ``test_*`` name.

    ``codec`` and ``vectors`` are what :func:`mesh.conformance.check_codec`
    takes. ``skip`` leaves checks out; ``xfail`` maps a check to the reason
    it is known to fail (strict: the test fails once the check passes, so
    the entry is removed when the codec is fixed).
    """
    subject: list[Subject] = []

    def resolved() -> Subject:
        if not subject:
            subject.append(make_subject(codec, vectors, seed=seed, fuzz_examples=fuzz_examples))
        return subject[0]

    @pytest.mark.parametrize("check", _params(skip, xfail or {}))
    def test_conformance(check: str) -> None:
        __tracebackhide__ = True  # pytest: start the traceback in the vendor's test
        try:
            run_check(check, resolved())
        except CheckSkipped as exc:
            pytest.skip(str(exc))
        except ConformanceError as exc:
            # Re-raised without the frames of the suite: the message has what matters.
            raise ConformanceError(str(exc), exc.check, exc.contract) from None

    return test_conformance
