"""The browser test (scripts/browser_test.py) in a real headless Chromium: a tiny book built with
the book's own configuration and theme passes every check, and pages with each defect fail the
check meant for it (so a green browser test in CI means something)."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("browser_test", REPO / "scripts" / "browser_test.py")
bt = importlib.util.module_from_spec(_spec)
sys.modules["browser_test"] = bt
_spec.loader.exec_module(bt)

TOC = """format: jb-book
root: book/intro
chapters:
  - file: book/page
"""
INTRO = """# A tiny book

Inline math $E[b] = \\sum_b p(b)\\, b$ and a [link to the next page](page.md).

## A section

A table:

| a | b |
|---|---|
| 1 | 2 |
"""
PAGE = """# A page

$$
\\begin{aligned}
\\mathcal L &= \\mathcal L_{\\text{cls}} + \\lambda\\, \\mathcal L_{\\text{lkd}}, \\\\
x &\\in \\{0, 1\\}
\\end{aligned}
$$

## Part one

Text that refers back to [the intro](intro.md).
"""

BAD = """<!DOCTYPE html><html><head><title>bad</title></head><body>
<div class="bd-article" style="width: 600px">
  <p>UserWarning: something the reader should not see</p>
  <p>Unrendered: <span class="math">\\(x^2\\)</span> and $y$ in the text.</p>
  <img src="missing.png" alt="gone">
  <img src="http://example.invalid/remote.png" alt="remote">
  <a href="nowhere.html">a missing page</a>
  <a href="good.html#no-such-anchor">a missing anchor</a>
  <div style="width: 2000px">a block wider than its column</div>
  <img src="data:image/png;base64,PIXEL" alt="_images/abc123.png" width="100">
  <figure><img src="data:image/png;base64,PIXEL" alt="a plot" width="100"></figure>
  <div style="overflow-x: auto"><table><caption>a caption as wide as its table, cut by the box</caption>
    <tr><td style="min-width: 2000px">a wide table in a scroll box without a cue</td></tr></table></div>
  <table style="width: 100px"><tr><td>x</td><td style="width: 1px">three separate words</td></tr></table>
</div>
<script>console.error("boom");</script>
</body></html>
"""
GOOD = """<!DOCTYPE html><html><head><title>good</title></head><body>
<div class="bd-article" style="max-width: 600px">
  <h1 id="top">Fine</h1>
  <p>Plain text, a <a href="good.html#top">link to an anchor</a>, a <a href="bad.html">page</a>
  and a <a href="https://example.org/">site elsewhere</a> (not loaded: following it is a choice).</p>
  <span class="scroll-cue">scroll sideways for more</span>
  <div style="overflow-x: auto"><table><tr><td style="min-width: 2000px">a wide table in a scroll box</td></tr></table></div>
  <figure><img src="data:image/png;base64,PIXEL" alt="A bar chart of one value" style="width: 1px">
    <figcaption><span class="caption-number">Fig. 1 </span>One bar: look at its height.</figcaption></figure>
</div></body></html>
"""
# A 2x2 white PNG: shown 1 px wide it is drawn at 2x, shown 100 px wide at 0.02x.
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAADklEQVR4nGP4"
         "DwYMEAoAU7oL9ZisIGcAAAAASUVORK5CYII=")
BAD = BAD.replace("PIXEL", PIXEL)
GOOD = GOOD.replace("PIXEL", PIXEL)

# What sphinx-book-theme 1.3.0 did: the sidebar toggles' clicks reach no working handler.
DEAD_TOGGLES = """<script>document.addEventListener("click", e => {
  if (e.target.closest(".primary-toggle, .secondary-toggle")) e.stopImmediatePropagation();
}, true);</script></body>"""



@pytest.fixture(autouse=True)
def chromium():
    """No skip: the browser is part of the set-up (scripts/setup.sh installs Debian's chromium)."""
    assert Path(bt.CHROMIUM).is_file(), f"{bt.CHROMIUM} is missing: run bash scripts/setup.sh"


def by_page(results):
    return {(r.page, r.mode): r for r in results}


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """A two-page book built strictly by scripts/build_book.sh with the repository's _config.yml
    and style sheet (the real theme, MathJax and sidebar toggles)."""
    src = tmp_path_factory.mktemp("tiny_book")
    for name in ("_config.yml", "package.json", "package-lock.json"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "book" / "theme", src / "book" / "theme")
    (src / "_toc.yml").write_text(TOC)
    (src / "book" / "intro.md").write_text(INTRO)
    (src / "book" / "page.md").write_text(PAGE)
    build = subprocess.run(["bash", str(REPO / "scripts" / "build_book.sh"), str(src)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return src


@pytest.mark.slow
def test_tiny_book_passes_every_check_over_file_and_http(tiny_book, tmp_path):
    shots = tmp_path / "shots"
    results = bt.check_book(tiny_book / "_build" / "html", ("file", "http"), shots, log=lambda s: None)
    assert all(r.ok for r in results), bt.report(results)
    pages = {r.page for r in results}
    assert {"book/intro.html", "book/page.html", "search.html", "index.html"} <= pages
    intro = by_page(results)[("book/intro.html", "http")]
    assert {"network", "console", "images", "links", "math", "width", "text", "nav"} <= intro.ran
    assert "search" in by_page(results)[("search.html", "file")].ran   # and its results show page text
    assert "figures" in intro.ran
    for view in ("desktop", "phone", "phone-menu"):
        assert (shots / f"book__intro.{view}.png").stat().st_size > 1000


@pytest.mark.slow
def test_each_defect_fails_its_check(tmp_path):
    (tmp_path / "bad.html").write_text(BAD)
    (tmp_path / "good.html").write_text(GOOD)
    results = by_page(bt.check_book(tmp_path, ("file", "http"), None, log=lambda s: None))
    for mode in ("file", "http"):
        good, bad = results[("good.html", mode)], results[("bad.html", mode)]
        assert good.ok, bt.report([good])
        for check in ("network", "console", "images", "figures", "links", "math", "width", "text"):
            assert bad.problems[check], f"{mode}: {check} not caught\n" + bt.report([bad])
        found = "\n".join(p for ps in bad.problems.values() for p in ps)
        assert "alt text is a file path, not a description: '_images/abc123.png'" in found
        assert "a figure without a caption" in found and "drawn at 0.0x its displayed width" in found
        assert "a scroll box without a visible cue" in found
        assert "a caption that does not fit the column: a caption as wide" in found
        assert "a table column wrapping one word per line: three separate words" in found
        assert "example.invalid" in found and "nowhere.html: no such file" in found
        assert "good.html#no-such-anchor: no such anchor" in found
        assert "UserWarning:" in found and "boom" in found


@pytest.mark.slow
def test_dead_sidebar_toggles_fail_the_navigation_check(tiny_book, tmp_path):
    html = tmp_path / "html"
    shutil.copytree(tiny_book / "_build" / "html", html)
    page = html / "book" / "intro.html"
    page.write_text(page.read_text().replace("</body>", DEAD_TOGGLES))
    [result] = bt.check_book(html, ("file",), None, pages=["book/intro.html"], log=lambda s: None)
    nav = "\n".join(result.problems["nav"])
    assert "desktop: the primary sidebar toggle does not hide the table of contents" in nav
    assert "phone: the primary sidebar toggle does not open the table of contents" in nav
    assert "phone: the secondary sidebar toggle does not open the page contents" in nav


def test_check_link_resolves_pages_anchors_and_outside_links(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="x">x</h1><a name="y"></a>')
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text("<p>index</p>")
    base = tmp_path.as_uri() + "/"
    assert bt.check_link(tmp_path, base, base + "a.html#x") is None
    assert bt.check_link(tmp_path, base, base + "a.html#y") is None
    assert bt.check_link(tmp_path, base, base + "sub/") is None
    assert bt.check_link(tmp_path, base, base + "a.html#z") == "a.html#z: no such anchor"
    assert bt.check_link(tmp_path, base, base + "b.html") == "b.html: no such file"
    assert bt.check_link(tmp_path, base, "file:///etc/passwd") == "file:///etc/passwd: points outside the book"
    assert bt.check_link(tmp_path, base, "https://example.org/") is None


def test_noise_and_raw_tex_patterns():
    for text in ("TqdmWarning: IProgress not found", "<matplotlib.colorbar.Colorbar at 0x7f>",
                 "Text(0.5, 1.0, 'title')", "/home/me/x.py", "Traceback (most recent call last):"):
        assert bt.NOISE.search(text), text
    for text in ("Top-1 after QAT: 92.9%", "the W3A3 budget (0.285 G BitOps)", "Textile"):
        assert not bt.NOISE.search(text), text
    for text in ("where $w$ is", "\\(x\\)", "$$a$$", "\\begin{aligned}"):
        assert bt.RAW_TEX.search(text), text


@pytest.mark.slow
def test_tex_broken_by_a_string_escape_fails_the_math_check(tiny_book, tmp_path):
    """`\\tfrac12` in a Python string is TAB + "frac12": MathJax renders the letters "frac12"."""
    html = tmp_path / "html"
    shutil.copytree(tiny_book / "_build" / "html", html)
    page = html / "book" / "intro.html"
    text = page.read_text()
    assert "E[b] = " in text
    page.write_text(text.replace("E[b] = ", "E[b] - \tfrac12 = ", 1))
    [result] = bt.check_book(html, ("file",), None, pages=["book/intro.html"], log=lambda s: None)
    math = "\n".join(result.problems["math"])
    assert "a control character in the TeX" in math and "a TeX command shown as letters: 'frac'" in math


def test_alt_text_and_tex_patterns():
    for alt in ("_images/abc.png", "fig.png", "book/x.svg"):
        assert bt.PATH_ALT.search(alt), alt
    for alt in ("Bar chart of seed SD and policy SD per model", "W3A3 vs W2A4"):
        assert not bt.PATH_ALT.search(alt), alt
    assert bt.TEX_WORDS.search("h - frac12 log") and bt.TEX_CONTROL.search("-\tfrac12")
    assert not bt.TEX_WORDS.search("\\tfrac12 fraction 12")
