"""Tasks: the three kinds of task (translation, summarization, classification) and the built-in presets.

A preset only fills in a dataset, its columns and a training recipe (the defaults used for the results in
model_card.md); reading, training and scoring are the same code for a preset and for anyone's own data.
"""

from dataclasses import dataclass, field, replace

KINDS = ("translation", "summarization", "classification")
MAIN_METRIC = {"translation": "bleu", "summarization": "rouge1", "classification": "accuracy"}


@dataclass(frozen=True)
class Task:
    name: str  # a preset's name, or the kind for one's own data
    kind: str  # translation, summarization or classification
    source: str | None = None  # translation: the source language; otherwise the text column
    target: str | None = None  # translation: the target language; the summary or label column
    validation_split: str = "validation"
    test_split: str = "test"
    references: str | None = None  # a column holding several references (AESLC dev "annotations")
    labels: tuple[str, ...] = ()  # class names; integer labels i are named labels[i]
    skip_empty_records: bool = False  # skip (with a warning) records with an empty field instead of stopping
    hub_dataset: str | None = None  # the preset's Hub dataset id, for users who are online
    hub_columns: dict = field(default_factory=dict)  # Hub column -> the preset's column
    hub_splits: dict = field(default_factory=dict)  # the preset's split name -> Hub split name
    max_source_length: int = 128
    max_target_length: int = 128
    num_beams: int = 4
    length_penalty: float = 0.6  # Section 6.1 of the paper: beam size 4, length penalty alpha 0.6
    no_repeat_ngram_size: int = 0  # decoding: no n-gram of this many tokens twice in one output (0: off)
    max_new_tokens: int = 128
    defaults: dict = field(default_factory=dict)  # the recipe: vocabulary, model size, schedule

    @property
    def head(self) -> str:
        return "classification" if self.kind == "classification" else "seq2seq"

    @property
    def metric(self) -> str:
        return self.kind

    @property
    def main_metric(self) -> str:
        """The validation number that selects the best checkpoint."""
        return MAIN_METRIC[self.kind]

    def decoding(self, num_beams: int | None = None) -> dict:
        """How a seq2seq model of this task is decoded when it is scored (recorded beside the scores)."""
        return {"num_beams": num_beams or self.num_beams, "length_penalty": self.length_penalty,
                "no_repeat_ngram_size": self.no_repeat_ngram_size, "max_new_tokens": self.max_new_tokens}

    def label_config(self) -> dict:
        """The label fields of a classification model's config (num_labels, id2label, label2id)."""
        return {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)),
                "label2id": {label: i for i, label in enumerate(self.labels)}}


SMALL_MODEL = {"d_model": 256, "encoder_layers": 3, "decoder_layers": 3, "num_attention_heads": 4, "ffn_dim": 1024}
GENERIC_DEFAULTS = {"vocab_size": 8000, "model": SMALL_MODEL, "learning_rate": 1e-3, "warmup_steps": 1000,
                    "max_tokens": 4096}


def multi30k(source: str, target: str, length_penalty: float = Task.length_penalty, **recipe) -> Task:
    """A Multi30k direction; `recipe` replaces entries of the shared recipe for this direction only."""
    return Task(
        name=f"multi30k-{source}-{target}", kind="translation", source=source, target=target,
        length_penalty=length_penalty,
        validation_split="val", test_split="test_2016_flickr",
        hub_dataset="bentrevett/multi30k" if {source, target} == {"en", "de"} else None,  # en-de only on the Hub
        hub_splits={"val": "validation", "test_2016_flickr": "test"},
        max_new_tokens=96,
        defaults={"vocab_size": 8000, "model": SMALL_MODEL, "learning_rate": 1e-3, "warmup_steps": 1000,
                  "max_tokens": 4096, "num_train_epochs": 20, **recipe},
    )


PRESETS = {
    task.name: task
    for task in [
        # en-de: the recipe of results/multi30k-en-de/recipe.json (more dropout, 40 epochs, the mean of the last 5
        # checkpoints), decoded with length penalty 2.0; each chosen on val BLEU (results/multi30k-en-de/)
        multi30k("en", "de", length_penalty=2.0, model={**SMALL_MODEL, "dropout": 0.3}, num_train_epochs=40,
                 average_last=5),
        multi30k("de", "en"),
        multi30k("en", "fr"),
        Task(
            name="samsum", kind="summarization", source="dialogue", target="summary", validation_split="val",
            skip_empty_records=True,  # one training dialogue is empty
            hub_dataset="knkarthick/samsum", hub_splits={"val": "validation"},
            max_source_length=512, max_target_length=96, max_new_tokens=96, length_penalty=1.0,
            # a speaker's name begins each dialogue line: with a prefix space it is the token the summary copies;
            # the copy mechanism, chosen on validation ROUGE-1 (results/samsum/copy-mechanism.json)
            defaults={"vocab_size": 10000, "add_prefix_space": True,
                      "model": {**SMALL_MODEL, "max_position_embeddings": 512, "copy_mechanism": True},
                      "learning_rate": 1e-3, "warmup_steps": 1000, "max_tokens": 8192, "num_train_epochs": 20},
        ),
        Task(
            name="aeslc", kind="summarization", source="email", target="subject", references="annotations",
            validation_split="dev",
            hub_dataset="Yale-LILY/aeslc", hub_columns={"email_body": "email", "subject_line": "subject"},
            hub_splits={"dev": "validation"},
            max_source_length=512, max_target_length=32, max_new_tokens=32, length_penalty=1.0,
            no_repeat_ngram_size=1,  # chosen on dev: the copying model otherwise loops on copied fragments
            # the copy mechanism: without it the model never learns to read the email; a prefix space, so that a
            # subject's first word is the token the email holds and can be copied (results/aeslc/NOTES.md)
            defaults={"vocab_size": 10000, "add_prefix_space": True,
                      "model": {**SMALL_MODEL, "max_position_embeddings": 512, "copy_mechanism": True},
                      "learning_rate": 1e-3, "warmup_steps": 1000, "max_tokens": 8192, "num_train_epochs": 20},
        ),
        Task(
            name="sst2", kind="classification", source="sentence", target="label", validation_split="dev",
            labels=("negative", "positive"),
            hub_dataset="stanfordnlp/sst2", hub_splits={"dev": "validation"},
            defaults={"vocab_size": 8000, "model": SMALL_MODEL, "learning_rate": 5e-4, "warmup_steps": 500,
                      "max_tokens": 4096, "num_train_epochs": 5},
        ),
    ]
}
# what each kind reads when no column is named
DEFAULT_COLUMNS = {"summarization": ("text", "summary"), "classification": ("text", "label")}


def get_task(name: str, **columns) -> Task:
    """A preset by name, or a task of one kind; `columns` (source, target, max lengths) override the preset's."""
    if name in PRESETS:
        task = PRESETS[name]
    elif name in KINDS:
        source, target = DEFAULT_COLUMNS.get(name, (None, None))
        task = Task(name=name, kind=name, source=source, target=target, defaults=GENERIC_DEFAULTS)
    else:
        raise ValueError(f"unknown task {name!r}; a task kind ({', '.join(KINDS)}) or a preset "
                         f"({', '.join(PRESETS)})")
    return replace(task, **{key: value for key, value in columns.items() if value is not None})
