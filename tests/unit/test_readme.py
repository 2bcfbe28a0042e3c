"""The README's Python example is executed, so it stays true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        # Each example imports from shadowsync and asserts on what it gets back.
        assert any(name in namespace for name in ("apply_update", "merge"))


def test_readme_quick_start_names_the_make_targets_ci_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make check" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make check" in ci
