"""The README's Python snippets run as written, in order, against a model folder at outputs/dates."""

import re
from pathlib import Path

import huggingface_hub

from conftest import tiny_seq2seq

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_snippets_run(tokenizer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    model = tiny_seq2seq(vocab_size=len(tokenizer))  # stands in for the quick start's trained model
    model.save_pretrained("outputs/dates")
    tokenizer.save_pretrained("outputs/dates")

    uploaded = []  # no network here: record what would be uploaded
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder",
                        lambda self, *, repo_id, folder_path, **kw: uploaded.append(sorted(Path(folder_path).iterdir())))

    snippets = readme_snippets()
    assert len(snippets) >= 6
    namespace = {}
    for snippet in snippets:
        exec(compile(snippet, str(README), "exec"), namespace)

    assert namespace["trainer"].state.global_step == 20
    assert Path("outputs/my-model/model.safetensors").exists()
    (files,) = uploaded
    assert {"model.safetensors", "tokenizer.json", "modeling_vanilla_transformer.py"} <= {f.name for f in files}
