"""Hostile or messy dataset files: refused early with a clear message, or
loaded with what was done said out loud. Nothing silently changes."""

import csv
import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from finetune.data.formats import normalise
from finetune.runs.outputs import RunFolder, escape_csv_cell
from finetune.sources.files import DataError, Limits, read_table


def test_wrong_file_type_is_refused_before_parsing(write):
    with pytest.raises(DataError, match=r"unsupported file type '.exe'.*\.json, \.jsonl, \.csv, \.parquet"):
        read_table(write("model.exe", b"MZ\x90\x00"))


def test_over_the_size_limit_is_refused_naming_the_limit(write):
    path = write("big.jsonl", json.dumps({"prompt": "a", "completion": "b"}) * 1)
    with pytest.raises(DataError, match="over the 0 MB limit"):
        read_table(path, Limits(max_file_bytes=10))


def test_cp1252_csv_is_decoded_and_said_so(write):
    path = write("latin.csv", "question,answer\nCaf\u00e9?,Na\u00efve \u2013 yes\n".encode("cp1252"))
    table = read_table(path)
    assert table.records[0] == {"question": "Caf\u00e9?", "answer": "Na\u00efve \u2013 yes"}
    assert any("not UTF-8 (first non-UTF-8 byte on line 2)" in n and "Windows-1252" in n for n in table.notices)


def test_utf8_bom_loads_with_clean_column_names(write):
    csv_table = read_table(write("bom.csv", "\ufeffquestion,answer\nWhy?,Because.\n".encode("utf-8")))
    assert csv_table.columns == ["question", "answer"]
    json_table = read_table(write("bom.json", ("\ufeff" + json.dumps([{"prompt": "a", "completion": "b"}])).encode()))
    assert json_table.columns == ["prompt", "completion"]
    assert normalise(csv_table).format == "qa"


@pytest.mark.parametrize("bad_value, kind", [(42, "int"), ({"nested": "object"}, "dict"), (["a", "list"], "list")])
def test_non_text_values_in_a_text_column_name_the_rows(write, bad_value, kind):
    rows = [{"prompt": "ok", "completion": "fine"}, {"prompt": "x", "completion": bad_value},
            {"prompt": "y", "completion": "z"}, {"prompt": "w", "completion": bad_value}]
    with pytest.raises(DataError, match=f"column 'completion' must hold text but holds {kind} at record 2, record 4"):
        normalise(read_table(write("p.json", json.dumps(rows))))


def test_ragged_csv_is_refused_with_the_line_and_no_shifted_columns(write):
    text = "question,answer\nA?,a\nB?,b,extra\nC?,c\n"
    with pytest.raises(DataError, match="line 3 has 3 fields but the header has 2"):
        read_table(write("r.csv", text))
    with pytest.raises(DataError, match="line 2 has 1 fields"):
        read_table(write("short.csv", "question,answer\nonly-one\n"))


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", "", "the file is empty"),
    ("blank.json", "   \n", "the file is empty"),
    ("header.csv", "question,answer\n", "header but no rows"),
    ("lines.jsonl", '{"prompt": "a", "completion": "b"}\n\n{"prompt": "c", "completion": }\n', "invalid JSON on line 3"),
    ("array.json", "[]", "holds no records"),
])
def test_empty_and_broken_files_say_which(write, name, content, message):
    with pytest.raises(DataError, match=message):
        read_table(write(name, content))


def test_a_300_kb_field_is_accepted_and_a_huge_one_refused_naming_the_cap(write):
    long_answer = "word " * 60_000  # 300 kB
    table = read_table(write("long.jsonl", json.dumps({"prompt": "Write a lot.", "completion": long_answer})))
    assert len(table.records[0]["completion"]) == 300_000
    with pytest.raises(DataError, match="line 1, column 'completion' holds 2000000 characters; the limit is 1000000"):
        read_table(write("huge.jsonl", json.dumps({"prompt": "x", "completion": "y" * 2_000_000})))


def test_a_large_json_array_is_accepted_within_the_record_cap_or_refused_naming_it(write, monkeypatch):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(50_000)]
    path = write("many.json", json.dumps(rows))
    assert len(read_table(path).records) == 50_000
    monkeypatch.setenv("FINETUNE_MAX_RECORDS", "10000")
    with pytest.raises(DataError, match="50000 records is over the 10000 record limit"):
        read_table(path)


def test_gzip_bytes_named_csv_are_refused(write):
    with pytest.raises(DataError, match="gzip-compressed data, not CSV"):
        read_table(write("data.csv", gzip.compress(b"question,answer\nA?,a\n")))


def test_a_parquet_file_that_inflates_100x_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.parquet"
    table = pa.table({"prompt": ["What?"] * 200_000, "completion": ["x" * 500] * 200_000})
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 2_000_000
    with pytest.raises(DataError, match=r"would inflate to .* its size\); the limits are"):
        read_table(path)


def test_a_normal_parquet_file_loads(tmp_path):
    path = tmp_path / "ok.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["c", "d"]}), path)
    assert normalise(read_table(path)).format == "prompt_completion"


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1"])
def test_formula_cells_in_written_csv_are_escaped(tmp_path, cell):
    assert escape_csv_cell(cell) == "'" + cell
    path = RunFolder(tmp_path).write_csv("out.csv", [{"prompt": "p", "after": cell}], ["prompt", "after"])
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[1] == ["p", "'" + cell]
    assert escape_csv_cell("2021-03-05") == "2021-03-05" and escape_csv_cell(None) == ""
