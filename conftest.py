"""Collection rules for the whole repository (tests and the doctests in src/)."""

from __future__ import annotations

import importlib.util

# Parts that need an extra a development environment may not have yet (one made before the
# extra existed): the doctests import every module under src/, and tests/deploy needs the
# deploy tools. `make check` installs every extra, so there nothing is left out.
_NEEDS = {
    "src/shadowsync/aws/powertools.py": "aws_lambda_powertools",
    "tests/adapters/aws/test_powertools.py": "aws_lambda_powertools",
    "tests/deploy": "samtranslator",
}

collect_ignore = [path for path, module in _NEEDS.items() if not importlib.util.find_spec(module)]
