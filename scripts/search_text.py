"""Write the text of every page of a built book to SRC/_build/html/_static/search_text.js, for
the search page's result summaries (book/theme/book.js shows a passage of each result's page),
and the glossary's terms to _static/glossary_terms.js (book.js links table headings to them).

    python scripts/search_text.py HTML_DIR

Sphinx's search fetches each result's page to show a passage of it, which a browser refuses for
an offline copy opened from file:// (so the book turns that off: html_show_search_summary). This
file holds the same text, loaded by the search page like any other script. Run by
scripts/build_book.sh after the build.
"""
from __future__ import annotations

import html.parser
import json
import re
import sys
from pathlib import Path

SKIP = {"script", "style", "noscript", "template"}
NOT_PAGES = ("_static", "_sources", "_images", "_sphinx_design_static", "mathjax")


class _MainText(html.parser.HTMLParser):
    """The visible text inside the page's <main> (the article, without the navigation)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth_main = 0
        self.skip = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "main":
            self.depth_main += 1
        elif tag in SKIP:
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "main":
            self.depth_main -= 1
        elif tag in SKIP:
            self.skip -= 1

    def handle_data(self, data):
        if self.depth_main > 0 and not self.skip:
            self.parts.append(data)


def page_text(path: Path) -> str:
    parser = _MainText()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return re.sub(r"\s+", " ", " ".join(parser.parts).replace("#", " ")).strip()


class _Terms(html.parser.HTMLParser):
    """The glossary's terms: each <dt id="term-..."> and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.terms: dict[str, str] = {}
        self._id: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "dt" and (a.get("id") or "").startswith("term-"):
            self._id, self._text = a["id"], []

    def handle_endtag(self, tag):
        if tag == "dt" and self._id:
            term = re.sub(r"\s+", " ", "".join(self._text)).strip().rstrip("#¶").strip()
            self.terms[term] = self._id
            self._id = None

    def handle_data(self, data):
        if self._id:
            self._text.append(data)


def glossary_terms(html_dir: Path) -> dict[str, str]:
    """Term -> its URL relative to the book's root, from every page with a glossary."""
    out = {}
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] in NOT_PAGES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if 'id="term-' not in text:
            continue
        parser = _Terms()
        parser.feed(text)
        out.update({term: f"{rel.as_posix()}#{anchor}" for term, anchor in parser.terms.items()})
    return out


def write(html_dir: Path) -> Path:
    texts = {}
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] in NOT_PAGES or rel.name in ("search.html", "genindex.html"):
            continue
        text = page_text(path)
        if text:
            texts[rel.with_suffix("").as_posix()] = text
    out = html_dir / "_static" / "search_text.js"
    out.write_text("window.BOOK_PAGE_TEXT = " + json.dumps(texts, ensure_ascii=False) + ";\n", encoding="utf-8")
    terms = html_dir / "_static" / "glossary_terms.js"
    terms.write_text("window.BOOK_GLOSSARY = " + json.dumps(glossary_terms(html_dir), ensure_ascii=False) + ";\n",
                     encoding="utf-8")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "search.html").is_file():
        print("search_text: give the built book's HTML folder (it holds search.html), e.g. _build/html",
              file=sys.stderr)
        return 2
    out = write(Path(argv[0]))
    print(f"search_text: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
