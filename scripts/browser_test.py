"""Open every page of a built book in a real headless browser, as a reader would, and fail on what
a reader would trip over.

    .venv/bin/python scripts/browser_test.py SRC [--skip-http] [--screenshots DIR]

SRC is a book source folder whose build is in SRC/_build/html (bash scripts/build_book.sh SRC).
Every page is opened in Debian's Chromium (/usr/bin/chromium, driven by playwright; no browser is
downloaded) over file:// and over a local HTTP server on 127.0.0.1, at desktop size (1366x900)
and at phone size (390x844), with the network blocked: any request that is not for the book
itself is aborted and counted as a failure. A page fails on

- network  a request outside the book (aborted), a file or URL of the book that does not load;
- console  an error in the browser console or an uncaught exception;
- images   an image that did not decode (naturalWidth 0), or whose alt text is empty or a file
           path (a reader who cannot see it learns nothing);
- figures  a picture in the text that is not a numbered figure with a caption, or that is drawn
           at less than twice its displayed width on a desktop (blurred on every phone and on
           high-density screens; SVG passes);
- links    a link into the book whose page or anchor does not exist;
- math     math that MathJax did not render (TeX delimiters left in the text, a .math element
           without mjx-container, a MathJax error), TeX that a string escape broke (a TAB,
           backspace, form feed or carriage return in the TeX: `\tfrac12` written in a Python
           string becomes TAB + "frac12"), TeX command names shown as letters ("frac12"), or a
           display equation wider than the text column on a desktop (on a phone it may scroll
           inside its own box, with a cue);
- width    a page wider than the window; content of the text column wider than the column that
           is neither inside a scroll box that fits (wide tables, code) nor fitting itself; a
           scroll box whose content overflows without a visible cue (an element of class
           scroll-cue beside it, or a scroll shadow); a table or figure caption that does not fit
           the column or is cut by a scroll box; a table column so narrow that a cell of three or
           more words wraps one word per line;
- text     visible text that looks like a warning, a traceback, an object repr or a local path;
- nav      on a phone, the primary sidebar toggle does not open the table of contents (and the
           secondary toggle, where shown, not the page contents); on a desktop, the table of
           contents is not shown, the toggle does not hide and show it again, or more than one
           search box is shown, or a top bar shows nothing but a search box;
- search   (search.html only) the offline search finds nothing for a word every book has, or
           its results show titles without any text of the page.

Screenshots of every page (desktop and phone, full page, and the phone with the menu open) are
saved under SRC/_build/screenshots/ (or --screenshots DIR). The script prints one row per page and mode, the problems
found, and a summary; it exits 1 when any page has a problem, 2 when it cannot run.
"""
from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import re
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
except ImportError:  # reported by main(); the module stays importable for its pure functions
    PlaywrightError = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
CHECKS = ("network", "console", "images", "figures", "links", "math", "width", "text", "nav", "search")
MIN_DENSITY = 1.9  # pixels drawn per pixel shown: a figure rendered at 2x passes
MAX_PER_CHECK = 6    # problems listed per check and page; the count is always complete
TIMEOUT_MS = 30_000

# Visible text that a reader should never see in a book: warnings, tracebacks, object reprs,
# progress bars and paths of the machine that built it.
NOISE = re.compile("|".join([
    r"\w*Warning:", r"Traceback \(most recent call last\)", r"<matplotlib\.", r"object at 0x",
    r"<Figure size \d", r"<Axes:", r"\bText\(-?\d", r"/work/", r"/home/", r"/root/",
    r"ipykernel_\d", r"site-packages", r"IProgress", r"\d+it/s\]|\d+/\d+ \[\d\d:\d\d",
]))
# TeX that MathJax should have replaced: \( \) \[ \] $$ \begin{ and $x$ in running text.
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|(?<![\w$])\$[^\s$][^$\n]{0,200}?(?<![\s\\])\$")

# TeX command names that a reader sees as letters: the backslash was eaten by a string escape
# (\t, \f, \b, \r) or forgotten.
TEX_WORDS = re.compile(r"(?<![A-Za-z\\])(?:[td]?frac(?=[\d{])|mathcal\{|mathbb\{|mathrm\{|operatorname\{|lVert|rVert)")
# Characters that a string escape leaves where a TeX command began.
TEX_CONTROL = re.compile(r"[\t\x07\x08\x0b\x0c\r]")
# Alt text that is a file name or path, not a description.
PATH_ALT = re.compile(r"^\S*\.(?:png|jpe?g|gif|svg|webp)$|^\S*/\S*$|^_images\b", re.I)

# Skipped when listing pages: the theme's and MathJax's files, sources, images.
NOT_PAGES = ("_static", "_sources", "_images", "_sphinx_design_static", "mathjax")


# --------------------------------------------------------------------------------------------
# The scripts run in the page.

WAIT_JS = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  if (document.fonts) await document.fonts.ready;
  const imgs = [...document.images];
  imgs.forEach(i => { if (i.loading === 'lazy') i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(done => {
    i.addEventListener('load', done, {once: true});
    i.addEventListener('error', done, {once: true});
    setTimeout(done, 5000);
  })));
  await new Promise(done => setTimeout(done, 300));  // the book's own script: scroll cues, term links
}"""

# Everything measured on a loaded page, in one pass.
INSPECT_JS = """() => {
  const out = {};
  const shown = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'; };
  const describe = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + [...e.classList].slice(0, 3).map(c => '.' + c).join('');
  out.images = [...document.images].map(i => {
    const fig = i.closest('figure'), cap = fig && fig.querySelector('figcaption');
    return {src: i.currentSrc || i.src, broken: !i.complete || i.naturalWidth === 0,
      alt: i.getAttribute('alt'), content: !!i.closest('.bd-article') && shown(i),
      natural: i.naturalWidth, shown_width: i.getBoundingClientRect().width,
      svg: /\\.svg(\\?|#|$)|^data:image\\/svg/i.test(i.currentSrc || i.src),
      caption: cap ? cap.innerText.trim() : null,
      numbered: !!(cap && cap.querySelector('.caption-number'))};
  });
  // The TeX MathJax was given (string escapes show up here), and the text it rendered.
  out.tex = [];
  try { for (const item of MathJax.startup.document.math) out.tex.push(item.math); } catch (e) {}
  out.math_text = [...document.querySelectorAll('mjx-assistive-mml')].map(m => m.textContent).join(' ');
  out.links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  // Math.
  const maths = [...document.querySelectorAll('.math')];
  out.math_total = maths.length;
  out.math_unrendered = maths.filter(m => !m.querySelector('mjx-container')).length;
  out.math_errors = document.querySelectorAll('mjx-merror, [data-mjx-error]').length;
  const tex = [];
  const root = document.querySelector('.bd-article') || document.body;
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (n.parentElement.closest('pre, code, script, style, textarea, mjx-container, .highlight')) continue;
    tex.push(n.textContent);
  }
  out.prose = tex.join(' ');
  // Width: the page, then everything in the text column that sticks out of it.
  out.scroll_width = document.documentElement.scrollWidth;
  out.inner_width = window.innerWidth;
  out.wide = [];
  out.wide_math = [];
  const col = document.querySelector('.bd-article');
  if (col) {
    const cr = col.getBoundingClientRect(), cs = getComputedStyle(col);
    const left = cr.left + parseFloat(cs.paddingLeft) - 1, right = cr.right - parseFloat(cs.paddingRight) + 1;
    out.column_width = Math.round(right - left - 2);
    const fits = r => r.left >= left && r.right <= right;
    // An inline element that wraps is judged by its line fragments, not their bounding box.
    const fitsAll = e => getComputedStyle(e).display === 'inline'
      ? [...e.getClientRects()].every(fits) : fits(e.getBoundingClientRect());
    // The box that clips or scrolls an element: overflow does nothing on inline boxes.
    const clipper = e => { let b = e.parentElement;
      while (b && b !== col) { const s = getComputedStyle(b);
        if (s.overflowX !== 'visible' && s.display !== 'inline' && s.display !== 'contents') return b;
        b = b.parentElement; }
      return null; };
    const reported = new Set();
    for (const e of col.querySelectorAll('*')) {
      if (e.closest('mjx-assistive-mml') || !shown(e)) continue;
      if (getComputedStyle(e).position === 'fixed') continue;
      if (fitsAll(e)) continue;
      const r = e.getBoundingClientRect();
      const box = clipper(e);
      const ox = box ? getComputedStyle(box).overflowX : 'visible';
      if ((ox === 'auto' || ox === 'scroll') && fits(box.getBoundingClientRect())) continue;
      if ([...reported].some(p => p.contains(e))) continue;
      reported.add(e);
      out.wide.push(describe(e) + ' ' + Math.round(r.width) + ' px'
        + (ox === 'visible' ? '' : ' (clipped by ' + describe(box) + ', overflow ' + ox + ')'));
    }
    // Scroll boxes whose content overflows: each needs a visible cue.
    const cued = b => {
      const bg = e => e && /gradient/.test(getComputedStyle(e).backgroundImage);
      const cue = e => e && e.classList && e.classList.contains('scroll-cue') && shown(e);
      return bg(b) || cue(b.previousElementSibling) || cue(b.nextElementSibling)
        || [...b.children].some(cue);
    };
    out.uncued = [];
    for (const b of col.querySelectorAll('*')) {
      const s = getComputedStyle(b);
      if (!shown(b) || !(s.overflowX === 'auto' || s.overflowX === 'scroll')) continue;
      if (b.scrollWidth <= b.clientWidth + 1 || cued(b)) continue;
      if (b.closest('mjx-container') && b.tagName.startsWith('MJX-') && b.tagName !== 'MJX-CONTAINER') continue;
      out.uncued.push(describe(b) + ' ' + b.scrollWidth + ' px in a ' + b.clientWidth + ' px box');
    }
    // Captions fit the column and are never cut by a scroll box.
    out.captions = [];
    for (const c of col.querySelectorAll('caption, figcaption')) {
      if (!shown(c)) continue;
      const r = c.getBoundingClientRect();
      let box = c.parentElement, cut = false;
      while (box && box !== col) {
        const s = getComputedStyle(box);
        if (s.overflowX !== 'visible') { const br = box.getBoundingClientRect();
          if (r.left < br.left - 1 || r.right > br.right + 1) { cut = true; break; } }
        box = box.parentElement;
      }
      if (cut || !fits(r)) out.captions.push(c.innerText.trim().slice(0, 60) + ' (' + Math.round(r.width)
        + ' px' + (cut ? ', cut by ' + describe(box) : '') + ')');
    }
    // Table cells of three or more words shown one word per line: a column squeezed too narrow.
    out.squeezed = [];
    for (const td of col.querySelectorAll('td, th')) {
      const words = td.innerText.trim().split(/\\s+/).filter(w => w.length > 1);
      if (words.length < 3 || !shown(td)) continue;
      const range = document.createRange(); range.selectNodeContents(td);
      // Lines: the distinct tops of the text's boxes, boxes of one line (inline code, links) merged.
      const tol = 0.8 * parseFloat(getComputedStyle(td).fontSize);
      const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.top).sort((a, b) => a - b);
      const lines = tops.filter((t, i) => i === 0 || t - tops[i - 1] > tol).length;
      if (lines >= words.length) out.squeezed.push(td.innerText.trim().slice(0, 60)
        + ' (' + Math.round(td.getBoundingClientRect().width) + ' px wide, ' + lines + ' lines)');
    }
    for (const m of col.querySelectorAll('mjx-container[display="true"]')) {
      const w = m.querySelector('mjx-math'); if (!w) continue;
      const mw = w.getBoundingClientRect().width;
      if (mw > right - left - 2 + 1) out.wide_math.push(Math.round(mw));
    }
  } else {
    out.column_width = null;
    out.uncued = []; out.captions = []; out.squeezed = [];
  }
  out.text = document.body.innerText;
  // Navigation elements.
  // Search boxes of the page's frame (the search page's own form is content, not a second box).
  const searches = [...document.querySelectorAll('.search-button-field, form.bd-search, input[type=search]')];
  out.search_boxes = searches.filter(e => shown(e)
    && !e.closest('main, .bd-article, dialog, .search-button__wrapper')
    && !(e.tagName === 'INPUT' && e.closest('form.bd-search'))).length;
  const header = document.querySelector('.bd-header');
  out.header_empty = false;
  if (header && shown(header)) {
    const rest = [...header.querySelectorAll('a, button, img, svg, p, span')].filter(e =>
      shown(e) && !e.closest('.search-button-field, form.bd-search, .sidebar-toggle')
      && (e.tagName !== 'SPAN' || e.innerText.trim()));
    out.header_empty = rest.length === 0;
    out.header_height = Math.round(header.getBoundingClientRect().height);
  }
  return out;
}"""

# The links of a sidebar that a reader can see and click: inside the window and on top.
VISIBLE_LINKS_JS = """(selector) => [...document.querySelectorAll(selector)].filter(a => {
  const r = a.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0 || r.right <= 0 || r.bottom <= 0
      || r.left >= innerWidth || r.top >= innerHeight) return false;
  const hit = document.elementFromPoint(r.left + Math.min(r.width / 2, 20), r.top + r.height / 2);
  return !!hit && (hit === a || a.contains(hit) || hit.contains(a));
}).length"""

# Every search result shows some text of its page beside its title.
SEARCH_TEXT_JS = """() => { const items = [...document.querySelectorAll('#search-results li, ul.search li')];
  return items.length > 0 && items.every(li => { const a = li.querySelector('a');
    return li.innerText.trim().length > (a ? a.innerText.trim().length : 0) + 20; }); }"""

TOC_LINKS = ".bd-docs-nav a, nav.bd-links a"
PAGE_TOC_LINKS = ".bd-toc-nav a, #pst-page-toc-nav a, .page-toc a"
PRIMARY_TOGGLE = "button.primary-toggle:visible, label.primary-toggle:visible"
SECONDARY_TOGGLE = "button.secondary-toggle:visible, label.secondary-toggle:visible"


# --------------------------------------------------------------------------------------------
# Results.

@dataclass
class PageResult:
    """Problems found on one page in one mode (file or http), by check."""

    page: str
    mode: str
    problems: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CHECKS})
    ran: set[str] = field(default_factory=set)

    def add(self, check: str, problem: str) -> None:
        self.problems[check].append(problem)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())

    def cell(self, check: str) -> str:
        if self.problems[check]:
            return str(len(self.problems[check]))
        return "ok" if check in self.ran else "-"


# --------------------------------------------------------------------------------------------
# The book on disk: pages, anchors, redirects.

def find_pages(html_dir: Path) -> list[str]:
    """Every HTML page of the build, as paths relative to html_dir (the theme's files left out)."""
    pages = []
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir)
        if rel.parts[0] not in NOT_PAGES:
            pages.append(rel.as_posix())
    return pages


class _Anchors(html.parser.HTMLParser):
    """Collects the ids and names a URL fragment can point to, and a meta refresh target."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()
        self.refresh: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.anchors.add(a[key])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "refresh":
            m = re.search(r"url=(.+)", a.get("content") or "", re.I)
            self.refresh = m.group(1).strip().strip("'\"") if m else None


@functools.lru_cache(maxsize=None)
def parse_page(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def check_link(html_dir: Path, base_url: str, href: str) -> str | None:
    """Why a link into the book is broken, or None if it is fine or leads outside the book."""
    scheme = urllib.parse.urlsplit(href).scheme
    if scheme in ("mailto", "javascript", "data", "tel"):
        return None
    if not href.startswith(base_url):
        if scheme == "file":
            return f"{href}: points outside the book"
        return None  # a link to another site is not a request; following it is the reader's choice
    parts = urllib.parse.urlsplit(href[len(base_url):])
    target = html_dir / urllib.parse.unquote(parts.path)
    if parts.path == "" or parts.path.endswith("/") or target.is_dir():
        target = target / "index.html"
    rel = target.relative_to(html_dir).as_posix() if target.is_relative_to(html_dir) else href
    if not target.is_file():
        return f"{rel}: no such file"
    fragment = urllib.parse.unquote(parts.fragment)
    if fragment and target.suffix == ".html" and fragment not in parse_page(target).anchors:
        return f"{rel}#{fragment}: no such anchor"
    return None


# --------------------------------------------------------------------------------------------
# The local HTTP server.

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def start_server(html_dir: Path) -> http.server.ThreadingHTTPServer:
    """Serve html_dir on 127.0.0.1 at a free port, in a daemon thread."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------------------------
# One page.

def _listen(page, result: PageResult, base_url: str, tag: str) -> None:
    """Record every request that is not for the book, every load failure and console error."""
    def on_request(request):
        url = request.url
        if not (url.startswith(base_url) or url.split(":", 1)[0] in ("data", "blob", "about")):
            result.add("network", f"{tag}: request outside the book: {url[:120]}")

    def on_failed(request):
        if request.url.startswith(base_url):
            result.add("network", f"{tag}: failed to load {request.url[len(base_url):]}: {request.failure}")

    def on_response(response):
        if response.status >= 400:
            result.add("network", f"{tag}: HTTP {response.status} for {response.url[len(base_url):]}")

    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.on("console", lambda m: m.type == "error" and result.add("console", f"{tag}: {m.text[:200]}"))
    page.on("pageerror", lambda e: result.add("console", f"{tag}: uncaught {str(e)[:200]}"))


def _open(context, url: str, result: PageResult, base_url: str, tag: str):
    page = context.new_page()
    _listen(page, result, base_url, tag)
    page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
    page.evaluate(WAIT_JS)
    return page


def _visible_count(page, selector: str) -> int:
    return page.evaluate(VISIBLE_LINKS_JS, selector)


def _click_and_count(page, toggle: str, selector: str) -> int | None:
    """Click the visible toggle, wait for its animation, count the visible links; None: no toggle."""
    button = page.locator(toggle).first
    if button.count() == 0:
        return None
    button.click(timeout=5000)
    page.wait_for_timeout(600)
    return _visible_count(page, selector)


def check_content(page, result: PageResult, html_dir: Path, base_url: str, viewport: str) -> None:
    """All the checks of a loaded page that do not click anything."""
    data = page.evaluate(INSPECT_JS)
    tag = viewport
    for check in ("network", "console", "images", "figures", "math", "width", "text"):
        result.ran.add(check)
    for img in data["images"]:
        src = img["src"][len(base_url):] if img["src"].startswith(base_url) else img["src"][:80]
        if img["broken"]:
            result.add("images", f"{tag}: broken image {src}")
        if img["content"]:
            check_figure(result, tag, src, img, desktop=viewport == "desktop")
    if viewport == "desktop":  # links and text do not depend on the window's size
        result.ran.add("links")
        for href in sorted(set(data["links"])):
            why = check_link(html_dir, base_url, href)
            if why:
                result.add("links", why)
        lines = [line.strip() for line in data["text"].splitlines() if NOISE.search(line)]
        for line in dict.fromkeys(lines):  # each offending line once, in page order
            result.add("text", f"{NOISE.search(line).group(0)!r} in: {line[:160]}")
    if data["math_unrendered"]:
        result.add("math", f"{tag}: {data['math_unrendered']} of {data['math_total']} math elements not rendered")
    if data["math_errors"]:
        result.add("math", f"{tag}: {data['math_errors']} MathJax errors")
    for m in sorted({m.group(0) for m in RAW_TEX.finditer(data["prose"])}):
        result.add("math", f"{tag}: raw TeX in the text: {m[:80]!r}")
    for tex in data["tex"]:
        if TEX_CONTROL.search(tex):
            result.add("math", f"{tag}: a control character in the TeX (a string escape ate a backslash): {tex[:80]!r}")
    for m in sorted({m.group(0) for m in TEX_WORDS.finditer(data["prose"] + " " + data["math_text"])}):
        result.add("math", f"{tag}: a TeX command shown as letters: {m!r}")
    if viewport == "desktop":
        for w in data["wide_math"]:
            result.add("math", f"{tag}: display equation {w} px wide in a {data['column_width']} px column")
    if data["scroll_width"] > data["inner_width"] + 1:
        result.add("width", f"{tag}: page {data['scroll_width']} px wide in a {data['inner_width']} px window")
    for w in data["wide"]:
        result.add("width", f"{tag}: {w} in a {data['column_width']} px column")
    for w in data["uncued"]:
        result.add("width", f"{tag}: a scroll box without a visible cue: {w}")
    for c in data["captions"]:
        result.add("width", f"{tag}: a caption that does not fit the column: {c}")
    for c in data["squeezed"]:
        result.add("width", f"{tag}: a table column wrapping one word per line: {c}")
    if viewport == "desktop":
        result.ran.add("nav")
        if data["search_boxes"] > 1:
            result.add("nav", f"{tag}: {data['search_boxes']} search boxes shown")
        if data["header_empty"]:
            result.add("nav", f"{tag}: a {data['header_height']} px top bar shows nothing but a search box")


def check_figure(result: PageResult, tag: str, src: str, img: dict, desktop: bool) -> None:
    """One picture of the text: a described, numbered, captioned figure drawn at 2x."""
    alt = (img["alt"] or "").strip()
    if not alt:
        result.add("images", f"{tag}: image without alt text: {src}")
    elif PATH_ALT.search(alt):
        result.add("images", f"{tag}: alt text is a file path, not a description: {alt[:80]!r}")
    if desktop:  # the figure's structure does not depend on the window's size
        if not img["caption"]:
            result.add("figures", f"{tag}: a figure without a caption: {src}")
        elif not img["numbered"]:
            result.add("figures", f"{tag}: a figure without a number: {img['caption'][:60]!r}")
        if not img["svg"] and img["shown_width"] > 0 and img["natural"] < MIN_DENSITY * img["shown_width"]:
            result.add("figures", f"{tag}: drawn at {img['natural'] / img['shown_width']:.1f}x its displayed "
                                  f"width ({img['natural']} px shown at {round(img['shown_width'])} px): {src}")


def check_navigation(context, page, url, result, base_url, viewport, shots: Path | None, name: str):
    """The sidebar toggles, as a reader uses them (this changes the page: run it last)."""
    tag = viewport
    if page.locator(".bd-sidebar-primary, #pst-primary-sidebar").count() == 0:
        return  # not a page of the theme (a redirect, a plain file)
    result.ran.add("nav")
    before = _visible_count(page, TOC_LINKS)
    if viewport == "desktop":
        if before == 0:
            result.add("nav", f"{tag}: the table of contents is not shown")
            return
        hidden = _click_and_count(page, PRIMARY_TOGGLE, TOC_LINKS)
        if hidden is None:
            result.add("nav", f"{tag}: no visible primary sidebar toggle")
        elif hidden:
            result.add("nav", f"{tag}: the primary sidebar toggle does not hide the table of contents")
        elif not _click_and_count(page, PRIMARY_TOGGLE, TOC_LINKS):
            result.add("nav", f"{tag}: the primary sidebar toggle does not show the table of contents again")
        return
    if before:
        result.add("nav", f"{tag}: the table of contents covers the page before the menu is opened")
        return
    opened = _click_and_count(page, PRIMARY_TOGGLE, TOC_LINKS)
    if shots is not None:
        page.screenshot(path=str(shots / f"{name}.phone-menu.png"))
    if opened is None:
        result.add("nav", f"{tag}: no visible primary sidebar toggle")
    elif not opened:
        result.add("nav", f"{tag}: the primary sidebar toggle does not open the table of contents")
    # The secondary toggle ("on this page"), on a fresh copy of the page, where there is one.
    if page.locator(PAGE_TOC_LINKS).count() == 0:
        return
    page.close()
    page = _open(context, url, result, base_url, tag)
    try:
        opened = _click_and_count(page, SECONDARY_TOGGLE, PAGE_TOC_LINKS)
        if opened == 0:
            result.add("nav", f"{tag}: the secondary sidebar toggle does not open the page contents")
    finally:
        page.close()


def search_word(html_dir: Path) -> str:
    """A word the search must find: the longest word of the pages' titles in the search index."""
    index = html_dir / "searchindex.js"
    titles = re.search(r'"titles":\s*\[(.*?)\]', index.read_text(encoding="utf-8")) if index.is_file() else None
    words = re.findall(r"[A-Za-z]{4,}", titles.group(1)) if titles else []
    return max(words, key=len, default="index")


def check_search(context, html_dir: Path, base_url: str, rel: str, result: PageResult) -> None:
    """The offline search page finds a word of the book's title."""
    result.ran.add("search")
    word = search_word(html_dir)
    page = context.new_page()
    _listen(page, result, base_url, "desktop")
    try:
        page.goto(f"{base_url}{rel}?q={word}", wait_until="load", timeout=TIMEOUT_MS)
        page.wait_for_selector("#search-results li, ul.search li", timeout=15_000)
    except PlaywrightError:
        result.add("search", f"searching {word!r} shows no result")
        page.close()
        return
    try:
        page.wait_for_function(SEARCH_TEXT_JS, timeout=10_000)
    except PlaywrightError:
        result.add("search", f"the results for {word!r} show titles without any text of the page")
    finally:
        page.close()


def check_page(browser, html_dir: Path, base_url: str, rel: str, mode: str,
               shots: Path | None) -> PageResult:
    """Every check of one page in one mode, at both window sizes, each in a fresh browser
    profile (a first visit: nothing stored by an earlier page)."""
    result = PageResult(rel, mode)
    refresh = parse_page(html_dir / rel).refresh
    if refresh:  # a redirect page: its target must exist
        result.ran.add("links")
        why = check_link(html_dir, base_url, urllib.parse.urljoin(base_url + rel, refresh))
        if why:
            result.add("links", f"redirect to {why}")
        return result
    url = base_url + rel
    name = rel.removesuffix(".html").replace("/", "__")
    for viewport in VIEWPORTS:
        context = new_context(browser, viewport, base_url)
        try:
            try:
                page = _open(context, url, result, base_url, viewport)
            except PlaywrightError as e:
                result.add("network", f"{viewport}: the page did not load: {str(e).splitlines()[0]}")
                continue
            check_content(page, result, html_dir, base_url, viewport)
            if shots is not None:
                page.screenshot(path=str(shots / f"{name}.{viewport}.png"), full_page=True)
            try:
                check_navigation(context, page, url, result, base_url, viewport, shots, name)
            except PlaywrightError as e:  # a toggle that cannot be clicked (covered, moving)
                result.add("nav", f"{viewport}: {str(e).splitlines()[0]}")
            if rel == "search.html" and viewport == "desktop":
                check_search(context, html_dir, base_url, rel, result)
        finally:
            context.close()
    return result


# --------------------------------------------------------------------------------------------
# The whole book.

def new_context(browser, viewport: str, base_url: str):
    """A fresh browser profile at the given window size in which only the book loads: every
    other request is aborted (and reported by the page's listeners)."""
    def handle(route):
        url = route.request.url
        if url.startswith(base_url) or url.split(":", 1)[0] in ("data", "blob"):
            route.continue_()
        else:
            route.abort("blockedbyclient")

    context = browser.new_context(viewport=VIEWPORTS[viewport], service_workers="block")
    context.route("**/*", handle)
    return context


def check_book(html_dir: Path, modes=("file", "http"), shots: Path | None = None,
               pages: list[str] | None = None, log=print) -> list[PageResult]:
    """Run every check on every page of html_dir in each mode; one PageResult per page and mode."""
    html_dir = html_dir.resolve()
    pages = find_pages(html_dir) if pages is None else pages
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for mode in modes:
                server = start_server(html_dir) if mode == "http" else None
                base_url = (f"http://127.0.0.1:{server.server_address[1]}/" if server
                            else html_dir.as_uri() + "/")
                try:
                    for rel in pages:
                        result = check_page(browser, html_dir, base_url, rel, mode,
                                            shots if mode == modes[0] else None)
                        log(f"  {mode:4} {rel}: {'ok' if result.ok else 'PROBLEMS'}")
                        results.append(result)
                finally:
                    if server:
                        server.shutdown()
                        server.server_close()
        finally:
            browser.close()
    return results


def report(results: list[PageResult]) -> str:
    """The per-page table, every problem, and a summary line."""
    width = max([len(r.page) for r in results] + [4])
    lines = [f"{'page':{width}}  mode  " + " ".join(f"{c:>7}" for c in CHECKS) + "  result"]
    for r in results:
        lines.append(f"{r.page:{width}}  {r.mode:4}  " + " ".join(f"{r.cell(c):>7}" for c in CHECKS)
                     + ("  ok" if r.ok else "  FAIL"))
    for r in results:
        for check in CHECKS:
            found = r.problems[check]
            if not found:
                continue
            lines.append(f"\n{r.page} [{r.mode}] {check}: {len(found)} problem(s)")
            lines += [f"    {p}" for p in found[:MAX_PER_CHECK]]
            if len(found) > MAX_PER_CHECK:
                lines.append(f"    ... and {len(found) - MAX_PER_CHECK} more")
    bad = sum(not r.ok for r in results)
    pages = len({r.page for r in results})
    modes = "/".join(sorted({r.mode for r in results}))
    lines.append(f"\nbrowser_test: {pages} pages over {modes}: "
                 + (f"every page clean" if not bad else f"{bad} of {len(results)} page checks FAILED"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="book source folder; its build is SRC/_build/html")
    parser.add_argument("--skip-http", action="store_true", help="only open the pages over file://")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for the screenshots (default: SRC/_build/screenshots)")
    args = parser.parse_args(argv)
    html_dir = args.src / "_build" / "html"
    if not html_dir.is_dir() or not find_pages(html_dir):
        print(f"browser_test: no built book in {html_dir}; build it: bash scripts/build_book.sh {args.src}",
              file=sys.stderr)
        return 2
    if not Path(CHROMIUM).is_file():
        print(f"browser_test: {CHROMIUM} missing; install it: bash scripts/setup.sh "
              "(apt-get install chromium)", file=sys.stderr)
        return 2
    if sync_playwright is None:
        print("browser_test: the playwright package is missing; run: bash scripts/setup.sh", file=sys.stderr)
        return 2
    modes = ("file",) if args.skip_http else ("file", "http")
    shots = args.screenshots or args.src / "_build" / "screenshots"
    print(f"browser_test: {html_dir} in {CHROMIUM}, modes {', '.join(modes)}")
    results = check_book(html_dir, modes, shots)
    print(report(results))
    print(f"screenshots: {shots}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
