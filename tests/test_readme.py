"""The Python snippets of the README (then of docs/training.md) run as written, in order, against a model
folder at outputs/dates; the README's commands name real options."""

import re
from pathlib import Path

import huggingface_hub

import tiny_datasets  # noqa: F401  (puts examples/ on sys.path, as the README snippet does from the repository root)
from conftest import tiny_seq2seq

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDES = [README, ROOT / "docs" / "training.md"]


def snippets(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


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

    namespace = {}
    for guide in GUIDES:
        for snippet in snippets(guide):
            exec(compile(snippet, str(guide), "exec"), namespace)

    assert namespace["trainer"].state.global_step == 20
    assert namespace["outputs"].cross_attentions[0].shape[:2] == (2, namespace["model"].config.num_attention_heads)
    assert len(namespace["results"]) == 1  # the CTranslate2 snippet of docs/training.md translated its sentence
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
    comparisons = readme_commands("comparison/compare.py")
    assert len(comparisons) >= 3
    for argv in comparisons:
        ours, passed_on = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        task = ours[ours.index("--task") + 1]
        train.parse_args(["--task", task, "--data", "unused", "--output-dir", "unused", *passed_on])


def test_readme_own_data_commands_train_on_the_files_they_name(tmp_path, monkeypatch):
    """Each "Train on your own data" command, run as written on small files at the paths it names (with a
    tiny model and a few steps appended), saves a model folder that loads with the Auto classes."""
    from test_own_data import finnish_swedish, reviews, write_csv, write_jsonl
    from tiny_datasets import TINY_MODEL
    from transformers import AutoConfig

    import train

    monkeypatch.chdir(tmp_path)
    for folder in ("data/fi-sv", "data/news", "data/reviews"):
        (tmp_path / folder).mkdir(parents=True)
    write_jsonl(tmp_path / "data/fi-sv/train.jsonl", finnish_swedish(30))
    write_jsonl(tmp_path / "data/fi-sv/valid.jsonl", finnish_swedish(4, seed=1))
    news = [[f"A {animal} was seen near the river on Monday morning.", f"{animal} by the river"]
            for animal in ("cat", "dog", "cow", "fish") * 6]
    for split, rows in [("train", news), ("valid", news[:4]), ("test", news[4:8])]:
        write_csv(tmp_path / f"data/news/{split}.csv", ["article", "headline"], rows)
    write_csv(tmp_path / "data/reviews/train.tsv", ["review", "verdict"], reviews(30), delimiter="\t")
    write_csv(tmp_path / "data/reviews/valid.tsv", ["review", "verdict"], reviews(6, seed=1), delimiter="\t")

    commands = [argv for argv in readme_commands("train.py") if argv[1] in ("translation", "summarization",
                                                                             "classification")]
    assert [argv[1] for argv in commands] == ["translation", "summarization", "classification"]
    tiny = ["--vocab_size", "300", "--config_overrides", TINY_MODEL, "--max_tokens", "256", "--max_steps", "2",
            "--mixed_precision", "no", "--eval_every", "0", "--log_every", "1"]
    for argv in commands:
        assert train.main(argv + tiny) == 0, argv
        output = Path(argv[argv.index("--output_dir") + 1])
        assert AutoConfig.from_pretrained(output / "model").model_type == "vanilla_transformer"


def test_readme_conversion_command_writes_a_ctranslate2_model(tokenizer, tmp_path, monkeypatch):
    import shlex

    from vanilla_transformer.modeling.export_ctranslate2_vanilla_transformer import main as ct2_main

    monkeypatch.chdir(tmp_path)
    model = tiny_seq2seq(vocab_size=len(tokenizer))
    model.save_pretrained("outputs/dates")
    tokenizer.save_pretrained("outputs/dates")
    prefix = ".venv/bin/vanilla-transformer-ct2 "
    (line,) = [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]
    assert ct2_main(shlex.split(line[len(prefix):])) == 0
    assert (tmp_path / "outputs" / "dates-ct2" / "model.bin").exists()


def test_readme_comparisons_train_ours_without_the_copy_mechanism():
    """The other architectures have no copy mechanism, so the comparison's ours has none either, on every task
    (SAMSum's preset turns it on; its comparison command turns it off)."""
    import tiny_datasets  # noqa: F401  (puts examples/ on sys.path)
    import train
    from common.models import apply_overrides
    from vanilla_transformer.configuration.configuration_vanilla_transformer import VanillaTransformerConfig

    for argv in readme_commands("comparison/compare.py"):
        task_name = argv[argv.index("--task") + 1]
        task, _, model, _ = train.parse_args(["--task", task_name, "--data", "unused", "--output-dir", "unused",
                                              *argv[argv.index("--") + 1:]])
        config = VanillaTransformerConfig(**task.defaults.get("model", {}))
        apply_overrides(config, model.config_overrides)
        assert not config.copy_mechanism, " ".join(argv)
    samsum = next(argv for argv in readme_commands("train.py") if argv[argv.index("--task") + 1] == "samsum")
    task, _, model, _ = train.parse_args(samsum)
    config = VanillaTransformerConfig(**task.defaults.get("model", {}))
    apply_overrides(config, model.config_overrides)
    assert config.copy_mechanism  # the preset's recipe keeps it
