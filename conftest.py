"""Root conftest: the shared real-server fixtures are available to every test in the repository."""

pytest_plugins = ["smartpost_shared.testing.fixtures"]
