"""The book: executing the chapters and rendering them (``build``: ``build_book``, ``find_root``),
the offline assets for plotly and MathJax (``offline``, also the Sphinx extension
``erase.book.offline``) and the chapters' shared setup (``chapter``).

``build_book``, ``find_root``, ``BookError`` and ``Interrupted`` are re-exported for the
command line; ``erase.book.build`` is the module.
"""
from .build import BookError, Interrupted, build_book, find_root

__all__ = ["BookError", "Interrupted", "build_book", "find_root"]
