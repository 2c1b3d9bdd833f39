"""A saved folder is a complete Hub repository: it loads with nothing but transformers."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from huggingface_hub import ModelCard
import torch
from transformers import pipeline

from conftest import CORPUS, tiny_classifier, tiny_seq2seq
from vanilla_transformer.modeling import VanillaTransformerSeq2SeqPipeline

SOURCES = ["The cat sat on the mat.", "Two dogs play in the snow."]

# Runs in a fresh interpreter in which `vanilla_transformer` cannot be imported.
FRESH_PROCESS_LOAD = textwrap.dedent(
    """
    import json, sys
    import torch

    class BlockOurPackage:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "vanilla_transformer":
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, BlockOurPackage())
    try:
        import vanilla_transformer  # noqa: F401
        sys.exit("vanilla_transformer is still importable")
    except ModuleNotFoundError:
        pass

    from transformers import (AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification,
                              AutoTokenizer)

    seq2seq_folder, classifier_folder, resaved_folder, sources = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    tokenizer = AutoTokenizer.from_pretrained(seq2seq_folder, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(seq2seq_folder, trust_remote_code=True).eval()
    batch = tokenizer(sources, return_tensors="pt", padding=True)
    generated = model.generate(**batch, max_new_tokens=8, num_beams=2)

    # a model loaded as remote code saves a folder that loads again the same way
    model.save_pretrained(resaved_folder)
    tokenizer.save_pretrained(resaved_folder)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(resaved_folder, trust_remote_code=True).eval()
    regenerated = reloaded.generate(**batch, max_new_tokens=8, num_beams=2)

    base = AutoModel.from_pretrained(seq2seq_folder, trust_remote_code=True)
    config = AutoConfig.from_pretrained(seq2seq_folder, trust_remote_code=True)
    classifier = AutoModelForSequenceClassification.from_pretrained(classifier_folder, trust_remote_code=True).eval()
    with torch.no_grad():
        class_logits = classifier(**batch).logits
    print(json.dumps({
        "generated": generated.tolist(),
        "regenerated": regenerated.tolist(),
        "classes": [type(x).__module__ + "." + type(x).__name__ for x in (tokenizer, model, base, config, classifier)],
        "class_logits": class_logits.tolist(),
    }))
    """
)


@pytest.fixture
def saved_folders(tokenizer, tmp_path):
    seq2seq = tiny_seq2seq(vocab_size=len(tokenizer))
    seq2seq.save_pretrained(tmp_path / "seq2seq")
    tokenizer.save_pretrained(tmp_path / "seq2seq")
    classifier = tiny_classifier(vocab_size=len(tokenizer), num_labels=2)
    classifier.config.id2label = {0: "negative", 1: "positive"}
    classifier.config.label2id = {"negative": 0, "positive": 1}
    classifier.save_pretrained(tmp_path / "classifier")
    tokenizer.save_pretrained(tmp_path / "classifier")
    return seq2seq, classifier, tmp_path


def test_saved_folder_is_a_complete_hub_repository(saved_folders):
    _, _, root = saved_folders
    folder = root / "seq2seq"
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "README.md", "configuration_vanilla_transformer.py", "modeling_vanilla_transformer.py",
            "tokenization_vanilla_transformer.py", "pipeline_vanilla_transformer.py", "hub_vanilla_transformer.py",
            "attention_vanilla_transformer.py", "model_card_vanilla_transformer.py"} <= names
    assert "cpu_kernels_vanilla_transformer.py" not in names  # the opt-in CPU kernels stay out of the Hub code
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM",
                                       "AutoModelForSequenceClassification", "AutoTokenizer"}
    assert set(config["custom_pipelines"]) == {"translation", "summarization"}
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: transformers" in card and "pipeline_tag: translation" in card
    parsed = ModelCard.load(folder / "README.md")  # the Hub's own parser reads the front matter
    assert parsed.data.license == "apache-2.0" and "vanilla-transformer" in parsed.data.tags
    assert f"from_pretrained({str(folder)!r}" in card and "REPO" not in card  # loads from where it is, no placeholder
    for code in folder.glob("*.py"):  # flat: only single-dot sibling imports, none of our package
        imports = re.findall(r"^\s*(?:from|import)\s+(\S+)", code.read_text(), flags=re.MULTILINE)
        assert not [name for name in imports if name.startswith("..") or name.startswith("vanilla_transformer")]


def test_fresh_process_without_our_package_loads_the_folder_and_generates_the_same_tokens(saved_folders, tokenizer):
    seq2seq, classifier, root = saved_folders
    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    expected = seq2seq.generate(**batch, max_new_tokens=8, num_beams=2)
    with torch.no_grad():
        expected_class_logits = classifier(**batch).logits

    environment = {**os.environ, "HF_MODULES_CACHE": str(root / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_LOAD, str(root / "seq2seq"), str(root / "classifier"),
         str(root / "resaved"), *SOURCES],
        capture_output=True, text=True, env=environment, cwd=root, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["generated"] == expected.tolist()
    assert loaded["regenerated"] == expected.tolist()
    assert all(name.startswith("transformers_modules.") for name in loaded["classes"])
    assert loaded["classes"][1].endswith("VanillaTransformerForConditionalGeneration")
    torch.testing.assert_close(torch.tensor(loaded["class_logits"]), expected_class_logits)


def test_push_to_hub_uploads_the_complete_folder(saved_folders, tokenizer, monkeypatch):
    """No network here: the Hub API is replaced by a recorder of what would be uploaded."""
    import huggingface_hub

    seq2seq, _, _ = saved_folders
    uploads = []

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p: open(os.path.join(folder_path, p), "rb").read() for p in os.listdir(folder_path)}
        uploads.append((repo_id, files, kwargs))
        return "https://huggingface.co/someone/tiny/commit/0"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    seq2seq.push_to_hub("someone/tiny", tokenizer=tokenizer, commit_message="first")

    (repo_id, files, kwargs), = uploads
    assert repo_id == "someone/tiny" and kwargs["commit_message"] == "first"
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md",
            "modeling_vanilla_transformer.py", "configuration_vanilla_transformer.py",
            "tokenization_vanilla_transformer.py", "pipeline_vanilla_transformer.py"} <= set(files)
    assert b"library_name: transformers" in files["README.md"]  # our card, not transformers' template
    assert b"from_pretrained('someone/tiny', trust_remote_code=True)" in files["README.md"]
    assert "AutoModelForSeq2SeqLM" in json.loads(files["config.json"])["auto_map"]


@pytest.mark.parametrize("task, key", [("translation", "translation_text"), ("summarization", "summary_text")])
def test_translation_and_summarization_pipelines(saved_folders, tokenizer, task, key, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    seq2seq, _, root = saved_folders
    generator = pipeline(task, model=str(root / "seq2seq"), trust_remote_code=True)
    outputs = generator(SOURCES, max_new_tokens=6)
    expected = [
        tokenizer.decode(seq2seq.generate(**tokenizer(text, return_tensors="pt"), max_new_tokens=6)[0],
                         skip_special_tokens=True)
        for text in SOURCES
    ]
    assert outputs == [{key: text} for text in expected]  # a flat list, one dict per text


def test_seq2seq_pipeline_built_directly(tokenizer):
    model = tiny_seq2seq(vocab_size=len(tokenizer))
    translator = VanillaTransformerSeq2SeqPipeline(model=model, tokenizer=tokenizer, task="translation")
    (output,) = translator(CORPUS[0], max_new_tokens=5, num_beams=2)
    expected = model.generate(**tokenizer(CORPUS[0], return_tensors="pt"), max_new_tokens=5, num_beams=2)
    assert output["translation_text"] == tokenizer.decode(expected[0], skip_special_tokens=True)


def test_seq2seq_pipeline_returns_one_entry_per_text_and_skips_empty_texts(tokenizer, monkeypatch):
    model = tiny_seq2seq(vocab_size=len(tokenizer))
    translator = VanillaTransformerSeq2SeqPipeline(model=model, tokenizer=tokenizer, task="translation")
    calls = []
    generate = model.generate
    monkeypatch.setattr(model, "generate", lambda **kwargs: calls.append(kwargs) or generate(**kwargs))
    assert translator("", max_new_tokens=4) == [{"translation_text": ""}] and not calls  # the model did not run
    outputs = translator([CORPUS[0], "  ", CORPUS[2]], max_new_tokens=4)
    assert len(calls) == 2 and outputs[1] == {"translation_text": ""}
    assert outputs[0] == translator(CORPUS[0], max_new_tokens=4)[0]
    several = translator([CORPUS[0], CORPUS[2]], max_new_tokens=4, num_beams=2, num_return_sequences=2)
    assert [len(output) for output in several] == [2, 2]  # one list per text when several sequences are asked


def test_text_classification_pipeline(saved_folders, tokenizer):
    _, classifier, root = saved_folders
    classify = pipeline("text-classification", model=str(root / "classifier"))
    outputs = classify(SOURCES)
    with torch.no_grad():
        logits = classifier(**tokenizer(SOURCES, return_tensors="pt", padding=True)).logits
    expected = [classifier.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert [output["label"] for output in outputs] == expected
