"""Open every page of a built book in a real headless browser, as a reader would, and fail on what
a reader would trip over.

    .venv/bin/python scripts/browser_test.py SRC [--skip-http] [--screenshots DIR]

SRC is a book source folder whose build is in SRC/_build/html (bash scripts/build_book.sh SRC).
Every page is opened in Debian's Chromium (/usr/bin/chromium, driven by playwright; no browser is
downloaded) over file:// and over a local HTTP server on 127.0.0.1, at desktop size (1280x900)
and at phone size (390x844), with the network blocked: any request that is not for the book
itself is aborted and counted as a failure. A page fails on

- network  a request outside the book (aborted), a file or URL of the book that does not load;
- console  an error in the browser console or an uncaught exception;
- images   an image that did not decode (naturalWidth 0);
- links    a link into the book whose page or anchor does not exist;
- math     math that MathJax did not render (TeX delimiters left in the text, a .math element
           without mjx-container, a MathJax error), or a display equation wider than the text
           column on a desktop (on a phone it may scroll inside its own box);
- width    a page wider than the window, or content of the text column wider than the column
           that is neither inside a scroll box that fits (wide tables, code) nor fitting itself;
- text     visible text that looks like a warning, a traceback, an object repr or a local path;
- nav      on a phone, the primary sidebar toggle does not open the table of contents (and the
           secondary toggle, where shown, not the page contents); on a desktop, the table of
           contents is not shown, the toggle does not hide and show it again, or more than one
           search box is shown, or a top bar shows nothing but a search box;
- search   (search.html only) the offline search finds nothing for a word every book has.

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
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
CHECKS = ("network", "console", "images", "links", "math", "width", "text", "nav", "search")
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
}"""

# Everything measured on a loaded page, in one pass.
INSPECT_JS = """() => {
  const out = {};
  const shown = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden'; };
  const describe = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + [...e.classList].slice(0, 3).map(c => '.' + c).join('');
  out.images = [...document.images].map(i => ({src: i.currentSrc || i.src,
    broken: !i.complete || i.naturalWidth === 0}));
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
    for (const m of col.querySelectorAll('mjx-container[display="true"]')) {
      const w = m.querySelector('mjx-math'); if (!w) continue;
      const mw = w.getBoundingClientRect().width;
      if (mw > right - left - 2 + 1) out.wide_math.push(Math.round(mw));
    }
  } else {
    out.column_width = null;
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
    for check in ("network", "console", "images", "math", "width", "text"):
        result.ran.add(check)
    for img in data["images"]:
        if img["broken"]:
            result.add("images", f"{tag}: broken image {img['src'][len(base_url):] or img['src']}")
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
    if viewport == "desktop":
        for w in data["wide_math"]:
            result.add("math", f"{tag}: display equation {w} px wide in a {data['column_width']} px column")
    if data["scroll_width"] > data["inner_width"] + 1:
        result.add("width", f"{tag}: page {data['scroll_width']} px wide in a {data['inner_width']} px window")
    for w in data["wide"]:
        result.add("width", f"{tag}: {w} in a {data['column_width']} px column")
    if viewport == "desktop":
        result.ran.add("nav")
        if data["search_boxes"] > 1:
            result.add("nav", f"{tag}: {data['search_boxes']} search boxes shown")
        if data["header_empty"]:
            result.add("nav", f"{tag}: a {data['header_height']} px top bar shows nothing but a search box")


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
