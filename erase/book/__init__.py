"""The book: executing the chapters and rendering them (``build``), the offline assets for plotly
and MathJax (``offline``, also the Sphinx extension ``erase.book.offline``) and the chapters'
shared setup (``chapter``).

``build`` and ``BookError`` are re-exported for the command line. Note that the re-exported
function ``build`` hides the module of the same name as an attribute of this package: reach
the module with ``from erase.book.build import ...`` or ``importlib.import_module``.
"""
from .build import BookError, build

__all__ = ["BookError", "build"]
