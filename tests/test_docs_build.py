"""The book builds with `mkdocs build --strict`: no broken link, snippet, figure or notebook."""

from __future__ import annotations

from pathlib import Path


def test_book_builds_strict(site_build) -> None:
    assert site_build.returncode == 0, site_build.output[-6000:]
    print(f"mkdocs build --strict took {site_build.seconds:.1f} s")
    assert (site_build.site_dir / "index.html").is_file()


def test_mathjax_is_served_by_the_site(built_site: Path) -> None:
    tex_svg = built_site / "assets" / "mathjax" / "tex-svg.js"
    assert tex_svg.stat().st_size > 1_000_000  # the whole renderer, not a stub
    html = (built_site / "index.html").read_text(encoding="utf-8")
    assert 'src="assets/mathjax/tex-svg.js"' in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html and "fonts.googleapis" not in html
