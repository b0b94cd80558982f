"""A longer fuzz soak of the dubbo codec than CI runs (tests/unit/test_dubbo_fuzz.py).

    python scripts/fuzz_dubbo.py [--seconds 300] [--round 2000] [--seed N]

Runs rounds of the same hypothesis properties (mutated real frames, random bytes) with fresh
seeds until the time is up; a failure prints hypothesis' shrunk falsifying example and exits
with status 1. Ends with how the inputs came out (events / refused), so a change that makes
every input fail early shows.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mesh.codec import Role  # noqa: E402
from tests.unit.test_dubbo_fuzz import CUTS, ROLES, exercise, mutated, random_input  # noqa: E402

OUTCOMES: collections.Counter[str] = collections.Counter()


def _run(role: Role, data: bytes, cuts: list[int], eof: bool) -> None:
    OUTCOMES["events" if exercise(role, data, cuts, eof) else "no events"] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="stop after this long")
    parser.add_argument("--round", type=int, default=2000, help="examples per hypothesis round")
    parser.add_argument("--seed", type=int, default=None, help="first round's seed (random)")
    args = parser.parse_args()
    first = args.seed if args.seed is not None else random.randrange(1 << 32)
    options = settings(max_examples=args.round, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))
    deadline = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < deadline:
        round_seed = first + rounds

        @seed(round_seed)
        @options
        @given(case=mutated(), cuts=CUTS, eof=st.booleans())
        def mutated_frames(case: tuple[Role, bytes], cuts: list[int], eof: bool) -> None:
            _run(case[0], case[1], cuts, eof)

        @seed(round_seed)
        @options
        @given(role=ROLES, data=random_input(), cuts=CUTS, eof=st.booleans())
        def random_bytes(role: Role, data: bytes, cuts: list[int], eof: bool) -> None:
            _run(role, data, cuts, eof)

        try:
            mutated_frames()
            random_bytes()
        except Exception:
            print(f"fuzz_dubbo: failure in round seed {round_seed}", file=sys.stderr)
            raise
        rounds += 1
    total = sum(OUTCOMES.values())
    print(f"fuzz_dubbo: {rounds} rounds from seed {first}, {total} inputs, no failure; "
          f"{OUTCOMES['events']} gave events, {OUTCOMES['no events']} none (refused or incomplete)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
