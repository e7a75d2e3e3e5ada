"""Fixtures of the fault-injection tests; they and the helpers live in ``faultkit.py``.

The tests import helpers from ``faultkit``, not ``conftest``: several test folders have a conftest
module, and only one of them can be ``conftest`` in ``sys.modules`` when they are collected together.
"""

from faultkit import az_container, az_fs, drivers, sqlite_url  # noqa: F401 - fixtures
