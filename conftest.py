"""Root conftest: the shared real-server fixtures are available to every test in the repository."""

import os

from smartpost_shared.testing import identity

# Tests are local development: settings may leave secrets unset (services then generate their own per process).
# Tests of the production rules pass local_development=False explicitly.
os.environ.setdefault("SMARTPOST_LOCAL_DEVELOPMENT", "true")
# Services built in a test trust this test process's caller key; tests sign with it (identity.caller_headers).
identity.install()

pytest_plugins = ["smartpost_shared.testing.fixtures"]
