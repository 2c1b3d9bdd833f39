"""Tiny dataset folders in the layouts of ../shared/data, written by the tests (a few dozen records)."""

import gzip
import json
import random
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))  # the training scripts import their sibling modules

ANIMALS = ["cat", "dog", "bird", "horse", "fish", "cow"]
GERMAN = {"cat": "Katze", "dog": "Hund", "bird": "Vogel", "horse": "Pferd", "fish": "Fisch", "cow": "Kuh"}
FRENCH = {"cat": "chat", "dog": "chien", "bird": "oiseau", "horse": "cheval", "fish": "poisson", "cow": "vache"}


def write_gzip(path: Path, text: str) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


def multi30k(folder: Path, count: int = 40, splits=("train", "val", "test_2016_flickr")) -> Path:
    """Line-aligned `<split>.<en|de|fr>.gz` files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split in splits:
        animals = [rng.choice(ANIMALS) for _ in range(count if split == "train" else 8)]
        for lang, words in [("en", None), ("de", GERMAN), ("fr", FRENCH)]:
            lines = [f"The {a} sleeps." if words is None else f"{words[a]} {'schlaeft' if lang == 'de' else 'dort'}."
                     for a in animals]
            write_gzip(folder / f"{split}.{lang}.gz", "".join(line + "\n" for line in lines))
    return folder


def sst2(folder: Path, count: int = 40) -> Path:
    """`<split>.tsv` with a `sentence<TAB>label` header, as GLUE releases it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in [("train", count), ("dev", 8)]:
        rows = []
        for _ in range(n):
            label = rng.randrange(2)
            rows.append(f"a {'wonderful' if label else 'terrible'} {rng.choice(ANIMALS)} film \t{label}\n")
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(rows), encoding="utf-8")
    return folder


def samsum(folder: Path, count: int = 30) -> Path:
    """`<split>.json.gz`: a JSON array of {id, summary, dialogue}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in [("train", count), ("val", 6)]:
        records = []
        for i in range(n):
            a = rng.choice(ANIMALS)
            records.append({"id": str(i), "dialogue": f"Ann: I saw a {a}.\r\nBob: Really?\r\nAnn: Yes, a {a}!",
                            "summary": f"Ann saw a {a}."})
        write_gzip(folder / f"{split}.json.gz", json.dumps(records))
    return folder


def aeslc(folder: Path, count: int = 30) -> Path:
    """`<split>.jsonl.gz`: one {id, email, subject[, annotations]} per line."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in [("train", count), ("dev", 6)]:
        lines = []
        for i in range(n):
            a = rng.choice(ANIMALS)
            record = {"id": str(i), "email": f"Hi all, the {a} meeting is moved to Friday. Thanks", "subject": f"{a} meeting"}
            if split == "dev":
                record["annotations"] = [f"{a} meeting moved", f"{a} meeting", "meeting on Friday"]
            lines.append(json.dumps(record) + "\n")
        write_gzip(folder / f"{split}.jsonl.gz", "".join(lines))
    return folder


DATASETS = {"multi30k-en-de": multi30k, "multi30k-de-en": multi30k, "multi30k-en-fr": multi30k, "sst2": sst2,
            "samsum": samsum, "aeslc": aeslc}

TINY_MODEL = "d_model=32,encoder_layers=1,decoder_layers=1,num_attention_heads=2,ffn_dim=64,dropout=0.0"


def train_arguments(task: str, data: Path, output_dir: Path, *extra: str) -> list[str]:
    """Command-line arguments of examples/train.py for a tiny, fast run."""
    return ["--task", task, "--dataset_name", str(data), "--output_dir", str(output_dir), "--vocab_size", "300",
            "--config_overrides", TINY_MODEL, "--max_tokens", "256", "--learning_rate", "3e-3", "--warmup_steps",
            "2", "--mixed_precision", "no", "--log_every", "1", "--eval_every", "0", *extra]
