"""A griffe extension used by the documentation build only (see ``mkdocs.yml``).

The library's docstrings are written to be read in a terminal as much as on the site: they put
a bullet list straight under a line such as ``**Arguments:**``, literal blocks after ``::`` and
Sphinx roles such as ``:func:`sbc```. Python-Markdown needs a blank line before a list and knows
neither of the other two, so this extension rewrites each docstring of the loaded package before
it is rendered:

- a blank line is inserted before a list that follows a paragraph line directly;
- a paragraph ending in ``::`` ends in ``:`` (the indented block after it is code either way);
- ``:func:`name```, ``:class:`name```, ``:meth:`name``` and ``:attr:`name``` become links to
  ``name`` where griffe resolves it from the docstring's scope and the site renders it, code
  spans otherwise;
- a docstring whose first line is a section title (``Args:``, entries on the lines below)
  loses the entries' indentation to docstring cleaning; it is restored, so the section is
  parsed as one;
- an ``Args:`` entry that documents two parameters at once (``a, b: description``) becomes one
  entry per parameter, as the Google style has no form for a shared entry.

Nothing in the package changes; only the rendered text does.
"""

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|attr|mod|obj|data|exc):`~?([^`]+)`")
_LIST_ITEM = re.compile(r"^ {0,3}(?:[-*+]|\d+[.)]) ")
_GOOGLE_SECTION = re.compile(r"^\w[\w ]*:\s*$")
_SHARED_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:, \w+)+): (?P<text>.*)$")


def _fix_lists(text: str) -> str:
    """Insert a blank line where a list starts right under a paragraph line."""
    lines = text.split("\n")
    out: list[str] = []
    in_list = False
    in_code = False
    for line in lines:
        blank = not line.strip()
        if in_code:
            # An indented literal block runs until a non-blank, non-indented line.
            if blank or line.startswith("    "):
                out.append(line)
                continue
            in_code = False
        if blank:
            in_list = False
            out.append(line)
            continue
        if _LIST_ITEM.match(line):
            previous = out[-1] if out else ""
            if not in_list and previous.strip() and not _GOOGLE_SECTION.match(previous):
                out.append("")
            in_list = True
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
            in_code = True
        out.append(line)
    return "\n".join(out)


def _indent_leading_section(text: str) -> str:
    """``Args:\nname: ...`` (a section title on the docstring's first line, whose entries lost
    their indentation) -> ``Args:\n    name: ...``."""
    lines = text.split("\n")
    if len(lines) < 2 or not _GOOGLE_SECTION.match(lines[0]) or lines[1].startswith(" "):
        return text
    return "\n".join([lines[0], *(f"    {line}" if line.strip() else line for line in lines[1:])])


def _split_shared_entries(text: str) -> str:
    """``a, b: description`` inside an ``Args:`` section -> one entry for each name."""
    out: list[str] = []
    in_args = False
    for line in text.split("\n"):
        if _GOOGLE_SECTION.match(line):
            in_args = line.strip() in ("Args:", "Arguments:", "Parameters:")
        match = _SHARED_ENTRY.match(line) if in_args else None
        if match:
            indent, text_ = match["indent"], match["text"]
            out.extend(f"{indent}{name}: {text_}" for name in match["names"].split(", "))
        else:
            out.append(line)
    return "\n".join(out)


def _target(obj: griffe.Object, name: str, loader: griffe.GriffeLoader) -> str | None:
    """The canonical path of ``name`` as seen from ``obj``'s scope, or None."""
    try:
        if "." in name and name.split(".", 1)[0] in loader.modules_collection.members:
            found = loader.modules_collection[name]
        else:
            first, _, rest = name.partition(".")
            scope = obj if obj.is_class or obj.is_module else obj.parent
            path = scope.resolve(first) if scope is not None else None
            if path is None:
                return None
            found = loader.modules_collection[path + ("." + rest if rest else "")]
        while found.is_alias:
            found = found.target
        return found.path
    except Exception:  # unresolvable: render as code instead of a link
        return None


def _fix_roles(text: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        path = _target(obj, name, loader)
        if path is None:
            return f"`{name}`"
        # An optional cross-reference: a link where the target is rendered, plain code where it
        # is not (a private helper named in prose), never a build warning.
        return f'<autoref identifier="{path}" optional><code>{name}</code></autoref>'

    return _ROLE.sub(replace, text)


def _objects(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


class DocstringMarkdown(griffe.Extension):
    """Rewrite the package's docstrings into the Markdown that renders as intended."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                value = _indent_leading_section(obj.docstring.value)
                value = _split_shared_entries(_fix_lists(value))
                obj.docstring.value = _fix_roles(value, obj, loader)
