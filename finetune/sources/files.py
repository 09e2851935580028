"""Read a dataset file into records, refusing what is unsafe or malformed.

Every refusal is a DataError whose message names the file, the line or row and
the problem. Size caps are checked before a full parse, so a hostile upload
(a gzip bomb named .csv, a Parquet file that inflates 100x) costs nothing.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hub_token import redact

SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
MISSING_MARKERS = frozenset({"", "null", "none", "na", "n/a", "nan"})


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    """Caps on what one dataset may cost to read. An operator can lower them
    through environment variables for a public deployment."""

    max_file_bytes: int = field(default_factory=lambda: _env_int("FINETUNE_MAX_FILE_MB", 100) * 2**20)
    max_records: int = field(default_factory=lambda: _env_int("FINETUNE_MAX_RECORDS", 200_000))
    max_field_chars: int = 1_000_000
    max_inflated_bytes: int = 512 * 2**20
    max_inflation_ratio: int = 50


class DataError(ValueError):
    """Bad input; the message is for the user and names file, line and problem."""


@dataclass
class Table:
    """Records as read, before any format is assumed."""

    source: str
    records: list[dict]
    columns: list[str]
    where: list[str]  # how to name record i in a message: "line 7", "row 3", "record 2"
    notices: list[str] = field(default_factory=list)
    missing_cells: int = 0  # blank / "null" / "NA" cells turned into None


def read_table(path: str | Path, limits: Limits | None = None) -> Table:
    limits = limits or Limits()
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{name}: unsupported file type {suffix or '(none)'!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{name}: no such file")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise DataError(f"{name}: {size / 2**20:.1f} MB is over the {limits.max_file_bytes / 2**20:.0f} MB limit")
    if size == 0:
        raise DataError(f"{name}: the file is empty")
    with path.open("rb") as handle:
        head = handle.read(4)
    _refuse_wrong_container(name, suffix, head)
    if suffix == ".parquet":
        table = _read_parquet(path, limits)
    else:
        text, notices = _decode(path.read_bytes(), name)
        if not text.strip():
            raise DataError(f"{name}: the file is empty")
        reader = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv}[suffix]
        table = reader(text, name)
        table.notices[:0] = notices
    _check_caps(table, limits)
    return table


def _refuse_wrong_container(name: str, suffix: str, head: bytes) -> None:
    if head.startswith(b"\x1f\x8b"):
        raise DataError(f"{name}: this is gzip-compressed data, not {suffix[1:].upper()}; decompress it first")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{name}: this is a zip archive, not {suffix[1:].upper()}; extract it first")
    if suffix == ".parquet" and head != b"PAR1":
        raise DataError(f"{name}: not a Parquet file (no PAR1 header)")
    if suffix != ".parquet" and head == b"PAR1":
        raise DataError(f"{name}: this is Parquet data; name it .parquet")


def _decode(raw: bytes, name: str) -> tuple[str, list[str]]:
    """UTF-8 (a BOM is dropped); otherwise Windows-1252/Latin-1, said so."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
    try:
        text, label = raw.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; Latin-1 decodes any byte
        text, label = raw.decode("latin-1"), "Latin-1"
    return text, [f"{name} is not UTF-8 (first non-UTF-8 byte on line {line}); decoded it as {label}"]


def _read_json(text: str, name: str) -> Table:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{name}: invalid JSON on line {err.lineno}, column {err.colno}: {err.msg}") from None
    if isinstance(data, dict):
        data = _records_of_object(data, name)
    if not isinstance(data, list):
        raise DataError(f"{name}: expected a JSON array of records or an object of records")
    if not data:
        raise DataError(f"{name}: the file holds no records")
    for i, record in enumerate(data, 1):
        if not isinstance(record, dict):
            raise DataError(f"{name}: record {i} is a {type(record).__name__}, not an object")
    return Table(name, data, _columns(data), [f"record {i}" for i in range(1, len(data) + 1)])


def _records_of_object(data: dict, name: str) -> list:
    """{"data": [...]} (one key holding a list) or {"id": {record}, ...}."""
    lists = [v for v in data.values() if isinstance(v, list)]
    if len(data) == 1 and lists:
        return lists[0]
    if data and all(isinstance(v, dict) for v in data.values()):
        return list(data.values())
    raise DataError(f"{name}: a JSON object must hold a list of records or map ids to records")


def _read_jsonl(text: str, name: str) -> Table:
    records, where = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{name}: invalid JSON on line {number}: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{name}: line {number} is a {type(record).__name__}, not a JSON object")
        records.append(record)
        where.append(f"line {number}")
    if not records:
        raise DataError(f"{name}: the file holds no records")
    return Table(name, records, _columns(records), where)


def _read_csv(text: str, name: str) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{name}: the file is empty") from None
    except csv.Error as err:
        raise DataError(f"{name}: unreadable CSV on line 1: {err}") from None
    columns = [c.strip().lstrip("\ufeff") for c in header]
    if len(set(columns)) != len(columns) or not all(columns):
        raise DataError(f"{name}: the header has blank or repeated column names: {columns}")
    records, where, missing = [], [], 0
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise DataError(
                    f"{name}: line {reader.line_num} has {len(row)} fields but the header has {len(columns)}; "
                    "check quoting and delimiters"
                )
            record = {}
            for column, cell in zip(columns, row):
                if cell.strip().lower() in MISSING_MARKERS:
                    record[column] = None
                    missing += 1
                else:
                    record[column] = cell
            records.append(record)
            where.append(f"line {reader.line_num}")
    except csv.Error as err:
        raise DataError(f"{name}: unreadable CSV on line {reader.line_num}: {err}") from None
    if not records:
        raise DataError(f"{name}: the file has a header but no rows")
    return Table(name, records, columns, where, missing_cells=missing)


def _read_parquet(path: Path, limits: Limits) -> Table:
    import pyarrow.parquet as pq

    try:
        probe = pq.ParquetFile(path)
        meta = probe.metadata
        if meta.num_rows > limits.max_records:
            raise DataError(f"{path.name}: {meta.num_rows} rows is over the {limits.max_records} record limit")
        # Read dictionary-encoded: a column of one value repeated a million times
        # stays one value plus indices until we know what decoding would cost.
        text_columns = [f.name for f in probe.schema_arrow if _is_text(f.type)]
        compact = pq.ParquetFile(path, read_dictionary=text_columns).read()
    except DataError:
        raise
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path.name}: unreadable Parquet file: {err}") from None
    inflated = _decoded_bytes(compact)
    ratio = inflated / max(path.stat().st_size, 1)
    if inflated > limits.max_inflated_bytes or ratio > limits.max_inflation_ratio:
        raise DataError(
            f"{path.name}: would inflate to {inflated / 2**20:.0f} MB ({ratio:.0f}x its size); the limits are "
            f"{limits.max_inflated_bytes / 2**20:.0f} MB and {limits.max_inflation_ratio}x"
        )
    records = compact.to_pylist()
    if not records:
        raise DataError(f"{path.name}: the file holds no records")
    return Table(path.name, records, list(compact.column_names), [f"row {i}" for i in range(1, len(records) + 1)])


def _is_text(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_binary(arrow_type)


def _decoded_bytes(table) -> int:
    """Bytes the table would take fully decoded, computed on the compact form."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        for chunk in column.chunks:
            if pa.types.is_dictionary(chunk.type):
                lengths = pc.binary_length(chunk.dictionary)
                total += (pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0) + chunk.indices.nbytes
            else:
                total += chunk.nbytes
    return total


def _columns(records: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records[:1000]:
        for key in record:
            seen.setdefault(key.strip().lstrip("\ufeff") if isinstance(key, str) else str(key), None)
    return list(seen)


def _check_caps(table: Table, limits: Limits) -> None:
    if len(table.records) > limits.max_records:
        raise DataError(f"{table.source}: {len(table.records)} records is over the {limits.max_records} record limit")
    for record, where in zip(table.records, table.where):
        for key, value in record.items():
            if isinstance(value, str) and len(value) > limits.max_field_chars:
                raise DataError(
                    f"{table.source}: {where}, column {key!r} holds {len(value)} characters; "
                    f"the limit is {limits.max_field_chars}"
                )


def read_hub_dataset(dataset_id: str, token: str | None = None, limits: Limits | None = None) -> Table:
    """The 'train' split of a hub dataset (needs a network)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    limits = limits or Limits()
    try:
        validate_repo_id(dataset_id)
    except HFValidationError:
        raise DataError(f"{dataset_id!r} is neither a file nor a valid hub dataset id") from None
    import datasets

    try:
        hub = datasets.load_dataset(dataset_id, split="train", token=token)
    except Exception as err:  # offline, unknown id, gated: one line for the user
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot load hub dataset {dataset_id}: {redact(text, token)}") from None
    if len(hub) > limits.max_records:
        hub = hub.select(range(limits.max_records))
    records = hub.to_list()
    table = Table(dataset_id, records, list(hub.column_names), [f"row {i}" for i in range(1, len(records) + 1)])
    _check_caps(table, limits)
    return table


def shown(value: Any, limit: int = 60) -> str:
    """A refused value as a message shows it: never a 200,000-character echo."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


NAME_MAX_BYTES = 255  # the longest file or folder name Linux, macOS and Windows file systems take


def name_problem(spec: str) -> str | None:
    """Why a model or dataset spec can be neither a path nor a hub id, or None: a part
    longer than a file name may be (a hub id's parts are shorter still). Checked before
    the file system is asked, which would fail with "File name too long"."""
    longest = max((len(part.encode("utf-8", "surrogatepass")) for part in spec.replace("\\", "/").split("/")),
                  default=0)
    if longest > NAME_MAX_BYTES:
        return (f"a part of {longest:,} bytes is longer than a file name or a hub id may be "
                f"(at most {NAME_MAX_BYTES})")
    return None


def looks_like_path(spec: str) -> bool:
    """Whether a model or dataset spec means a local path rather than a hub id.

    A hub id is "name" or "namespace/name"; a leading / . or ~, a backslash,
    more than one slash, a data file's suffix, or something that exists on disk
    make it a path. A spec no file system could hold (name_problem) is not one."""
    spec = spec.strip()
    if name_problem(spec):
        return False
    return (spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1
            or Path(spec).suffix.lower() in SUFFIXES or Path(spec).expanduser().exists())


def load_table(source: str, token: str | None = None, limits: Limits | None = None) -> Table:
    """A dataset from a file path or a hub dataset id."""
    problem = name_problem(source)
    if problem:
        raise DataError(f"{shown(source)}: not a dataset file or a hub dataset id: {problem}")
    if looks_like_path(source):
        return read_table(Path(source).expanduser(), limits)
    return read_hub_dataset(source, token, limits)
