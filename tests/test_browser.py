"""Open every page of the built book in headless Chromium and check what a reader sees.

For each page (every ``index.html`` of the site except ``404.html``, ``search/`` and ``assets/``)
the page's source (``docs/X.md``, or ``docs/X.py`` for a notebook) says what must be there:

* every response is 200 (or 304) and no request leaves 127.0.0.1 (all others are aborted and
  reported); the console shows no error;
* **display equations**: the number of ``mjx-container[display="true"]`` equals the number of
  display equations in the source. A display equation is a ``$$ … $$``, ``\\[ … \\]`` or
  ``\\begin{env} … \\end{env}`` block whose opening delimiter starts a line (after indentation)
  outside code fences; in a notebook, the same in its Markdown cells. Every inline ``\\( … \\)``
  is typeset too (no ``.arithmatex`` element is left without an ``mjx-container``), and MathJax
  reports no TeX error;
* **included code**: the number of highlighted code blocks whose title starts with
  ``transformer/`` equals the number of fences that hold a ``--8<-- "transformer/…"`` include,
  each block is highlighted (Pygments token spans), and each included section's first line is on
  the page;
* **code fits**: at a 1300 × 900 viewport no ``pre > code`` block (collapsed ones opened) is
  wider than its box, so no code scrolls sideways;
* **figures**: the number of inline ``<svg>`` figures in the article is at least the number of
  markdown-exec blocks (``exec="on"``) whose code calls ``svg(`` (``book.figures.svg``), and each
  has a size.

A screenshot of the attention chapter is saved to ``test-artifacts/attention.png``.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from book.snippets import find_includes

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

_FENCE = re.compile(r"^[ \t]*(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")
_BEGIN = re.compile(r"\\begin\{(?P<env>[^}]+)\}")
_EXEC = re.compile(r'\bexec="(?:on|1|true|yes)"', re.IGNORECASE)


# --- what the source promises ------------------------------------------------------------------


def _blocks(markdown: str) -> Iterator[tuple[str, str | None, str]]:
    """Yield ("text", None, line) for lines outside fences and ("fence", info, body) per fence."""
    fence: tuple[str, str] | None = None
    body: list[str] = []
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, body = (match["ticks"], match["info"].strip()), []
            else:
                yield "text", None, line
        elif match and match["ticks"].startswith(fence[0]) and not match["info"].strip():
            yield "fence", fence[1], "\n".join(body)
            fence = None
        else:
            body.append(line)


def count_display_math(markdown: str) -> int:
    """Display equations in Markdown, by the rule in the module docstring."""
    count = 0
    closing: str | None = None
    for kind, _, line in _blocks(markdown):
        if kind != "text":
            continue
        text = line.strip()
        if closing is not None:
            if closing in text:
                closing = None
            continue
        if text.startswith("$$"):
            count += 1
            closing = None if "$$" in text[2:] else "$$"
        elif text.startswith("\\["):
            count += 1
            closing = None if "\\]" in text[2:] else "\\]"
        elif (begin := _BEGIN.match(text)) is not None:
            count += 1
            end = f"\\end{{{begin['env']}}}"
            closing = None if end in text else end
    return count


def page_source(site: Path, page: Path) -> Path | None:
    rel = page.parent.relative_to(site).as_posix()
    if rel == ".":
        return DOCS / "index.md"
    for candidate in (f"{rel}.md", f"{rel}/index.md", f"{rel}.py", f"{rel}.ipynb"):
        if (DOCS / candidate).is_file():
            return DOCS / candidate
    return None


def source_markdown(source: Path) -> str:
    if source.suffix == ".md":
        return source.read_text(encoding="utf-8")
    import jupytext

    notebook = jupytext.read(source)
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def section_first_line(path: str, name: str) -> str:
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if f"[start:{name}]" in line)
    return next(line.strip() for line in lines[start + 1 :] if line.strip())


def expectations(source: Path) -> dict:
    markdown = source_markdown(source)
    fences = [(info, body) for kind, info, body in _blocks(markdown) if kind == "fence"]
    includes = [
        i
        for i in (find_includes(ROOT, [source]) if source.suffix == ".md" else [])
        if i.path.startswith("transformer/")
    ]
    return {
        "display_math": count_display_math(markdown),
        "included_blocks": sum(
            1 for info, body in fences if re.search(r'8<-+[ \t]+["\']transformer/', body)
        ),
        "included_lines": [
            section_first_line(i.path, i.name) for i in includes if i.name is not None
        ],
        "figures": sum(1 for info, body in fences if _EXEC.search(info or "") and "svg(" in body),
    }


# --- serving and driving the browser -----------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
            "(.ci/run does). Never `playwright install`.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        pytest.fail(f"playwright is missing ({error}): pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """A browser context that only reaches the local server, recording everything else."""

    def __init__(self, browser, site_url: str) -> None:
        self.origin = urlsplit(site_url)
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.problems: list[str] = []
        self.context.route("**/*", self._route)

    def _route(self, route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or (
            url.hostname == "127.0.0.1" and url.port == self.origin.port
        ):
            route.continue_()
        else:
            self.problems.append(f"external request blocked: {route.request.url}")
            route.abort()

    def open(self, url: str):
        page = self.context.new_page()
        page.on(
            "console",
            lambda msg: (
                msg.type == "error"
                and self.problems.append(f"console error: {msg.text} ({msg.location})")
            ),
        )
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on(
            "response",
            lambda r: (
                r.status not in (200, 304) and self.problems.append(f"HTTP {r.status}: {r.url}")
            ),
        )
        page.on(
            "requestfailed",
            lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})"),
        )
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        # MathJax typesets when it starts; its startup promise resolves when that is done.
        page.evaluate(
            "async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
            " { await MathJax.startup.promise; } }"
        )
        return page

    def close(self) -> None:
        self.context.close()


MEASURE = """() => {
  const article = document.querySelector("article.md-content__inner") || document.body;
  const titled = [...article.querySelectorAll(".highlight")].filter((block) => {
    const title = block.querySelector(":scope > .filename");
    return title && title.textContent.trim().startsWith("transformer/");
  });
  const figures = [...article.querySelectorAll("svg")].filter((svg) =>
    !svg.parentElement.closest("svg") && !svg.closest("mjx-container") &&
    !svg.closest(".twemoji, .md-icon, .md-content__button, .md-clipboard"));
  return {
    display_math: document.querySelectorAll('mjx-container[display="true"]').length,
    untypeset: [...document.querySelectorAll(".arithmatex")]
      .filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.trim()),
    tex_errors: document.querySelectorAll('[data-mml-node="merror"], mjx-merror').length,
    included_blocks: titled.length,
    unhighlighted: titled.filter((b) => b.querySelectorAll("code span[class]").length === 0)
      .map((b) => b.querySelector(".filename").textContent),
    included_text: titled.map((b) => b.querySelector("code").textContent).join("\\n"),
    figures: figures.length,
    empty_figures: figures.filter((svg) => {
      const box = svg.getBoundingClientRect();
      return box.width < 10 || box.height < 10;
    }).length,
  };
}"""


# Code blocks fit the content column at this viewport (1300 x 900): no horizontal scrolling.
# Collapsed blocks (``??? note`` details) are opened first, so the full sources are measured too.
OVERFLOW = """() => {
  const article = document.querySelector("article.md-content__inner") || document.body;
  article.querySelectorAll("details").forEach((d) => { d.open = true; });
  return [...article.querySelectorAll("pre > code")]
    .filter((code) => code.scrollWidth > code.clientWidth + 1)
    .map((code) => {
      const block = code.closest(".highlight");
      const title = block && block.querySelector(".filename");
      const first = code.textContent.trim().split("\\n")[0].slice(0, 60);
      return `${code.scrollWidth} > ${code.clientWidth} px: ${title ? title.textContent : first}`;
    });
}"""


def site_pages(site: Path) -> list[Path]:
    skip = ("search", "assets")
    return sorted(p for p in site.rglob("index.html") if p.relative_to(site).parts[0] not in skip)


def check_page(watch: PageWatch, site: Path, site_url: str, page_file: Path) -> list[str]:
    rel = page_file.relative_to(site).as_posix()
    source = page_source(site, page_file)
    if source is None:
        return [f"{rel}: no source page under docs/"]
    expected = expectations(source)
    page = watch.open(f"{site_url}/{rel.removesuffix('index.html')}")
    try:
        found = page.evaluate(MEASURE)
        overflowing = page.evaluate(OVERFLOW)
        if page_file.parent.name == "03-attention":
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "attention.png"), full_page=True)
        link = page.query_selector("a.book-notebook-link")
        notebook_ok = (
            page.evaluate(
                "async (href) => { const r = await fetch(href);"
                " return r.ok && Array.isArray((await r.json()).cells); }",
                link.get_attribute("href"),
            )
            if link
            else None
        )
    finally:
        page.close()

    problems = []
    if found["display_math"] != expected["display_math"]:
        problems.append(
            f"{found['display_math']} display equations typeset, "
            f"{expected['display_math']} in {source.name}"
        )
    if found["untypeset"]:
        problems.append(f"math left untypeset: {found['untypeset'][:3]}")
    if found["tex_errors"]:
        problems.append(f"{found['tex_errors']} TeX errors")
    if found["included_blocks"] != expected["included_blocks"]:
        problems.append(
            f"{found['included_blocks']} code blocks titled transformer/..., "
            f"{expected['included_blocks']} fences with includes in {source.name}"
        )
    if found["unhighlighted"]:
        problems.append(f"included code not highlighted: {found['unhighlighted']}")
    missing = [line for line in expected["included_lines"] if line not in found["included_text"]]
    if missing:
        problems.append(f"included sections missing from the page: {missing}")
    if found["figures"] < expected["figures"]:
        problems.append(f"{found['figures']} figures, {expected['figures']} figure blocks")
    if found["empty_figures"]:
        problems.append(f"{found['empty_figures']} figures have no size")
    if overflowing:
        problems.append(f"code blocks scroll sideways at 1300 px: {overflowing}")
    if source.suffix == ".md" and notebook_ok is not True:
        problems.append("no working 'Run this chapter as a notebook' link")
    return [f"{rel}: {p}" for p in problems]


def test_every_page_renders_offline_with_math_code_and_figures(
    browser, built_site: Path, site_url: str
) -> None:
    pages = site_pages(built_site)
    sources = {page_source(built_site, p) for p in pages}
    chapters = set(DOCS.rglob("*.md"))
    assert chapters <= sources, f"chapters without a page: {sorted(chapters - sources)}"

    watch = PageWatch(browser, site_url)
    problems: list[str] = []
    try:
        for page_file in pages:
            before = len(watch.problems)
            page_problems = check_page(watch, built_site, site_url, page_file)
            rel = page_file.relative_to(built_site).as_posix()
            problems += page_problems + [f"{rel}: {p}" for p in watch.problems[before:]]
    finally:
        watch.close()
    assert problems == [], f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(
        problems
    )
    assert (ARTIFACTS / "attention.png").stat().st_size > 10_000


def test_search_separator_splits_math_and_code(built_site: Path) -> None:
    """`softmax` is a search word inside \\operatorname{softmax} and torch.softmax(, and
    `d_model` is found through the same split of the query."""
    index = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    separator = re.compile(index["config"]["separator"])
    assert "softmax" in separator.split(r"\operatorname{softmax}\!\left(")
    assert "softmax" in separator.split("weights = torch.softmax(scores, dim=-1)")
    assert separator.split("d_model") == ["d", "model"]


def test_search_works_offline(browser, built_site: Path, site_url: str) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md"))
    watch = PageWatch(browser, site_url)
    try:
        page = watch.open(f"{site_url}/")
        for query in ("softmax", "d_model"):
            assert query in text, f"no chapter mentions {query!r} any more: pick another word"
            # Material searches as you type: type like a reader, don't just set the value.
            page.fill("input.md-search__input", "")
            page.click("input.md-search__input")
            page.keyboard.type(query)
            page.wait_for_selector(".md-search-result__item", timeout=10_000)
            hits = page.eval_on_selector_all(".md-search-result__item", "els => els.length")
            assert hits >= 1, f"search for {query!r} found nothing"
    finally:
        watch.close()
    assert watch.problems == []
