"""Build-side helpers for the book (figures, notebooks, snippet checks, MkDocs hooks).

Not part of the `transformer` package and not installed with it: MkDocs and the tests import it
from the repository root.
"""
