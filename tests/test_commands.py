"""Every command the book and the README print works as printed.

* Each line of a ```` ```bash ```` block in ``book/*.md`` and ``README.md`` is run by bash, in
  a folder that looks like the repository root (``.venv`` and ``book/`` linked in), at smoke
  scale: the only changes are the ones a smoke check needs, named in ``AT_SMOKE`` (scale smoke,
  device cpu, the data root a smoke data set, the results store a copy of the smoke book's).
  ``make`` targets are the harness itself (``make test`` runs this file; the smoke book of
  ``conftest.smoke_book`` is ``make book SCALE=smoke``'s function) and are not rerun.
* An inline command (```` `python -m erase ...` ````) is parsed by erase's own parser, and an
  inline papermill fragment (```` `-p rho 2.4` ````, ```` `-y "seeds: [0, 1]"` ````) is read
  as papermill reads it and checked against the chapter's parameters and their kinds; a list
  given with ``-p`` (a string to papermill) fails: the book prints the ``-y`` form.
* A synopsis (placeholders such as ``DIR`` or ``[--bf16]``) is a ```` ```text ```` block.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from erase.book import chapter

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]
slow = pytest.mark.slow

# What a smoke check changes in a printed command (pattern, replacement), and nothing else.
AT_SMOKE = [(r"-p scale \w+", "-p scale smoke"), (r"--scale \w+", "--scale smoke"),
            (r"-p device cuda", "-p device cpu"), (r"--device cuda", "--device cpu"),
            (r"/data/fastmri", "{data_root}")]
SYNOPSIS = re.compile(r"<\w+>|\b(?:DIR|FILE|NAME|VALUE)\b|\.\.\.|\[--|\|[a-z]")


def bash_blocks(text: str) -> list[str]:
    """The ```bash blocks of a Markdown text (indented ones too), dedented."""
    blocks = re.findall(r"^([ \t]*)```bash\n(.*?)^\1```", text, flags=re.S | re.M)
    return [re.sub(rf"^{indent}", "", body, flags=re.M) for indent, body in blocks]


def commands_of(block: str) -> list[str]:
    """A block's commands: continued lines joined, heredocs kept whole, comments and blank
    lines dropped."""
    lines, commands, heredoc = block.replace("\\\n", " ").splitlines(), [], None
    for line in lines:
        if heredoc is not None:
            commands[-1] += "\n" + line
            if line.strip() == heredoc:
                heredoc = None
            continue
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        commands.append(line)
        match = re.search(r"<<-?'?(\w+)'?", line)
        heredoc = match.group(1) if match else None
    return commands


def at_smoke(command: str, data_root: Path) -> str:
    """``command`` as a smoke check runs it (``AT_SMOKE``); a chapter run that names no
    scale gets ``-p scale smoke``."""
    for pattern, replacement in AT_SMOKE:
        command = re.sub(pattern, replacement.format(data_root=data_root), command)
    if "papermill" in command and "-p scale" not in command:
        command += " -p scale smoke"
    return command


def printed_commands() -> list[tuple[str, str]]:
    """(document, command) for every command of every bash block, in document order."""
    return [(path.name, command) for path in DOCUMENTS
            for block in bash_blocks(path.read_text()) for command in commands_of(block)]


def test_the_documents_print_commands_and_the_reader_reruns_are_among_them():
    found = printed_commands()
    assert len(found) >= 10, found
    assert any("papermill" in c and "-y" in c for _, c in found)
    for _, command in found:
        assert not SYNOPSIS.search(command), f"a synopsis in a bash block: {command}"


def run_key(command: str):
    """What a command computes: a chapter and its parameters for a papermill run (the output
    file's name aside), else the command itself. Two pages printing the same run share it."""
    notebook = re.search(r"book/\w+\.md", command)
    if "papermill" not in command or notebook is None:
        return command
    return notebook.group(0), tuple(sorted((n, repr(v))
                                           for n, v, _ in papermill_fragments(command)))


@pytest.fixture(scope="module")
def ran(smoke_book, tmp_path_factory):
    """Every printed command run at smoke scale, two at a time: {(document, printed): (the
    command as run, its CompletedProcess)}. Each document's commands run in order in a folder
    of its own that looks like the repository root (``.venv`` and ``book/`` linked in; a
    manifest written by one command is read by the next); a run that another page printed
    too runs once. The results store is a copy of the smoke book's."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if smoke_book["error"]:
        pytest.fail(f"the smoke book failed, its store cannot be reused: {smoke_book['error']}")
    top = tmp_path_factory.mktemp("commands")
    store = top / "store"
    shutil.copytree(smoke_book["out"] / "_output", store)
    data_root = next((store / "data").glob("synthetic-smoke-*"))
    env = {**os.environ, "ERASE_RESULTS": str(store)}
    env.pop("ERASE_REQUIRE_CHROMIUM", None)
    by_document: dict = {}
    for document, printed in printed_commands():
        if printed.split()[0] != "make":
            by_document.setdefault(document, []).append(printed)
    lock, started, done, results = threading.Lock(), {}, {}, {}

    def run(command: str, where: Path):
        return subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=where, env=env,
                              capture_output=True, text=True, timeout=900)

    def document_commands(document: str) -> None:
        where = top / Path(document).stem
        where.mkdir()
        (where / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        (where / "book").symlink_to(ROOT / "book", target_is_directory=True)
        for printed in by_document[document]:
            command = at_smoke(printed, data_root)
            key = run_key(command) if "split.json" not in command else (document, command)
            with lock:
                first = key not in started
                if first:
                    started[key] = threading.Event()
            if first:
                try:
                    done[key] = run(command, where)
                finally:  # a run that timed out must not leave its twins waiting
                    started[key].set()
            else:
                started[key].wait()
            results[(document, printed)] = (command, done[key])

    with ThreadPoolExecutor(max_workers=2) as pool:  # two cores: two chapter runs at a time
        list(pool.map(document_commands, sorted(by_document,
                                                key=lambda d: -len(by_document[d]))))
    return results


@slow
@pytest.mark.parametrize("document", sorted({d for d, c in printed_commands()
                                             if c.split()[0] != "make"}))
def test_every_printed_command_runs_at_smoke_scale(document, ran):
    for (doc, printed), (command, proc) in ran.items():
        if doc != document:
            continue
        assert proc.returncode == 0, (f"{document}: `{printed}` failed as run at smoke scale "
                                      f"(`{command}`):\n{proc.stderr[-3000:]}")
        assert "Traceback" not in proc.stderr, f"{document}: `{printed}`:\n{proc.stderr[-3000:]}"


# ------------------------------------------------------------------ inline commands and fragments

def inline_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    prose = re.sub(r"^([ \t]*)```.*?^\1```", "", text, flags=re.S | re.M)
    return re.findall(r"(?<!`)`([^`\n]+)`(?!`)", prose)


def papermill_fragments(span: str) -> list[tuple[str, object, str]]:
    """(name, value, flag) for each ``-p NAME VALUE`` / ``-y "NAME: VALUE"`` of a span, the
    value as papermill's command line hands it to the notebook."""
    from papermill.cli import _resolve_type

    words, found = shlex.split(span), []
    for i, word in enumerate(words):
        following = words[i + 1:i + 3]
        if word == "-p":
            found.append((following[0], _resolve_type(following[1]), "-p")
                         if len(following) == 2 else (" ".join(following), None, "-p no value"))
        elif word == "-y" and following:
            found += [(name, value, "-y") for name, value in yaml.safe_load(following[0]).items()]
    return found


def chapter_parameters(path: Path) -> set[str]:
    """The names a chapter's parameters cell assigns."""
    source = re.search(r":tags: \[parameters[^\n]*\n(.*?)```", path.read_text(), flags=re.S)
    if source is None:
        return set()
    names: dict = {}
    exec(source.group(1), {}, names)
    return set(names)


def test_inline_commands_parse_and_parameters_are_known_and_of_their_kind():
    from erase import cli

    parser, problems, checked = cli.parser(), [], 0
    chapters = {p.name: chapter_parameters(p) for p in (ROOT / "book").glob("*.md")}
    every = set().union(*chapters.values()) | set(chapter.COMMON)
    for path in DOCUMENTS:
        known = chapters.get(path.name) or every  # a page about another chapter: any of them
        for span in inline_spans(path.read_text()):
            if SYNOPSIS.search(span):
                continue
            erase_call = re.match(r"(?:\.venv/bin/)?python -m erase (.*)$", span)
            if erase_call:
                checked += 1
                try:
                    parser.parse_args(shlex.split(erase_call.group(1)))
                except SystemExit:
                    problems.append(f"{path.name}: `{span}` does not parse")
            for name, value, flag in (papermill_fragments(span)
                                      if re.search(r"-[py] ", span) else ()):
                checked += 1
                kind = chapter.PARAMETER_KINDS.get(name, ("", True))[0]
                if name not in known:
                    problems.append(f"{path.name}: `{span}` sets {name}, unknown here")
                elif flag != "-y" and kind in chapter.YAML_EXAMPLES:
                    problems.append(f"{path.name}: `{span}` gives {name} with -p, which passes "
                                    f"a string: print -y \"{name}: ...\"")
                else:
                    try:
                        chapter.typed_parameter(name, value)
                    except Exception as err:
                        problems.append(f"{path.name}: `{span}`: {err}")
    assert checked >= 5
    assert not problems, "\n".join(problems)
