"""Every Python example in docs/ runs, and prints exactly the output the page shows."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = re.compile(r"```python\n(.*?)```(?:\s*\n\s*Output:\s*\n\s*```text\n(.*?)```)?", re.S)


def _examples(page: Path) -> list[tuple[str, str | None]]:
    return [(code, out) for code, out in EXAMPLE.findall(page.read_text(encoding="utf-8"))]


PAGES = sorted(page for page in DOCS.glob("*.md") if _examples(page))


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_examples_print_what_the_page_says(page: Path) -> None:
    # Examples on a page build on each other, as a reader runs them top to bottom.
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, (code, expected) in enumerate(_examples(page)):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{page.name}[{index}]", "exec"), namespace)
        if expected:
            assert printed.getvalue().strip() == expected.strip(), f"{page.name} example {index}"
