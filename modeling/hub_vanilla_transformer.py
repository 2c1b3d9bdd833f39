"""A saved folder is a complete Hub repository: weights and config (written by transformers), plus the
flat code files, the full `auto_map`, the custom pipelines and a model card (written here).

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
from .pipeline_vanilla_transformer import VanillaTransformerSeq2SeqPipeline  # noqa: F401


CODE_FILES = {  # file name: the package that holds it when installed
    "configuration_vanilla_transformer.py": "configuration",
    "modeling_vanilla_transformer.py": "modeling",
    "tokenization_vanilla_transformer.py": "tokenization",
    "pipeline_vanilla_transformer.py": "modeling",
    "hub_vanilla_transformer.py": "modeling",
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
        card.write_text(default_model_card(model), encoding="utf-8")


def default_model_card(model) -> str:
    config = model.config
    is_seq2seq = model.can_generate()
    pipeline_tag = "translation" if is_seq2seq else "text-classification"
    parameters = sum(p.numel() for p in model.parameters())
    return f"""---
library_name: transformers
pipeline_tag: {pipeline_tag}
tags:
- vanilla-transformer
- encoder-decoder
- custom_code
---

# {type(model).__name__}

The Transformer of "Attention Is All You Need" (Vaswani et al., 2017), packaged by vanilla-transformer.
{parameters:,} parameters: d_model={config.d_model}, {config.encoder_layers}+{config.decoder_layers} layers,
{config.num_attention_heads} heads, d_ff={config.ffn_dim}, vocabulary {config.vocab_size},
{config.positional_encoding} positions, {"pre" if config.normalize_before else "post"}-LN,
{"global" if config.attention_window is None else f"local (window {config.attention_window})"} attention.

Load it with nothing but `transformers`:

```python
from transformers import AutoModelFor{"Seq2SeqLM" if is_seq2seq else "SequenceClassification"}, AutoTokenizer

model = AutoModelFor{"Seq2SeqLM" if is_seq2seq else "SequenceClassification"}.from_pretrained(REPO, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(REPO, trust_remote_code=True)
```
"""


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
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload {type(model).__name__}",
            revision=revision,
            create_pr=create_pr,
        )
