// MathJax 3 configuration for pymdownx.arithmatex (generic mode), after Material for MkDocs.
// The library itself (assets/mathjax/tex-svg.js) is copied into the site by book/hooks.py, so
// no request leaves the site. This file may be loaded twice on notebook pages (mkdocs-jupyter
// points its MathJax <script> here), so it only configures once and never replaces a running
// MathJax.
(function () {
  if (window.MathJax) {
    return;
  }
  window.MathJax = {
    tex: {
      // arithmatex emits \( \) and \[ \]; Jupyter notebooks keep $ and $$.
      inlineMath: [["\\(", "\\)"], ["$", "$"]],
      displayMath: [["\\[", "\\]"], ["$$", "$$"]],
      processEscapes: true,
      processEnvironments: true,
    },
    options: {
      // Only typeset what arithmatex marked (and notebook Markdown cells): nothing else on
      // the page, code blocks included, is ever read as TeX. Material uses ".*|", which also
      // matches elements with no class at all, so the <p> inside a notebook cell would be
      // skipped; ".+" skips every element that has a class, unless processHtmlClass matches.
      ignoreHtmlClass: ".+",
      processHtmlClass: "arithmatex|jp-MarkdownOutput",
    },
  };
  // With Material's instant navigation, pages are swapped without a reload: typeset again.
  if (window.document$) {
    let first = true;
    window.document$.subscribe(function () {
      if (first) {
        first = false; // MathJax typesets the first page by itself when it starts.
        return;
      }
      window.MathJax.startup.promise.then(function () {
        window.MathJax.typesetClear();
        window.MathJax.texReset();
        return window.MathJax.typesetPromise();
      });
    });
  }
})();
