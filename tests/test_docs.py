"""Every ```python sample in README.md and docs/ runs, so the docs cannot rot.

Samples for other environments (pyC8's own virtualenv, Node) use another info string, e.g.
```` ```python pyc8 ````, and are run by the tests of that environment (tests/sdk/).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```", re.S | re.M)


def samples() -> list[object]:
    found = []
    # rglob: the concept pages live in docs/concepts/; ids name a page by its path under docs/.
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        page = doc.relative_to(ROOT / "docs").as_posix() if doc.parent != ROOT else doc.name
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start("code")) + 1
            found.append(pytest.param(doc, line, m["code"], id=f"{page}:{line}"))
    return found


@pytest.mark.parametrize(("doc", "line", "code"), samples())
def test_sample_runs(doc: Path, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "sample.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, f"{doc.name}:{line} failed:\n{done.stdout}\n{done.stderr}"
