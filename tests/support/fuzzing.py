"""How many examples the property-based tests (tests/test_fuzz_*.py) try, and with which seed.

In the suite: a fixed, small number, derandomized, so CI is cheap and repeatable. `bench/fuzz.py`
runs the same properties as a longer campaign: `TOOLMESH_FUZZ_EXAMPLES` examples per property,
and with `TOOLMESH_FUZZ_SEED` a seed of its own (printed, so a failure can be replayed).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    seed = os.environ.get("TOOLMESH_FUZZ_SEED")
    return settings(
        max_examples=int(os.environ.get("TOOLMESH_FUZZ_EXAMPLES") or examples),
        deadline=None,
        derandomize=seed is None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
