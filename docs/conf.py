"""Sphinx configuration: the pages are MyST Markdown; autodoc reads the API
reference from the installed extension's docstrings, so build with
casyncio installed (pip install -e '.[docs]')."""
project = "casyncio"
author = "the casyncio developers"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Headings become link targets (README-style "#anchors" between pages).
myst_heading_anchors = 3
# Every cross-reference must resolve: CI builds with -W.
nitpicky = True
nitpick_ignore_regex = [
    # Names from asyncio's own documentation, which is not linked here.
    (r"py:class", r"(asyncio|concurrent|socket|ssl|contextvars)\..*"),
]
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_title = "casyncio"


def _plain_text_stars(app, what, name, obj, options, lines):
    """The extension's docstrings are plain text ("callback(*args)"), which
    reStructuredText would read as the start of emphasis: escape the stars
    outside ``literals``."""
    import re
    for i, line in enumerate(lines):
        parts = re.split(r"(``.*?``)", line)
        lines[i] = "".join(part if part.startswith("``")
                           else part.replace("*", r"\*") for part in parts)


def setup(app):
    app.connect("autodoc-process-docstring", _plain_text_stars)
