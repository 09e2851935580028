"""The Experiments table for many runs: each run's row (experiments.compare's
columns, plus the disk its folder uses), filtered by status, data, model and
free text, newest first, one page at a time. A class's server holds a hundred
runs; a checkbox each made the tab a long list, so runs are picked from the
table instead and the page is what the browser draws."""

from __future__ import annotations

from dataclasses import dataclass

from finetune.runs import disk

PAGE_SIZE = 20
DISK_COLUMN = "disk (MB)"
ANY = ""  # a filter left open


@dataclass(frozen=True)
class Filters:
    """What the table shows: runs whose status, data and model are these (ANY: all) and
    whose cells contain `text` (any case), page `page` (1: the newest)."""

    status: str = ANY
    data: str = ANY
    model: str = ANY
    text: str = ""
    page: int = 1

    @classmethod
    def read(cls, status=None, data=None, model=None, text=None, page=None) -> "Filters":
        """From widget values (None, or a page that is no whole number, as the defaults)."""
        page = int(page) if isinstance(page, (int, float)) and not isinstance(page, bool) and page >= 1 else 1
        return cls(status or ANY, data or ANY, model or ANY, (text or "").strip(), page)

    def keeps(self, row: dict) -> bool:
        if any(wanted and str(row.get(column) or "") != wanted
               for column, wanted in (("status", self.status), ("data", self.data), ("model", self.model))):
            return False
        text = self.text.casefold()
        return not text or any(text in str(value).casefold() for value in row.values() if value is not None)


def with_disk(row: dict, record) -> dict:
    """The row with the MB its run folder uses (each file once, as `du` counts) before the note,
    which says when a public server's retention removed the run's weights."""
    cells = {k: v for k, v in row.items() if k != "note"}
    note = row.get("note") or ""
    if record.weights_removed and not note:
        note = f"weights removed {record.weights_removed['after_hours']:g} h after the run ended"
    return {**cells, DISK_COLUMN: disk.megabytes(disk.folder_bytes(record.folder)), "note": note}


@dataclass(frozen=True)
class Page:
    rows: list[dict]  # this page's rows, newest first
    number: int  # 1-based, within 1..pages
    pages: int
    matching: int  # runs that pass the filters
    total: int  # runs in all

    @property
    def text(self) -> str:
        if not self.total:
            return "No runs yet."
        if not self.matching:
            return f"No run of your {self.total} matches these filters."
        first = (self.number - 1) * PAGE_SIZE + 1
        shown = f"Runs {first}–{first + len(self.rows) - 1} of {self.matching}"
        of_all = f" (of {self.total})" if self.matching != self.total else ""
        return f"{shown}{of_all}, newest first · page {self.number} of {self.pages}"


def page_of(rows: list[dict], filters: Filters, size: int = PAGE_SIZE) -> Page:
    """The rows passing the filters, on page `filters.page` (the last page when it is beyond)."""
    kept = [row for row in rows if filters.keeps(row)]
    pages = max(1, -(-len(kept) // size))
    number = min(filters.page, pages)
    return Page(kept[(number - 1) * size:number * size], number, pages, len(kept), len(rows))


def filter_choices(rows: list[dict], column: str, everything: str, current: str = ANY) -> list[tuple[str, str]]:
    """A filter's choices: ANY first (`everything`), then each value the runs have, with its
    count; the value chosen now stays a choice when no run has it any more (a dropdown refuses
    a value outside its choices)."""
    counts: dict[str, int] = {current: 0} if current else {}
    for row in rows:
        value = str(row.get(column) or "")
        if value:
            counts[value] = counts.get(value, 0) + 1
    return [(everything, ANY)] + [(f"{value} ({count})", value) for value, count in sorted(counts.items())]


def toggled(chosen: list[str] | None, run_id: str) -> list[str]:
    """A table click: the run added to the runs compared, or taken out when it was in."""
    chosen = list(chosen or [])
    return [c for c in chosen if c != run_id] if run_id in chosen else chosen + [run_id]
