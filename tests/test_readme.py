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


def readme_commands(script: str) -> list[list[str]]:
    import shlex

    prefix = f".venv/bin/python examples/{script} "
    return [shlex.split(line[len(prefix):]) for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith(prefix)]


def test_readme_training_and_comparison_commands_name_real_options():
    """Every train.py and compare.py command line of the README parses (an option renamed in the code, and
    not in the README, fails here)."""
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    import train

    training = readme_commands("train.py")
    assert len(training) >= 6
    for argv in training:
        train.parse_args(argv)
    comparisons = readme_commands("compare.py")
    assert len(comparisons) >= 3
    for argv in comparisons:
        ours, passed_on = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        task = ours[ours.index("--task") + 1]
        train.parse_args(["--task", task, "--data", "unused", "--output-dir", "unused", *passed_on])
