// The book's own script (added by _config.yml: html_js_files). Plain DOM, no library.
//  1. A table of a notebook's output gets a scroll box of its own, with its caption moved above
//     the box (so that a phone never cuts the caption with the table's columns).
//  2. Every box of the text that scrolls sideways and whose content overflows shows a cue
//     ("scroll sideways"); the cue goes when the window grows and the content fits.
//  3. Table headings that name a glossary term link to it (_static/glossary_terms.js).
//  4. On the search page each result shows a passage of its page around the first search word,
//     read from _static/search_text.js (written after the build by scripts/search_text.py): the
//     search itself cannot fetch the pages of an offline copy opened from file://.
(() => {
  "use strict";
  const CUE = "scroll-cue";

  function wrapTables(col) {
    for (const table of col.querySelectorAll(".cell_output table")) {
      if (table.parentElement.classList.contains("table-scroll")) continue;
      const box = document.createElement("div");
      box.className = "table-scroll";
      table.before(box);
      box.appendChild(table);
      const caption = table.querySelector(":scope > caption");
      if (caption) {
        const p = document.createElement("p");
        p.className = "table-caption";
        p.innerHTML = caption.innerHTML;
        box.before(p);
        caption.remove();
      }
    }
  }

  // A cell of several words keeps a width of its own (at most 13em), so that a table that
  // scrolls never squeezes it into one word per line.
  function keepWordsTogether(col) {
    for (const cell of col.querySelectorAll("td, th")) {
      const text = cell.textContent.trim();
      if (text.split(/\s+/).length < 3) continue;
      cell.style.minWidth = Math.min(13, Math.max(7, 0.4 * text.length)).toFixed(1) + "em";
    }
  }

  function scrolls(el) {
    const ox = getComputedStyle(el).overflowX;
    return (ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1;
  }

  function markScrollBoxes(col) {
    for (const old of col.querySelectorAll("." + CUE)) {
      if (!old.nextElementSibling || !scrolls(old.nextElementSibling)) old.remove();
    }
    for (const el of col.querySelectorAll("*")) {
      if (el.classList.contains(CUE) || (el.tagName.startsWith("MJX-") && el.tagName !== "MJX-CONTAINER")) continue;
      if (!scrolls(el)) continue;
      const prev = el.previousElementSibling;
      if (prev && prev.classList.contains(CUE)) continue;
      const cue = document.createElement("span");
      cue.className = CUE;
      cue.setAttribute("aria-hidden", "true");
      cue.textContent = "scroll sideways for more \u2192";
      el.before(cue);
    }
  }

  function searchSummaries() {
    const results = document.getElementById("search-results");
    if (!results) return;
    const words = (new URLSearchParams(location.search).get("q") || "").toLowerCase().split(/\s+/).filter(Boolean);
    const add = () => {
      const text = window.BOOK_PAGE_TEXT;
      if (!text) return;
      for (const li of results.querySelectorAll("li")) {
        if (li.querySelector("p.context")) continue;
        const a = li.querySelector("a");
        if (!a) continue;
        const doc = a.getAttribute("href").split("#")[0].replace(/\.html$/, "").replace(/^(\.\.\/)+/, "");
        const body = text[doc];
        if (!body) continue;
        const lower = body.toLowerCase();
        const at = Math.max(0, Math.min(...words.map(w => lower.indexOf(w)).filter(i => i >= 0), body.length) - 100);
        const p = document.createElement("p");
        p.className = "context";
        p.textContent = (at > 0 ? "..." : "") + body.substr(at, 240).trim() + (at + 240 < body.length ? "..." : "");
        li.appendChild(p);
      }
    };
    loadScript("search_text.js", add);
    new MutationObserver(add).observe(results, {childList: true, subtree: true});
  }

  // Table headings that name a term of the glossary link to it (a trailing "(unit)" ignored).
  function linkTerms(col) {
    const terms = window.BOOK_GLOSSARY;
    if (!terms) return;
    const root = document.documentElement.dataset.content_root || "";
    const lower = Object.fromEntries(Object.entries(terms).map(([k, v]) => [k.toLowerCase(), v]));
    for (const th of col.querySelectorAll("th")) {
      if (th.querySelector("a")) continue;
      const key = th.textContent.trim().replace(/\s*\([^)]*\)$/, "").toLowerCase();
      if (!lower[key]) continue;
      const a = document.createElement("a");
      a.href = root + lower[key];
      a.className = "glossary-link";
      while (th.firstChild) a.appendChild(th.firstChild);
      th.appendChild(a);
    }
  }

  function loadScript(name, then) {
    const script = document.createElement("script");
    script.src = (document.documentElement.dataset.content_root || "") + "_static/" + name;
    script.onload = then;
    document.head.appendChild(script);
  }

  function start() {
    const col = document.querySelector(".bd-article");
    if (col) {
      wrapTables(col);
      keepWordsTogether(col);
      loadScript("glossary_terms.js", () => linkTerms(col));
      const mark = () => markScrollBoxes(col);
      mark();
      window.addEventListener("load", () => {
        mark();
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(mark);
      });
      window.addEventListener("resize", mark);
    }
    searchSummaries();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
