import os

from devstack.servers import port_open

# Handlers called in-process (not in a worker subprocess) send their follow-up tasks through
# the worker app, configured from the environment when first imported: keep those messages
# out of the Redis database that `make run` uses.
if port_open("127.0.0.1", 6379):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.sandbox"]
