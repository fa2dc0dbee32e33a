"""Read a batch file into rows: ``.txt``, ``.csv``, ``.tsv``, ``.jsonl``, ``.toml``, ``.yaml``.

Every format gives the same thing, a list of :class:`Row` (where it came from, and a dict of
settings); a file that does not parse names the file, line and column.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from genimg.errors import UsageError


@dataclass(frozen=True)
class Row:
    line: int  # 1-based line (or entry number for TOML/YAML lists)
    data: dict
    key_lines: dict = field(default_factory=dict)  # a TOML job's keys -> their lines, where known

    def line_of(self, message: str) -> int:
        """The line of the setting an error names first (``steps must be …``), else the row's."""
        from genimg.spec import ALIASES

        word = message.split(" ", 1)[0]
        return next((n for key, n in self.key_lines.items() if word in (key, ALIASES.get(key))), self.line)


def read_rows(path: Path) -> tuple[list[Row], dict]:
    """(rows, file-level defaults) of a batch file."""
    readers = {".txt": _txt, ".csv": _csv, ".tsv": _csv, ".jsonl": _jsonl, ".toml": _toml, ".yaml": _yaml, ".yml": _yaml}
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.suffix.lower() in readers)
        which = f" (it holds {', '.join(files[:5])})" if files else f" ({', '.join(readers)} files)"
        raise UsageError(f"batch file {path} is a folder; give one batch file{which}")
    if not path.is_file():
        raise UsageError(f"batch file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise UsageError(f"{path.name}: unknown batch file type {suffix!r}; use .txt, .csv, .tsv, .jsonl, .toml or .yaml")
    text = path.read_text(encoding="utf-8-sig")
    rows, defaults = readers[suffix](text, path)
    if not rows:
        raise UsageError(f"{path} holds no prompts")
    return rows, defaults


def _txt(text: str, path: Path):
    rows = [Row(n, {"prompt": line.strip()}) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    return rows, {}


def _csv(text: str, path: Path):
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    lines = text.splitlines(keepends=True)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return [], {}
    except csv.Error as e:
        raise UsageError(f"{path}:1: {e}") from None
    rows = []
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values) or values[0].lstrip().startswith("#"):
                continue
            if len(values) != len(header):
                raise UsageError(f"{path}:{line}: {len(values)} fields where the header has {len(header)}")
            rows.append(Row(line, {k: _scalar(v) for k, v in zip(header, values) if v.strip() != ""}))
    except csv.Error as e:
        raise UsageError(f"{path}:{reader.line_num}: {e}") from None
    return rows, {}


def _scalar(text: str):
    """CSV cells are text; numbers and booleans become what they look like."""
    value = text.strip()
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def _jsonl(text: str, path: Path):
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{n}:{e.colno}: {e.msg}") from None
        if not isinstance(data, dict):
            raise UsageError(f"{path}:{n}: each line must be a JSON object")
        rows.append(Row(n, data))
    return rows, {}


def _document(data, path: Path, lines: list[int] | None = None, key_lines: list[dict] | None = None):
    """Rows of a ``defaults`` + ``jobs`` document; ``lines``: the line each job starts on, where known
    (errors then name the line, not the job's place in the list), ``key_lines`` each job's keys' lines."""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise UsageError(f"{path}: expected a `defaults` table and a `jobs` list")
    unknown = set(data) - {"defaults", "jobs"}
    if unknown:
        raise UsageError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}; only `defaults` and `jobs`")
    rows = []
    for n, job in enumerate(data["jobs"], 1):
        if isinstance(job, str):
            job = {"prompt": job}
        if not isinstance(job, dict):
            raise UsageError(f"{path}: job {n} must be a table or a prompt string")
        known = lines and len(lines) == len(data["jobs"])
        rows.append(Row(lines[n - 1] if known else n, job, key_lines[n - 1] if known and key_lines else {}))
    return rows, dict(data.get("defaults") or {})


def _toml(text: str, path: Path):
    from genimg.datafiles import TOMLDecodeError, tomllib

    try:
        data = tomllib.loads(text)
    except TOMLDecodeError as e:
        raise UsageError(f"{path}: {e}") from None
    # [[jobs]] tables: each job starts on its header's line (inline lists keep their place numbers)
    text_lines = text.splitlines()
    headers = [n for n, line in enumerate(text_lines, 1) if re.match(r"\s*\[\[\s*jobs\s*\]\]", line)]
    keys = []  # each [[jobs]] table's keys and their lines, up to the next table header
    for start in headers:
        found = {}
        for n in range(start + 1, len(text_lines) + 1):
            if re.match(r"\s*\[", text_lines[n - 1]):
                break
            key = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", text_lines[n - 1])
            if key:
                found[key.group(1)] = n
        keys.append(found)
    return _document(data, path, headers, keys)


def _yaml(text: str, path: Path):
    try:
        import yaml
    except ImportError:
        raise UsageError("YAML batch files need PyYAML: pip install pyyaml") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        raise UsageError(f"{path}:{where}: {getattr(e, 'problem', e)}") from None
    jobs = next((value for key, value in getattr(node, "value", []) if getattr(key, "value", None) == "jobs"), None)
    lines = [item.start_mark.line + 1 for item in jobs.value] if isinstance(jobs, yaml.SequenceNode) else None
    return _document(data, path, lines)
