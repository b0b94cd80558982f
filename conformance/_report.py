"""Check outcomes, the report of a whole run, and its JSON / JUnit XML forms."""

from __future__ import annotations

import enum
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CheckResult", "CheckSkipped", "ConformanceError", "Outcome", "Report"]


class ConformanceError(AssertionError):
    """A codec broke its contract.

    An AssertionError so that pytest shows it as a failed assertion. The
    first line of the message is the one-line reason; the lines after it
    show the bytes and events involved.
    """

    def __init__(self, message: str, check: str = "", contract: str = "") -> None:
        super().__init__(message)
        self.check = check
        self.contract = contract

    @property
    def reason(self) -> str:
        """The first line of the message."""
        return str(self).split("\n", 1)[0]


class CheckSkipped(Exception):
    """A check does not apply to this codec or these vectors; the message says why."""


class Outcome(enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def label(self) -> str:
        return {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}[self.value]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    ``contract`` names the text the check enforces (``mesh.codec.Codec.match``);
    ``message`` is the full failure text (reason, bytes, events), empty
    unless the check failed.
    """

    name: str
    outcome: Outcome
    reason: str
    contract: str
    message: str = ""
    duration: float = 0.0

    @property
    def line(self) -> str:
        """``PASS name — reason``."""
        return f"{self.outcome.label} {self.name} — {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome.value, "reason": self.reason,
                "contract": self.contract, "message": self.message,
                "duration": round(self.duration, 4)}


@dataclass(slots=True)
class Report:
    """Every check's result for one codec, in the order they ran."""

    codec: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed (skips do not count against the codec)."""
        return not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    def summary(self) -> str:
        counts = {o: sum(1 for r in self.results if r.outcome is o) for o in Outcome}
        return (f"{self.codec}: {counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, "
                f"{counts[Outcome.SKIPPED]} skipped")

    def text(self, details: bool = True) -> str:
        """One line per check, failure details indented below their line, then the summary."""
        lines = []
        for result in self.results:
            lines.append(result.line)
            if details and result.outcome is Outcome.FAILED:
                lines.extend("    " + ln for ln in result.message.split("\n")[1:])
        lines.append(self.summary())
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise ConformanceError carrying every failure's message, if any check failed."""
        if self.failures:
            text = "\n\n".join(f"[{r.name}] {r.message}" for r in self.failures)
            first = self.failures[0]
            raise ConformanceError(f"{self.summary()}\n{text}", first.name, first.contract)

    def as_dict(self) -> dict[str, Any]:
        return {"codec": self.codec, "passed": self.passed,
                "checks": [r.as_dict() for r in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def to_junit_xml(self) -> str:
        """A JUnit ``<testsuite>``: one ``<testcase>`` per check, CI systems render it."""
        suite = ET.Element("testsuite", {
            "name": f"mesh conformance {self.codec}",
            "tests": str(len(self.results)),
            "failures": str(len(self.failures)),
            "errors": "0",
            "skipped": str(sum(1 for r in self.results if r.outcome is Outcome.SKIPPED)),
            "time": f"{sum(r.duration for r in self.results):.3f}",
        })
        for result in self.results:
            _testcase(suite, self.codec, result)
        ET.indent(suite)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"

    def write(self, path: str | Path) -> None:
        """Write the report as JUnit XML (``.xml``) or JSON (anything else)."""
        target = Path(path)
        text = self.to_junit_xml() if target.suffix.lower() == ".xml" else self.to_json()
        target.write_text(text, encoding="utf-8")


def _testcase(suite: ET.Element, codec: str, result: CheckResult) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": f"mesh.conformance.{codec}", "name": result.name,
        "time": f"{result.duration:.3f}",
    })
    props = ET.SubElement(case, "properties")
    ET.SubElement(props, "property", {"name": "contract", "value": result.contract})
    if result.outcome is Outcome.FAILED:
        failure = ET.SubElement(case, "failure", {"message": result.reason})
        failure.text = result.message
    elif result.outcome is Outcome.SKIPPED:
        ET.SubElement(case, "skipped", {"message": result.reason})
    else:
        ET.SubElement(case, "system-out").text = result.reason
