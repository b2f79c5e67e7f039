import os
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.sandbox"]

# Property tests: a quick look in `make test`, a thorough one in `make test-faults`
# (HYPOTHESIS_PROFILE=thorough).
settings.register_profile("quick", max_examples=25)
settings.register_profile("thorough", max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

FAULTS = Path(__file__).parent / "faults"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/faults/ is a long scenario: `make test-faults` runs it."""
    for item in items:
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.faults)
