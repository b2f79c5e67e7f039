from pathlib import Path

pytest_plugins = ["tests.fixtures.services"]
# TEMPORARY while the sandbox fixture is being written.
if (Path(__file__).parent / "fixtures" / "sandbox.py").exists():
    pytest_plugins.append("tests.fixtures.sandbox")
