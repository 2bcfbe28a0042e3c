"""shadowsync.aws names the extra to install when boto3 is missing."""

from __future__ import annotations

import subprocess
import sys


def test_missing_boto3_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['boto3'] = None\n"
        "try:\n"
        "    import shadowsync.aws\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (
        'shadowsync.aws needs boto3; install it with: pip install "shadowsync[boto3]"'
    )


def test_the_core_does_not_load_boto3() -> None:
    code = "import sys, shadowsync, shadowsync.cloud\nprint('boto3' in sys.modules)\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.stdout.strip() == "False", completed.stderr


def test_missing_powertools_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['aws_lambda_powertools'] = None\n"
        "try:\n"
        "    import shadowsync.aws.powertools\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == (
        "shadowsync.aws.powertools needs Powertools for AWS Lambda; install it with: "
        'pip install "shadowsync[powertools]"'
    )


def test_the_entry_points_do_not_load_powertools_unless_asked() -> None:
    code = "import sys, shadowsync.aws.entry\nprint('aws_lambda_powertools' in sys.modules)\n"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.stdout.strip() == "False", completed.stderr
