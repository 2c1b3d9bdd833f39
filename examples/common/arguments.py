"""Command-line arguments of the example scripts.

`train.py` and `evaluate_model.py` read dataclasses through transformers' `HfArgumentParser`, with the names
of transformers' example scripts (`run_translation.py`, `run_summarization.py`, `run_classification.py`);
each option is accepted with underscores and with dashes (`--train_file`, `--train-file`). A count given on the
command line is checked when it is parsed, so that a 0 or a negative number is an error naming the option,
not a division by zero or a silently empty slice later on.
"""

import argparse
import copy
import dataclasses
from dataclasses import dataclass, field

from transformers import HfArgumentParser

from .data import DataSource
from .tasks import get_task


def counted(minimum: int):
    """An argparse type: an integer of at least `minimum`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    parse.__name__ = f"integer >= {minimum}"  # argparse names the type in its error message
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def option(help: str, default=None, minimum=None, aliases=None, required=False, **extra):
    """A dataclass field: `minimum` is checked after parsing (0 for >= 0, 1 for >= 1, 'positive' for > 0)."""
    metadata = {"help": help.replace("%", "%%"), **extra}  # argparse %-formats help texts ("95%" broke --help)
    if aliases:
        metadata["aliases"] = aliases
    if minimum is not None:
        metadata["minimum"] = minimum
    return field(default=dataclasses.MISSING if required else default, metadata=metadata)


@dataclass
class DataArguments:
    task: str = option("translation, summarization or classification, or a preset: multi30k-en-de, "
                       "multi30k-de-en, multi30k-en-fr, samsum, aeslc, sst2 (fills in dataset, columns and recipe)",
                       required=True)
    dataset_name: str | None = option("a Hub dataset id, or a local folder of <split>.<ext> files (csv, tsv, json, "
                                      "jsonl, each also .gz; for translation also <split>.<lang>)",
                                      aliases=["--data"])
    dataset_config_name: str | None = option("the Hub dataset's configuration")
    train_file: str | None = option("training data: csv, tsv, json or jsonl (also .gz)")
    validation_file: str | None = option("validation data, as --train_file")
    test_file: str | None = option("test data, as --train_file (scored at the end)")
    source_lang: str | None = option("translation: the source language code (a key of each record's "
                                     "'translation' dict, or the suffix of <split>.<lang> files)")
    target_lang: str | None = option("translation: the target language code")
    text_column: str | None = option("summarization: the column of the texts (default: text)")
    summary_column: str | None = option("summarization: the column of the summaries (default: summary)")
    text_column_name: str | None = option("classification: the column of the texts (default: text)")
    label_column_name: str | None = option("classification: the column of the labels, integers or strings "
                                           "(default: label)")
    max_source_length: int | None = option("truncate sources to this many tokens", minimum=1)
    max_target_length: int | None = option("truncate targets to this many tokens", minimum=1)
    length_penalty: float | None = option("beam search's length penalty alpha: a beam's log-probability is "
                                          "divided by its length to this power, so larger values favour longer "
                                          "outputs (default: the task's; 0.6, the paper's, for translation)")
    no_repeat_ngram_size: int | None = option("decoding: never repeat an n-gram of this many tokens within one "
                                              "output, a guard against loops (0: off; default: the task's)",
                                              minimum=0)

    def load_task(self):
        """The preset or task kind, with the columns, languages, lengths and decoding options given on the command
        line."""
        columns = {"translation": (self.source_lang, self.target_lang),
                   "summarization": (self.text_column, self.summary_column),
                   "classification": (self.text_column_name, self.label_column_name)}
        source, target = columns[get_task(self.task).kind]
        task = get_task(self.task, source=source, target=target, max_source_length=self.max_source_length,
                        max_target_length=self.max_target_length, length_penalty=self.length_penalty,
                        no_repeat_ngram_size=self.no_repeat_ngram_size)
        if task.kind == "translation" and not (task.source and task.target):
            raise ValueError("a translation task needs --source_lang and --target_lang")
        return task

    def data_source(self, task) -> DataSource:
        files = {"train": self.train_file, task.validation_split: self.validation_file,
                 task.test_split: self.test_file}
        name = self.dataset_name
        if name is None and not any(files.values()) and task.hub_dataset:
            name = task.hub_dataset  # a preset with no data given: its Hub dataset
        return DataSource(name, self.dataset_config_name, {k: v for k, v in files.items() if v})


class ArgumentParser(HfArgumentParser):
    """HfArgumentParser, with a field's `minimum` kept for the check after parsing (not passed to argparse)."""

    @staticmethod
    def _parse_dataclass_field(parser, field):
        field = copy.copy(field)
        field.metadata = {k: v for k, v in field.metadata.items() if k != "minimum"}
        HfArgumentParser._parse_dataclass_field(parser, field)


def parse(dataclass_types, argv=None, description=None):
    """Parses into the dataclasses, then checks each field's `minimum`; an error names the option."""
    parser = ArgumentParser(dataclass_types, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parsed = parser.parse_args_into_dataclasses(args=argv)
    for instance in parsed:
        for item in dataclasses.fields(instance):
            minimum, value = item.metadata.get("minimum"), getattr(instance, item.name)
            if minimum is None or value is None:
                continue
            if minimum == "positive" and not value > 0:
                parser.error(f"argument --{item.name}: {value} is not above 0")
            if minimum != "positive" and value < minimum:
                parser.error(f"argument --{item.name}: {value} is less than {minimum}")
    return parser, parsed


RENAMED = {"--data": "--dataset_name", "--epochs": "--num_train_epochs", "--lr": "--learning_rate"}


def current_spelling(command: str) -> str:
    """A command line with its options spelt as today's scripts name them (`--save-every` -> `--save_every`,
    `--data` -> `--dataset_name`); older spellings still parse, this is for showing commands alike."""
    def respell(word: str) -> str:
        if not word.startswith("--") or word == "--":
            return word
        word = RENAMED.get(word, word)
        return "--" + word[2:].replace("-", "_")

    return " ".join(respell(word) for word in command.split(" "))
