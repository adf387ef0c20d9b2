"""Reading a configuration file safely: a regular file, of a bounded size, whose YAML does
not expand beyond a bounded number of values through aliases (the "billion laughs": a few
hundred bytes of anchors that become gigabytes once walked), and whose mappings name each
key once. `receiver check` and `serve` read every file through here, so what check passes
serve can load.

A key written twice is refused: YAML loaders keep the last one silently, so a second
`auth:` section would drop the first one's `protect_reads: true`, and a repeated
`problemType` would turn a rule into another. Merge keys (`<<: *base`) are not repeats: the
keys written beside them win over the merged ones, as YAML says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from receiver.errors import ConfigError

MAX_BYTES = 1 << 20  # configuration files are kilobytes; a larger one is a mistake
MAX_VALUES = 100_000  # values a document may expand to, aliases followed


def read(file: Path) -> Any:
    """The YAML document in `file`; ConfigError naming the file (and line) otherwise."""
    try:
        if file.exists() and not file.is_file():
            raise ConfigError(str(file), "", "not a regular file (a directory, FIFO or device)")
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                str(file), "", f"{size} bytes: larger than the {MAX_BYTES} a file may be"
            )
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(file), "", f"cannot read: {e.strerror}") from e
    except UnicodeDecodeError:
        raise ConfigError(str(file), "", "not UTF-8 text") from None
    try:
        # The reader checks every character as it is made: a NUL or another control
        # character YAML forbids is a ReaderError here, not a traceback.
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise ConfigError(
            str(file),
            f"line {line}, column {column}",
            f"invalid YAML: character #x{e.character:04x} is not allowed in YAML",
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded(node, {})
        if values > MAX_VALUES:
            raise ConfigError(
                str(file),
                "",
                f"expands to {values} values through YAML aliases (at most {MAX_VALUES})",
            )
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(str(file), "", "invalid YAML: nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(str(file), where, f"invalid YAML: {problem}") from e
    finally:
        loader.dispose()


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key a mapping holds twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key!r} (first at line {first.start_mark.line + 1});"
                        " a YAML loader would keep only the last one",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


_MERGE = "tag:yaml.org,2002:merge"


def _expanded(node: yaml.Node, seen: dict[int, int]) -> int:
    """How many values `node` stands for once every alias is followed (memoised, so this
    costs the size of the file, not of the expansion)."""
    known = seen.get(id(node))
    if known is not None:
        return known
    seen[id(node)] = 1  # a node that refers to itself counts once
    if isinstance(node, yaml.SequenceNode):
        count = 1 + sum(_expanded(child, seen) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        count = 1 + sum(_expanded(k, seen) + _expanded(v, seen) for k, v in node.value)
    else:
        count = 1
    seen[id(node)] = count
    return count
