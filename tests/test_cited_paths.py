"""Every repository file the code, the docs and the README cite exists, and every link of the README and the docs
leads to a file that exists and, when it names an anchor, to a heading of that page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: where citations are read: the README, the docs, and the code of the package, the app, the benches and the tests
CITING = ["README.md", "app.py", "pyproject.toml", "docs/**/*.md", "seedprints/**/*.py", "ui/**/*.py", "bench/**/*.py",
          "scripts/*", "tests/**/*.py"]
#: citations of files that do not exist yet, with why; an entry must be removed once it is not needed
PENDING: dict[tuple[str, str], str] = {}
#: files that code may cite before they exist, with what writes them (an entry must go once the file exists)
NOT_YET_WRITTEN: dict[str, str] = {}


def _tops() -> list[str]:
    """The repository's top-level folders and files (so a citation is recognised by where it starts)."""
    return sorted(p.name for p in ROOT.iterdir() if p.name not in {".git", ".venv", "build", ".pytest_cache"}
                  and not p.name.endswith(".egg-info"))


def cited_paths(text: str) -> set[str]:
    """Repository paths a text cites: anything starting at a top-level folder or file, and any NAME.md.

    ``a[-b].json`` cites both a.json and a-b.json; a glob must match a file.
    """
    tops = "|".join(re.escape(t) for t in _tops())
    pattern = re.compile(rf"(?<![\w./~$<{{-])((?:{tops})(?:/[\w.*\[\]-]*[\w*\]])*|[A-Z][A-Z_]+\.md)(?![\w(])")
    out = set()
    for m in pattern.finditer(text):
        path = m.group(1)
        opt = re.search(r"\[([^\]]*)\]", path)
        out |= {path[:opt.start()] + path[opt.end():], path[:opt.start()] + opt.group(1) + path[opt.end():]} if opt \
            else {path}
    return out


def _exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def citations() -> dict[tuple[str, str], bool]:
    """(citing file, cited path) -> whether the cited path exists."""
    found = {}
    for pattern in CITING:
        for f in sorted(ROOT.glob(pattern)):
            if f.is_file() and "__pycache__" not in f.parts and f != Path(__file__):  # this file quotes examples
                rel = f.relative_to(ROOT).as_posix()
                for path in cited_paths(f.read_text(errors="replace")):
                    found[(rel, path)] = _exists(path)
    return found


def test_every_cited_repository_file_exists():
    found = citations()
    missing = sorted(key for key, ok in found.items() if not ok and key not in PENDING and key[1] not in NOT_YET_WRITTEN)
    assert not missing, "cited but not in the repository (citing file, path): " + repr(missing)
    stale = sorted(key for key in PENDING if found.get(key, True))
    assert not stale, "PENDING entries no longer needed (the citation is gone or the file exists): " + repr(stale)
    written = sorted(path for path in NOT_YET_WRITTEN if _exists(path))
    assert not written, "NOT_YET_WRITTEN entries whose file now exists: " + repr(written)


def test_the_method_page_is_cited_and_the_old_file_is_not():
    found = citations()
    assert found[("README.md", "docs/method.md")] and found[("seedprints/cli/_text.py", "docs/method.md")]
    assert not [key for key in found if key[1] == "METHOD.md" and key not in PENDING]


def test_the_citation_reader_sees_what_a_text_cites():
    text = ("see docs/method.md and `bench/results/probe_budget[-mini].json`, $SEEDPRINTS_HOME/zoo, "
            "~/.cache/seedprints, seedprints.stats.calibrated_test, METHOD.md, seedprints/data/*.json, "
            "https://example.org/bench/x.py, ui/")
    assert cited_paths(text) == {"docs/method.md", "bench/results/probe_budget.json",
                                 "bench/results/probe_budget-mini.json", "METHOD.md", "seedprints/data/*.json",
                                 "seedprints", "ui"}


#: the Markdown files whose links are followed
LINKING = ["README.md", "docs/**/*.md"]


def _outside_code(text: str) -> str:
    """The text without its fenced code blocks (a ``# comment`` in a block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and MkDocs write it: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", _outside_code(path.read_text(encoding="utf-8")),
                                                   re.M)}


def links(text: str) -> list[str]:
    """Targets of inline Markdown links and images, outside code."""
    prose = re.sub(r"`[^`\n]*`", "", _outside_code(text))
    return [m.group(1) for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)(?: \"[^\"]*\")?\)", prose)]


def broken_links() -> list[tuple[str, str, str]]:
    """(file, link, why) for every relative link that does not resolve."""
    broken = []
    for pattern in LINKING:
        for f in sorted(ROOT.glob(pattern)):
            rel = f.relative_to(ROOT).as_posix()
            for link in links(f.read_text(encoding="utf-8")):
                if re.match(r"[a-z]+:", link):  # http(s), mailto: not followed offline
                    continue
                target, _, anchor = link.partition("#")
                path = (f.parent / target).resolve() if target else f
                if not path.exists() or ROOT not in path.parents and path != ROOT:
                    broken.append((rel, link, "no such file in the repository"))
                elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
                    broken.append((rel, link, "no such heading"))
    return broken


def test_every_link_of_the_readme_and_the_docs_resolves():
    assert not broken_links(), "links that lead nowhere (file, link, why): " + repr(broken_links())


def test_the_readme_links_every_docs_page():
    """The README is the landing page: every page under docs/ is one click from it."""
    readme = {(ROOT / link.partition("#")[0]).resolve() for link in links((ROOT / "README.md").read_text())}
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "index.md"}
    assert pages and not pages - readme, sorted(p.name for p in pages - readme)


def test_the_link_checker_sees_broken_links_and_anchors(tmp_path):
    text = "[a](docs/method.md#the-method) ![b](assets/x.png \"t\") `[c](no.md)` [d](https://x.org/y)\n```\n[e](f.md)\n```"
    assert links(text) == ["docs/method.md#the-method", "assets/x.png", "https://x.org/y"]
    assert slug("Real pretrained model (SmolLM2-135M)") == "real-pretrained-model-smollm2-135m"
    assert slug("Which seed, without a library: verify it") == "which-seed-without-a-library-verify-it"
    assert "the-method" in anchors(ROOT / "docs" / "method.md") and "your-own-model" not in anchors(ROOT / "README.md")
