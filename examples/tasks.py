"""Tasks as data: each names its dataset files, how a record is read, its model head, its metric and the
training defaults that were used for the results in model_card.md. `train.py` and `evaluate_model.py`
take a task name; nothing task-specific lives in them.

A dataset is read from a local folder laid out as in `../shared/data/...` (the split name is the file-name
stem, e.g. `test_2016_flickr`), or from a Hub dataset id for users who are online. Every local record is
checked: a malformed file is reported with its path and line, not as a traceback from deep inside.
"""

import csv
import gzip
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset file that cannot be read as the task expects; the message names the file and line."""


@dataclass(frozen=True)
class Task:
    name: str
    head: str  # "seq2seq" or "classification"
    data_format: str  # "parallel", "tsv", "json" or "jsonl"
    source: str  # the source field (for parallel files: the language suffix)
    target: str  # the target field, language suffix or label column
    metric: str  # "translation", "summarization" or "classification"
    main_metric: str  # the validation number that selects the best checkpoint
    validation_split: str
    hub_dataset: str  # for users who are online: a Hub dataset id with the same fields
    hub_columns: dict = field(default_factory=dict)  # Hub column -> our field name
    hub_splits: dict = field(default_factory=dict)  # our split name -> Hub split name
    references: str | None = None  # a field holding several references (AESLC dev "annotations")
    labels: tuple[str, ...] = ()
    max_source_length: int = 128
    max_target_length: int = 128
    num_beams: int = 4
    length_penalty: float = 0.6  # Section 6.1 of the paper: beam size 4, length penalty alpha 0.6
    max_new_tokens: int = 128
    defaults: dict = field(default_factory=dict)  # training defaults (vocab size, model size, schedule)

    def label_config(self) -> dict:
        """The label fields of a classification model's config (num_labels, id2label, label2id)."""
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {label: i for i, label in enumerate(self.labels)}}


SMALL_MODEL = {"d_model": 256, "encoder_layers": 3, "decoder_layers": 3, "num_attention_heads": 4, "ffn_dim": 1024}


def multi30k(source: str, target: str) -> Task:
    return Task(
        name=f"multi30k-{source}-{target}",
        head="seq2seq",
        data_format="parallel",
        source=source,
        target=target,
        metric="translation",
        main_metric="bleu",
        validation_split="val",
        hub_dataset="bentrevett/multi30k",  # en-de only on the Hub
        hub_splits={"val": "validation", "test_2016_flickr": "test"},
        max_source_length=128,
        max_target_length=128,
        max_new_tokens=96,
        defaults={"vocab_size": 8000, "model": SMALL_MODEL, "lr": 1e-3, "warmup_steps": 1000,
                  "max_tokens": 4096, "epochs": 20},
    )


TASKS = {
    task.name: task
    for task in [
        multi30k("en", "de"),
        multi30k("de", "en"),
        multi30k("en", "fr"),
        Task(
            name="samsum",
            head="seq2seq",
            data_format="json",
            source="dialogue",
            target="summary",
            metric="summarization",
            main_metric="rouge1",
            validation_split="val",
            hub_dataset="knkarthick/samsum",
            hub_splits={"val": "validation"},
            max_source_length=512,
            max_target_length=96,
            max_new_tokens=96,
            length_penalty=1.0,
            # a speaker's name begins each dialogue line: with a prefix space it is the token the summary copies
            defaults={"vocab_size": 10000, "add_prefix_space": True,
                      "model": {**SMALL_MODEL, "max_position_embeddings": 512}, "lr": 1e-3,
                      "warmup_steps": 1000, "max_tokens": 8192, "epochs": 20},
        ),
        Task(
            name="aeslc",
            head="seq2seq",
            data_format="jsonl",
            source="email",
            target="subject",
            references="annotations",
            metric="summarization",
            main_metric="rouge1",
            validation_split="dev",
            hub_dataset="Yale-LILY/aeslc",
            hub_columns={"email_body": "email", "subject_line": "subject"},
            hub_splits={"dev": "validation"},
            max_source_length=512,
            max_target_length=32,
            max_new_tokens=32,
            length_penalty=1.0,
            defaults={"vocab_size": 10000, "model": {**SMALL_MODEL, "max_position_embeddings": 512}, "lr": 1e-3,
                      "warmup_steps": 1000, "max_tokens": 8192, "epochs": 20},
        ),
        Task(
            name="sst2",
            head="classification",
            data_format="tsv",
            source="sentence",
            target="label",
            metric="classification",
            main_metric="accuracy",
            validation_split="dev",
            hub_dataset="stanfordnlp/sst2",
            hub_splits={"dev": "validation"},
            labels=("negative", "positive"),
            max_source_length=128,
            defaults={"vocab_size": 8000, "model": SMALL_MODEL, "lr": 5e-4, "warmup_steps": 500,
                      "max_tokens": 4096, "epochs": 5},
        ),
    ]
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


# ---------------------------------------------------------------------------------------------------
# Reading records. A record is {"source": str, "target": str | int, "references": [str, ...]}.
# ---------------------------------------------------------------------------------------------------


def open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def find_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    available = sorted({p.name.split(".")[0] for p in folder.glob("*") if p.is_file() and p.name[0] != "."})
    raise DataError(f"{folder}: no file {stem}[.gz]; splits here: {', '.join(available) or 'none'}")


def read_parallel(task: Task, folder: Path, split: str) -> list[dict]:
    source_path = find_file(folder, f"{split}.{task.source}")
    target_path = find_file(folder, f"{split}.{task.target}")
    sources, targets = read_text_lines(source_path), read_text_lines(target_path)
    if len(sources) != len(targets):
        raise DataError(f"{source_path} has {len(sources)} lines but {target_path} has {len(targets)}: "
                        "parallel files must be line-aligned")
    records = []
    for number, (source, target) in enumerate(zip(sources, targets), start=1):
        for path, text in ((source_path, source), (target_path, target)):
            if not text.strip():
                raise DataError(f"{path}:{number}: empty sentence (parallel files must have text on every line)")
        records.append({"source": source.strip(), "target": target.strip()})
    return records


def read_text_lines(path: Path) -> list[str]:
    with open_text(path) as f:
        text = f.read()
    return text.splitlines()


def read_tsv(task: Task, folder: Path, split: str) -> list[dict]:
    path = find_file(folder, f"{split}.tsv")
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0][:2] != [task.source, task.target]:
        raise DataError(f"{path}:1: expected the header '{task.source}<TAB>{task.target}', got {rows[:1]}")
    records = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise DataError(f"{path}:{number}: expected 2 tab-separated fields, got {len(row)}")
        text, label = row
        if label.strip() not in {str(i) for i in range(len(task.labels))}:
            raise DataError(f"{path}:{number}: label {label!r} is not one of 0..{len(task.labels) - 1} "
                            f"({', '.join(task.labels)})")
        if not text.strip():
            raise DataError(f"{path}:{number}: empty sentence")
        records.append({"source": text.strip(), "target": int(label)})
    return records


def read_json_records(task: Task, folder: Path, split: str) -> list[dict]:
    """JSON array (SAMSum) or JSON lines (AESLC). A record with an empty source or target is skipped with
    a warning naming file and record (the SAMSum training file has one such dialogue); a record that is not
    valid JSON or lacks a field is an error."""
    if task.data_format == "json":
        path = find_file(folder, f"{split}.json")
        with open_text(path) as f:
            try:
                items = json.load(f)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON array of records")
        where = [f"{path} record {i}" for i in range(1, len(items) + 1)]
    else:
        path = find_file(folder, f"{split}.jsonl")
        items, where = [], []
        with open_text(path) as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                where.append(f"{path}:{number}")
    records, skipped = [], []
    for item, location in zip(items, where):
        if not isinstance(item, dict) or task.source not in item or task.target not in item:
            raise DataError(f"{location}: expected an object with fields {task.source!r} and {task.target!r}")
        source, target = item[task.source], item[task.target]
        if not isinstance(source, str) or not isinstance(target, str):
            raise DataError(f"{location}: fields {task.source!r} and {task.target!r} must be strings")
        if not source.strip() or not target.strip():
            skipped.append(location)
            continue
        record = {"source": source.strip(), "target": target.strip()}
        if task.references and item.get(task.references):
            record["references"] = [reference.strip() for reference in item[task.references]]
        records.append(record)
    for location in skipped:
        logger.warning("skipped a record with an empty %s or %s: %s", task.source, task.target, location)
    return records


READERS = {"parallel": read_parallel, "tsv": read_tsv, "json": read_json_records, "jsonl": read_json_records}


def load_records(task: Task, data: str, split: str) -> list[dict]:
    """The records of one split, from a local folder or (if `data` is not a folder) a Hub dataset id."""
    folder = Path(data)
    if folder.is_dir():
        return READERS[task.data_format](task, folder, split)
    if folder.exists():
        raise DataError(f"{data}: expected a dataset folder, got a file")
    return load_hub_records(task, data, split)


def load_hub_records(task: Task, dataset_id: str, split: str) -> list[dict]:
    from datasets import load_dataset

    dataset = load_dataset(dataset_id, split=task.hub_splits.get(split, split))
    dataset = dataset.rename_columns({k: v for k, v in task.hub_columns.items() if k in dataset.column_names})
    dataset = dataset.rename_columns({task.source: "source", task.target: "target"})
    return [record for record in dataset if record["source"] and record["target"] not in ("", None)]
