"""The book's project root is passed in, never derived from where the package is installed.

``erase book`` builds the book of ``--root`` (default: the current directory when it holds
``_toc.yml``, else the checkout this package runs from); a folder without a book is refused in
one line, before anything is written. ``erase.book.build`` is the module, ``build_book`` the
function.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from erase import cli
from erase.book import build as book

ROOT = Path(__file__).resolve().parents[1]


def test_erase_book_build_is_the_module_and_build_book_the_function():
    assert inspect.ismodule(importlib.import_module("erase.book").build)
    assert importlib.import_module("erase.book").build is book
    from erase.book import build_book

    assert build_book is book.build_book and inspect.isfunction(build_book)


def test_the_root_is_the_current_directory_when_it_holds_a_book(tmp_path, monkeypatch):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/01\n")
    monkeypatch.chdir(tmp_path)
    assert book.find_root() == tmp_path.resolve()
    assert book.find_root(tmp_path) == tmp_path.resolve()


def test_else_the_checkout_the_package_runs_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert book.find_root() == ROOT  # this checkout (an editable install, or PYTHONPATH)


def test_neither_is_a_clear_error(tmp_path, monkeypatch):
    """An installed package (its folder holds no _toc.yml) run outside a project."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(book, "PACKAGE_CHECKOUT", tmp_path / "site-packages")
    with pytest.raises(book.BookError, match="no book to build: neither .* holds _toc.yml; "
                                             "run from the project's root .* or pass --root"):
        book.find_root()


def test_the_library_takes_the_root_it_is_given(tmp_path):
    for function in (book.toc_documents, book.execute, book.assemble, book.render,
                     book.build_book):
        first = next(iter(inspect.signature(function).parameters.values()))
        assert first.name == "root" and first.default is inspect.Parameter.empty, function
    with pytest.raises(book.BookError, match="holds no book"):
        book.assemble(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_command_line_refuses_a_root_without_a_book_in_one_line(tmp_path, capsys):
    code = cli.main(["book", "--scale", "smoke", "--root", str(tmp_path),
                     "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"erase: error: {tmp_path.resolve()} holds no book (no _toc.yml): pass the "
                   "project's root, the folder with _toc.yml, _config.yml and book/"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_command_line_outside_any_book_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(book, "PACKAGE_CHECKOUT", tmp_path / "site-packages")
    code = cli.main(["book", "--scale", "smoke"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("erase: error: no book to build: neither "), err
    assert list(tmp_path.iterdir()) == []


def test_every_command_has_one_function():
    commands = next(a for a in cli.parser()._actions if a.dest == "command").choices
    assert set(cli.COMMANDS) == set(commands)
    assert all(callable(f) for f in cli.COMMANDS.values())
