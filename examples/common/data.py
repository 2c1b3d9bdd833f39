"""Reading a task's records: from files (csv, tsv, json, jsonl, each also .gz; line-aligned text files for
translation), from a local folder of such files named by split, or from a Hub dataset.

Files are read with `datasets.load_dataset` (its "csv", "json" and "text" builders). A validating pass
follows: a bad record stops the run with one line naming the file and line (misaligned parallel files with
both line counts, a missing or empty field, invalid JSON, an unknown label), and a column that does not exist
is named together with the columns that do.

A record is {"source": str, "target": str, "where": "file:line", ["references": [str, ...]]}; the target of a
classification record is its label id once `encode_labels` has run.
"""

import csv
import gzip
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .tasks import Task

logger = logging.getLogger(__name__)

FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


class DataError(ValueError):
    """Data that cannot be read as the task expects; the message names the file and line (or column)."""


@dataclass
class DataSource:
    """Where a task's splits come from: files by split, a local folder of `<split>.<ext>` files, or a Hub id."""

    dataset_name: str | None = None  # a Hub dataset id, or a local folder
    dataset_config_name: str | None = None
    files: dict = field(default_factory=dict)  # split name -> file path

    def describe(self) -> str:
        return ", ".join(f"{split}: {path}" for split, path in self.files.items()) or str(self.dataset_name)


def open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def file_format(path: Path) -> str | None:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return FILE_FORMATS.get(suffixes[-1].lower()) if suffixes else None


# ---------------------------------------------------------------------------------------------------
# Finding the files of a split
# ---------------------------------------------------------------------------------------------------


def find_in_folder(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def split_files(task: Task, source: DataSource, split: str) -> list[Path] | None:
    """The file (or, for parallel text, the two files) of a split; None when the split comes from the Hub."""
    if split in source.files:
        return [Path(source.files[split])]
    folder = Path(source.dataset_name) if source.dataset_name else None
    if folder is None:
        raise DataError(f"no data for split {split!r}: give --dataset_name (a Hub id or a folder) or the "
                        f"split's file (--train_file, --validation_file, --test_file)")
    if not folder.is_dir():
        if folder.exists():
            raise DataError(f"{folder}: --dataset_name is a file; give files as --train_file / --validation_file")
        return None
    if task.kind == "translation":
        parallel = [find_in_folder(folder, f"{split}.{lang}") for lang in (task.source, task.target)]
        if all(parallel):
            return parallel
    for extension in FILE_FORMATS:
        found = find_in_folder(folder, split + extension)
        if found:
            return [found]
    available = sorted({p.name.split(".")[0] for p in folder.iterdir() if p.is_file() and p.name[0] != "."})
    wanted = (f"{split}.{task.source}[.gz] and {split}.{task.target}[.gz], or " if task.kind == "translation"
              else "") + f"{split}.jsonl, .json, .csv or .tsv [.gz]"
    raise DataError(f"{folder}: no file for split {split!r} (looked for {wanted}); splits here: "
                    f"{', '.join(available) or 'none'}")


# ---------------------------------------------------------------------------------------------------
# Reading with datasets, and where each row came from
# ---------------------------------------------------------------------------------------------------


def load_file(path: Path):
    """The rows of one file as a `datasets.Dataset`; a file that cannot be parsed is a DataError naming it."""
    import datasets

    datasets.disable_progress_bars()  # a bar per file and split says nothing here; errors say what matters
    kind = file_format(path)
    builder, options = {"json": ("json", {}), "csv": ("csv", {"keep_default_na": False}),
                        "tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False}),
                        None: ("text", {})}[kind]
    try:
        return datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **options)
    except Exception as error:  # datasets wraps the parser's error; say which line it was, where we can
        raise DataError(parse_error(path, kind, error)) from None


def parse_error(path: Path, kind: str | None, error: Exception) -> str:
    if kind == "json":  # find the line: in the whole text (a JSON array), else line by line (JSON lines)
        with open_text(path) as f:
            text = f.read()
        if text.lstrip().startswith("["):
            try:
                json.loads(text)
            except json.JSONDecodeError as bad:
                return f"{path}:{bad.lineno}: not valid JSON ({bad.msg})"
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                json.loads(line) if line.strip() else None
            except json.JSONDecodeError as bad:
                return f"{path}:{number}: not valid JSON ({bad.msg})"
    cause = error.__cause__ or error
    return f"{path}: cannot be read as {kind or 'text'} ({str(cause).strip().splitlines()[-1]})"


def row_locations(path: Path, rows: int) -> list[str]:
    """`file:line` of each row (the parsers skip blank lines; a JSON array has records, not lines)."""
    kind = file_format(path)
    with open_text(path) as f:
        if kind == "json" and f.read(4096).lstrip().startswith("["):
            return [f"{path} record {i}" for i in range(1, rows + 1)]
        f.seek(0)
        if kind in ("csv", "tsv"):
            options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {}
            reader = csv.reader(f, **options)
            next(reader, None)  # the header
            lines = [reader.line_num for row in reader if row]
        elif kind == "json":
            lines = [number for number, line in enumerate(f, start=1) if line.strip()]
        else:
            lines = list(range(1, rows + 1))
    return [f"{path}:{line}" for line in lines[:rows]]


def require_columns(columns: list[str], wanted: list[str], where: str) -> None:
    missing = [name for name in wanted if name not in columns]
    if missing:
        raise DataError(f"{where}: no column {', '.join(map(repr, missing))}; its columns are: {', '.join(columns)}")


# ---------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------


def load_records(task: Task, source: DataSource, split: str) -> list[dict]:
    """The checked records of one split."""
    files = split_files(task, source, split)
    if files is None:
        return hub_records(task, source, split)
    if len(files) == 2:
        return parallel_records(*files)
    (path,) = files
    rows = load_file(path)
    return records_from_rows(task, rows, row_locations(path, len(rows)), str(path))


def parallel_records(source_path: Path, target_path: Path) -> list[dict]:
    sources, targets = (load_file(path)["text"] for path in (source_path, target_path))
    if len(sources) != len(targets):
        raise DataError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                        "parallel files must be line-aligned")
    records = []
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        for path, text in ((source_path, source), (target_path, target)):
            if not text.strip():
                raise DataError(f"{path}:{number}: empty sentence (parallel files must have text on every line)")
        records.append({"source": source.strip(), "target": target.strip(), "where": f"{source_path}:{number}"})
    return records


def hub_records(task: Task, source: DataSource, split: str) -> list[dict]:
    from datasets import load_dataset

    try:
        rows = load_dataset(source.dataset_name, source.dataset_config_name, split=task.hub_splits.get(split, split))
    except (ConnectionError, FileNotFoundError, ValueError) as error:  # offline, unknown id, unknown split
        raise DataError(f"{source.dataset_name}: cannot load split {split!r} from the Hub ({error}); offline, give "
                        "--dataset_name a local folder or the split's file (--train_file, ...)") from None
    rows = rows.rename_columns({k: v for k, v in task.hub_columns.items() if k in rows.column_names})
    name = f"{source.dataset_name} ({split})"
    return records_from_rows(task, rows, [f"{name} row {i}" for i in range(1, len(rows) + 1)], name)


def records_from_rows(task: Task, rows, locations: list[str], name: str) -> list[dict]:
    """Checks every row and turns it into a record. An empty field stops the run, or, for a task with
    `skip_empty_records`, skips the record with a warning naming it."""
    columns = rows.column_names
    if task.kind == "translation":
        if "translation" in columns:
            pairs = rows["translation"]
        else:  # one column per language, as some Hub datasets have it
            if not {task.source, task.target} <= set(columns):
                raise DataError(f"{name}: no column 'translation' (a dict of languages) nor columns "
                                f"{task.source!r} and {task.target!r}; its columns are: {', '.join(columns)}")
            pairs = [{task.source: s, task.target: t} for s, t in zip(rows[task.source], rows[task.target])]
        texts = []
        for pair, where in zip(pairs, locations):
            if not isinstance(pair, dict) or not {task.source, task.target} <= pair.keys():
                present = ", ".join(k for k, v in (pair or {}).items() if v is not None) or "none"
                raise DataError(f"{where}: no {task.source!r} and {task.target!r} in its translation "
                                f"(languages present: {present})")
            texts.append((pair[task.source], pair[task.target]))
        fields = (task.source, task.target)
    else:
        require_columns(columns, [task.source, task.target], name)
        texts = zip(rows[task.source], rows[task.target])
        fields = (task.source, task.target)
    references = rows[task.references] if task.references in columns else None
    records, skipped = [], []
    for index, ((text, target), where) in enumerate(zip(texts, locations)):
        missing = [f for f, value in zip(fields, (text, target)) if value is None]
        if missing:
            raise DataError(f"{where}: missing {missing[0]!r}")
        if not isinstance(text, str) or (task.kind != "classification" and not isinstance(target, str)):
            raise DataError(f"{where}: {fields[0]!r} and {fields[1]!r} must be text")
        target = str(target).strip()
        if not text.strip() or not target:
            if task.skip_empty_records:
                skipped.append(where)
                continue
            empty = fields[0] if not text.strip() else fields[1]
            raise DataError(f"{where}: empty {empty!r}")
        record = {"source": text.strip(), "target": target, "where": where}
        if references is not None and references[index]:
            record["references"] = [reference.strip() for reference in references[index]]
        records.append(record)
    for where in skipped:
        logger.warning("skipped a record with an empty %s or %s: %s", *fields, where)
    return records


def infer_labels(records: list[dict]) -> tuple[str, ...]:
    """Class names from the training records: integer labels 0..n-1 name themselves; other labels sorted."""
    values = {record["target"] for record in records}
    if all(value.isdigit() for value in values):
        return tuple(str(i) for i in range(max(map(int, values)) + 1))
    return tuple(sorted(values))


def encode_labels(task: Task, records: list[dict]) -> list[dict]:
    """Classification records with label ids: a label is a class name or an integer index into the names."""
    ids = {name: i for i, name in enumerate(task.labels)}
    encoded = []
    for record in records:
        label = record["target"]
        if label in ids:
            index = ids[label]
        elif label.isdigit() and int(label) < len(task.labels):
            index = int(label)
        else:
            raise DataError(f"{record['where']}: unknown label {label!r}; the labels are "
                            f"{', '.join(task.labels)} (or 0..{len(task.labels) - 1})")
        encoded.append({**record, "target": index})
    return encoded
