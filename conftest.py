"""Root conftest: plugins every test folder (components/, pipelines/, serving/, tests/) runs under.

tests.ci_skips: under CI=true a test that skips for a missing tool fails instead (tests/ci_skips.py).
"""

pytest_plugins = ["tests.ci_skips"]
