"""A saved folder is a complete Hub repository: weights and config (written by transformers), plus the
flat code files, the full `auto_map`, the custom pipelines and a model card (model_card_vanilla_transformer.py).

transformers' remote-code loader copies the file that defines a class and the files it imports with a
single-dot sibling import, into one flat folder. Our sources live in three packages, so they are
exported: copied side by side, with `from ..package.module import` rewritten to `from .module import`.
"""

import json
import re
import tempfile
from pathlib import Path

# Not used here, but imported so that transformers' remote-code loader copies them along: a model loaded
# from the Hub must be able to save a complete folder again.
from ..tokenization.tokenization_vanilla_transformer import VanillaTransformerTokenizer  # noqa: F401
from .model_card_vanilla_transformer import folder_card
from .pipeline_vanilla_transformer import VanillaTransformerSeq2SeqPipeline  # noqa: F401


CODE_FILES = {  # file name: the package that holds it when installed
    "configuration_vanilla_transformer.py": "configuration",
    "modeling_vanilla_transformer.py": "modeling",
    "attention_vanilla_transformer.py": "modeling",
    "tokenization_vanilla_transformer.py": "tokenization",
    "pipeline_vanilla_transformer.py": "modeling",
    "hub_vanilla_transformer.py": "modeling",
    "model_card_vanilla_transformer.py": "modeling",
}
AUTO_MAP = {
    "AutoConfig": "configuration_vanilla_transformer.VanillaTransformerConfig",
    "AutoModel": "modeling_vanilla_transformer.VanillaTransformerModel",
    "AutoModelForSeq2SeqLM": "modeling_vanilla_transformer.VanillaTransformerForConditionalGeneration",
    "AutoModelForSequenceClassification": "modeling_vanilla_transformer.VanillaTransformerForSequenceClassification",
    "AutoTokenizer": [None, "tokenization_vanilla_transformer.VanillaTransformerTokenizer"],
}
SEQ2SEQ_PIPELINE = {
    "impl": "pipeline_vanilla_transformer.VanillaTransformerSeq2SeqPipeline",
    "pt": ["AutoModelForSeq2SeqLM"],
    "tf": [],
    "type": "text",
}


def find_code_file(name: str) -> Path:
    """Our code files: siblings of this file in a flat Hub folder, or in sibling packages when installed."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / CODE_FILES[name] / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"cannot find {name} beside {here}")


def flatten_imports(source: str) -> str:
    """`from ..configuration.configuration_x import A` -> `from .configuration_x import A`: the one import
    form transformers' remote-code loader follows is a single-dot sibling import in a flat folder."""
    return re.sub(r"^(\s*)from \.\.\w+\.(\w+) import", r"\1from .\2 import", source, flags=re.MULTILINE)


def export_hub_code(save_directory, model=None) -> None:
    """Write the flat, self-contained code files, the full `auto_map` and custom pipelines into config.json,
    and a model card (README.md) if the folder has none."""
    save_directory = Path(save_directory)
    for name in CODE_FILES:
        target = save_directory / name
        source = find_code_file(name)
        if source.resolve() != target.resolve():
            target.write_text(flatten_imports(source.read_text(encoding="utf-8")), encoding="utf-8")

    config_path = save_directory / "config.json"
    if config_path.exists():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["auto_map"] = AUTO_MAP
        config["custom_pipelines"] = {"translation": SEQ2SEQ_PIPELINE, "summarization": SEQ2SEQ_PIPELINE}
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    card = save_directory / "README.md"
    if model is not None and not card.exists():
        card.write_text(folder_card(model, location=str(save_directory)), encoding="utf-8")


def push_folder_to_hub(model, repo_id: str, *, tokenizer=None, commit_message=None, private=None, token=None,
                       revision=None, create_pr=False, **save_kwargs) -> str:
    """Save the model (and tokenizer) to a temporary folder and upload exactly that folder."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        model.save_pretrained(folder, **save_kwargs)
        # the card says how to load the model from where it is going
        (Path(folder) / "README.md").write_text(folder_card(model, location=repo_id,
                                                            tokenizer_included=tokenizer is not None),
                                                 encoding="utf-8")
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {type(model).__name__}",
            revision=revision,
            create_pr=create_pr,
        )
