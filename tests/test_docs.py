"""The documentation checked against the code (docs/, README.md,
CHANGELOG.md): every file and test a page names exists, every
`casyncio.` name it mentions is there, and the Guide's Python blocks
run on casyncio. (The Sphinx build itself, with warnings as errors, is
tests/run_all.sh's docs step.)"""
import glob
import os
import re
import subprocess
import sys

import pytest

import casyncio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(
    [os.path.join(ROOT, "docs", name)
     for name in os.listdir(os.path.join(ROOT, "docs"))
     if name.endswith(".md")] +
    [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CHANGELOG.md")])
# A path in backquotes, from one of the tree's top folders.
PATH = re.compile(r"`((?:src|tests|tools|bench|casyncio|docs)/[\w./*-]*[\w*])"
                  r"(?:::(\w+))?(?:::(\w+))?")
# Placeholders a path may hold (bench/results/PYTHON.jsonl): any name.
PLACEHOLDERS = re.compile(r"\b(PYTHON|VERSION|ARCH)\b")
# A file of src/ that design.md names on its own (**loop.c**, **a.h, b.c**).
SOURCE_FILE = re.compile(r"\b(cio_\w+|\w+)\.[ch]\b")
SYSTEM_HEADERS = {"Python.h"}
NAME = re.compile(r"\bcasyncio\.((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)")
# Folders whose files the pages name without their folder.
SOURCE_DIRS = ("src/core", "src/ext", "tests/core", "bench",
               "tests/faults", "tools", "tests", "casyncio")


def read(page):
    with open(page, encoding="utf-8") as f:
        return f.read()


def ids(pages):
    return [os.path.relpath(p, ROOT) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_named_files_and_tests_exist(page):
    missing = []
    for path, first, second in PATH.findall(read(page)):
        full = os.path.join(ROOT, PLACEHOLDERS.sub("*", path))
        if not glob.glob(full):
            missing.append(path)
        elif first:  # tests/x.py::test_name or ::Class::test_name
            source = read(full)
            for name in filter(None, (first, second)):
                if not re.search(rf"^\s*(async )?(def|class) {name}\b",
                                 source, re.M):
                    missing.append(f"{path}::{name}")
    assert missing == []


def test_design_names_only_files_that_exist():
    text = read(os.path.join(ROOT, "docs", "design.md"))
    named = {m.group(0) for m in SOURCE_FILE.finditer(text)} - SYSTEM_HEADERS
    missing = [name for name in named
               if not any(os.path.exists(os.path.join(ROOT, d, name))
                          for d in SOURCE_DIRS)]
    assert missing == []
    # ...and every file of src/ has its paragraph.
    for layer in ("src/core", "src/ext"):
        for name in os.listdir(os.path.join(ROOT, layer)):
            assert name in named, f"{layer}/{name} is not described"


@pytest.mark.parametrize("page", PAGES, ids=ids(PAGES))
def test_named_casyncio_attributes_exist(page):
    missing = []
    for dotted in set(NAME.findall(read(page))):
        obj = casyncio
        for part in dotted.split("."):
            if part in ("py", "md", "c", "h", "so"):  # a file name
                break
            try:
                obj = getattr(obj, part)
            except AttributeError:
                missing.append("casyncio." + dotted)
                break
    assert missing == []


def guide_blocks():
    text = read(os.path.join(ROOT, "docs", "guide.md"))
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


@pytest.mark.parametrize("number", range(len(guide_blocks())))
def test_guide_python_blocks_run_on_casyncio(number):
    source = guide_blocks()[number]
    done = subprocess.run([sys.executable, "-c", source],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
