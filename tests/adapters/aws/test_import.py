"""shadowsync.aws and its Powertools adapter name the extra to install when it is missing."""

from __future__ import annotations

import subprocess
import sys


def _import_without(module: str, missing: str) -> str:
    """What importing ``module`` prints in a fresh interpreter where ``missing`` cannot load."""
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def _loads(module: str, dependency: str) -> str:
    code = f"import sys, {module}\nprint({dependency!r} in sys.modules)\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_missing_boto3_names_the_extra() -> None:
    assert _import_without("shadowsync.aws", "boto3") == (
        'shadowsync.aws needs boto3; install it with: pip install "shadowsync[boto3]"'
    )


def test_the_core_does_not_load_boto3() -> None:
    assert _loads("shadowsync, shadowsync.cloud", "boto3") == "False"


def test_missing_powertools_names_the_extra() -> None:
    assert _import_without("shadowsync.aws.powertools", "aws_lambda_powertools") == (
        "shadowsync.aws.powertools needs Powertools for AWS Lambda; install it with: "
        'pip install "shadowsync[powertools]"'
    )


def test_the_entry_points_do_not_load_powertools_unless_asked() -> None:
    assert _loads("shadowsync.aws.entry", "aws_lambda_powertools") == "False"
