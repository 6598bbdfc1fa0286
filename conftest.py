"""Repository-wide pytest setup for the core's and every plugin's tests.

Isolation itself comes from polybatch's pytest plugin (``polybatch.testing``), switched on for
this repository by ``polybatch_isolation`` and ``polybatch_home_guard`` in pyproject.toml; here
only ``pytester``, which the test of that guard uses.
"""

pytest_plugins = ("pytester",)
