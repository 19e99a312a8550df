"""The documentation site builds strictly: a broken link or anchor, a page left out of the nav,
a snippet naming a missing file or a docstring mkdocstrings cannot read fails the suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import streamfw
import streamfw.aio

ROOT = Path(__file__).resolve().parent.parent


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # Never -q: with it, mkdocs 1.6 hides the warnings and --strict no longer fails on them.
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,  # the snippets' base path
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # mkdocs-material's notice, not ours
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", site)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "WARNING" not in out, out
    return site


def pages(site: Path) -> dict[str, str]:
    return {
        str(p.relative_to(site)): p.read_text(encoding="utf-8") for p in site.rglob("index.html")
    }


def test_every_page_renders_its_code_fences(site: Path) -> None:
    # A fence the Markdown reader did not take for one shows up as a paragraph of backticks.
    broken = [name for name, html in pages(site).items() if "<p>```" in html]
    assert broken == []


@pytest.mark.parametrize("module", [streamfw, streamfw.aio], ids=lambda m: m.__name__)
def test_every_public_name_is_in_the_api_reference(site: Path, module: ModuleType) -> None:
    ids = set()
    for html in pages(site / "api").values():
        ids |= set(re.findall(r'id="(streamfw[\w.]*)"', html))
    prefix = module.__name__ + "."
    undocumented = [
        name
        for name in module.__all__
        if not any(i.startswith(prefix) and i.endswith(f".{name}") for i in ids)
    ]
    assert undocumented == []


def test_every_docs_page_is_built(site: Path) -> None:
    for md in (ROOT / "docs").rglob("*.md"):
        name = md.relative_to(ROOT / "docs").with_suffix("")
        built = site / "index.html" if name.name == "index" else site / name / "index.html"
        assert built.exists(), md


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    # The same settings on a one-page site with a link to a missing page: the check above
    # would pass vacuously if strictness were lost (mkdocs -q, a validation level changed).
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [gone](gone.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            INHERIT: {ROOT / "mkdocs.yml"}
            docs_dir: {tmp_path / "docs"}
            nav:
              - Home: index.md
            """
        )
    )
    done = build(config, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "'gone.md'" in out and "Aborted" in out, out
