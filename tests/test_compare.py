"""The side-by-side comparison: every baseline trains, saves, reloads and is scored by the same harness, and the
wrappers compute what the wrapped transformers model computes."""

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

from tiny_datasets import multi30k, samsum, sst2, train_arguments
from vanilla_transformer.tokenization import VanillaTransformerTokenizer

import train
from common.models import build_model
from common.tasks import get_task
from comparison import baselines, compare
from comparison import report as comparison_report

# A wider FFN than the other tests' tiny model: with a vocabulary of 300, the embeddings would otherwise
# outweigh everything else and no baseline could come within 10% of our parameter count.
COMPARISON_MODEL = "d_model=32,encoder_layers=1,decoder_layers=1,num_attention_heads=2,ffn_dim=512,dropout=0.0"


def tiny_train_arguments(*extra):
    arguments = train_arguments("unused", "unused", "unused")[6:]  # everything but task, data, output
    arguments[arguments.index("--config_overrides") + 1] = COMPARISON_MODEL
    return arguments + list(extra)


@pytest.mark.parametrize("task_name, write_data", [("multi30k-en-de", multi30k), ("sst2", sst2), ("samsum", samsum)])
def test_every_baseline_runs_through_the_harness_and_the_report(task_name, write_data, tmp_path):
    data = write_data(tmp_path / "data")
    card = tmp_path / "model_card.md"
    card.write_text("# Card\n\nkept text\n", encoding="utf-8")
    argv = ["--task", task_name, "--data", str(data), "--output-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--model-card", str(card), "--figures-dir",
            str(tmp_path / "figures"), "--in-process", "--", *tiny_train_arguments("--max-steps", "1")]
    assert compare.main(argv) == 0

    results = {path.stem: json.loads(path.read_text()) for path in (tmp_path / "results" / task_name).glob("*.json")}
    assert sorted(results) == sorted(f"{b}-seed0" for b in baselines.ARCHITECTURES)
    ours = results["ours-seed0"]["parameters"]
    for name, result in results.items():
        assert result["baseline"] == name.removesuffix("-seed0")
        assert abs(result["parameters"] - ours) <= 0.1 * ours, name
        assert result["steps"] == 1 and result["peak_memory_bytes"] >= 0
        assert result["evaluation"][get_task(task_name).validation_split]["ms_per_record"] > 0

    text = card.read_text(encoding="utf-8")
    assert text.startswith("# Card\n\nkept text\n")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(baselines.ARCHITECTURES)  # header + one row per model
    # predictions kept beside the results: each model tested against ours
    split = get_task(task_name).validation_split
    predictions = (tmp_path / "results" / task_name / f"ours-seed0.predictions_{split}.txt").read_text().splitlines()
    references = comparison_report.references_from_data(results["ours-seed0"], split, len(predictions))
    assert len(references) == len(predictions) > 0  # one line per record, paired with the data read again
    assert not list((tmp_path / "results").rglob("references_*"))  # no copy of the data in the results
    tested = {"multi30k-en-de": "BLEU / chrF", "sst2": "accuracy", "samsum": "ROUGE-1 / ROUGE-2 / ROUGE-L"}[task_name]
    assert f"p vs ours, {tested}" in table[0] and "paired bootstrap" in text
    assert (tmp_path / "figures" / f"comparison_{task_name}.png").stat().st_size > 0

    # Regenerating replaces the section instead of appending a second one; a finished run is not repeated.
    assert compare.main(argv) == 0
    assert card.read_text(encoding="utf-8").count(comparison_report.BEGIN) == 1


def test_paired_bootstrap_finds_a_clear_difference_and_not_a_chance_one():
    """Two systems that make errors of the same rate at random differ by chance; one that drops two thirds
    of every sentence differs significantly."""
    import random

    rng = random.Random(0)
    words = "the a cat dog cow fish bird sat on mat near door red blue big small runs jumps".split()
    references = [" ".join(rng.choice(words) for _ in range(9)) for _ in range(200)]

    def noisy():  # 30% of the words replaced at random
        return [" ".join(w if rng.random() > 0.3 else rng.choice(words) for w in r.split()) for r in references]

    ours, chance = noisy(), noisy()
    worse = [" ".join(r.split()[:3]) for r in references]
    p = comparison_report.paired_bootstrap(ours, {"worse": worse, "chance": chance}, references, n_samples=200)
    assert p["worse"]["BLEU"] < 0.05 and p["worse"]["chrF"] < 0.05
    assert p["chance"]["BLEU"] > 0.05 and p["chance"]["chrF"] > 0.05


def test_paired_bootstrap_of_accuracy_finds_a_clear_difference_and_not_a_chance_one():
    import random

    rng = random.Random(0)
    labels = [rng.choice("01") for _ in range(500)]

    def with_errors(rate):
        return [("1" if y == "0" else "0") if rng.random() < rate else y for y in labels]

    ours, chance, worse = with_errors(0.2), with_errors(0.2), with_errors(0.4)
    p = comparison_report.paired_bootstrap_accuracy(ours, {"worse": worse, "chance": chance, "same": ours}, labels)
    assert p["worse"]["accuracy"] < 0.05 < p["chance"]["accuracy"]
    assert p["same"]["accuracy"] == 1.0


def test_paired_bootstrap_of_rouge_finds_a_clear_difference_and_not_a_chance_one():
    """Summaries scored against the best of their references: one that keeps a third of the words differs
    significantly from ours; one with errors of the same rate as ours does not."""
    import random

    rng = random.Random(0)
    words = "amanda jerry will call the bank about her cookies tomorrow and tom is late again".split()
    references = [[" ".join(rng.choice(words) for _ in range(12)), "an unrelated second reference"] for _ in range(150)]

    def noisy():
        return [" ".join(w if rng.random() > 0.3 else rng.choice(words) for w in refs[0].split()) for refs in references]

    ours, chance = noisy(), noisy()
    worse = [" ".join(refs[0].split()[:4]) for refs in references]
    p = comparison_report.paired_bootstrap_rouge(ours, {"worse": worse, "chance": chance, "same": ours}, references,
                                                 n_samples=300)
    assert all(p["worse"][name] < 0.05 < p["chance"][name] for name in ("ROUGE-1", "ROUGE-2", "ROUGE-L"))
    assert p["same"] == {"ROUGE-1": 1.0, "ROUGE-2": 1.0, "ROUGE-L": 1.0}


def test_mean_and_standard_deviation_over_seeds():
    assert comparison_report.mean_std([80.0, 82.0, 84.0]) == "82.0 ± 2.0"
    assert comparison_report.mean_std([81.25]) == "81.2"


def test_one_runs_score_shows_its_interval_and_several_seeds_their_spread():
    one = [{"rouge1": 15.11, "rouge1_ci95": [14.49, 15.77]}]
    assert comparison_report.score_cell(one, "rouge1") == "15.1 [14.5, 15.8]"
    seeds = [{"accuracy": 80.0, "accuracy_ci95": [78.0, 82.0]}, {"accuracy": 84.0, "accuracy_ci95": [82.0, 86.0]}]
    assert comparison_report.score_cell(seeds, "accuracy") == "82.0 ± 2.8"


def test_peak_memory_of_a_run_whose_results_came_from_a_process_that_trained_nothing_is_not_shown():
    mib = 2**20
    assert comparison_report.peak_memory_cell([{"peak_memory_bytes": 3000 * mib}]) == "3000"
    assert comparison_report.peak_memory_cell([{"peak_memory_bytes": 0}]) == "-"
    assert comparison_report.peak_memory_cell([{"peak_memory_bytes": 0}, {"peak_memory_bytes": 3000 * mib}]) == "-"


def test_a_table_whose_rows_come_from_different_commits_says_so():
    def run(commit):
        return {"commit": commit}

    same = {"ours": [run("a" * 40)], "t5": [run("a" * 40), run("a" * 40)]}
    assert comparison_report.commits_line("sst2", same) == f"Every row: commit `{'a' * 7}`."
    mixed = {"ours": [run("b" * 40)], "t5": [run("a" * 40 + "+uncommitted changes")]}  # as git_commit() writes it
    line = comparison_report.commits_line("sst2", mixed)
    assert "not yet one comparison" in line and f"`{'b' * 7}`" in line
    assert f"T5 `{'a' * 7} + uncommitted changes`" in line


def test_the_card_names_a_model_trained_with_another_optimiser_than_adam():
    def run(**arguments):
        return {"arguments": arguments}

    adam_only = {"ours": [run()], "lstm": [run(optim="adam")]}
    assert comparison_report.optimizers_line("multi30k-en-de", adam_only) == []
    sweep = {"t5": {1e-3: run(optim="adafactor")}, "ours": {1e-3: run(optim="adam")}}
    line = comparison_report.optimizers_line("multi30k-en-de", sweep, adam_only)[0]
    assert "T5: adafactor" in line and "ours" not in line and "LSTM" not in line


def test_the_card_says_which_differences_to_ours_are_significant_and_in_whose_favour():
    def run(seed, bleu):
        return {"arguments": {"seed": seed}, "evaluation": {"test": {"bleu": bleu}}}

    models = {"ours": [run(0, 30.0)], "t5": [run(1, 99.0), run(0, 35.0)], "gpt2": [run(0, 20.0)],
              "bert": [run(0, 31.0)], "lstm": [run(0, 29.0)]}
    p = {"t5": {"BLEU": 0.001, "chrF": 0.2}, "gpt2": {"BLEU": 0.002, "chrF": 0.001},
         "bert": {"BLEU": 0.3, "chrF": 0.01}, "lstm": {"BLEU": 0.049, "chrF": 0.5}}
    text = comparison_report.significance("multi30k-en-de", models, "test", p)
    assert text == ("Seed 0 on test, bleu (ours 30.0): better than ours: T5 (35.0, p 0.001); worse than ours: "
                    "GPT-2 (decoder-only) (20.0, p 0.002), LSTM + attention (29.0, p 0.049); not significantly "
                    "different: BERT2BERT (31.0, p 0.300).")


@pytest.fixture(scope="module")
def tokenizer():
    texts = [f"the {w} sleeps on the {v}" for w in ("cat", "dog", "bird") for v in ("mat", "sofa")] * 3
    return VanillaTransformerTokenizer.train_from_iterator(texts, vocab_size=300)


def gpt2_wrapper(tokenizer):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2, n_inner=64,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=tokenizer.pad_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    return baselines.wrap(GPT2LMHeadModel(config).eval(), "gpt2", get_task("multi30k-en-de"), tokenizer, 0.0)


def seq2seq_batch(tokenizer):
    batch = tokenizer(["the cat sleeps", "the dog sleeps on the sofa"], padding=True, return_tensors="pt")
    labels = tokenizer(["the mat", "the bird sleeps"], padding=True, return_tensors="pt")["input_ids"]
    batch["labels"] = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
    return batch


def test_decoder_only_loss_covers_the_target_after_the_separator_only(tokenizer):
    wrapper, batch = gpt2_wrapper(tokenizer), seq2seq_batch(tokenizer)
    ours = wrapper(**batch).loss
    # Reference: GPT-2's own loss on each "source <s> target" row, with the source positions masked out.
    total, count = 0.0, 0
    for ids, mask, target in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        source, target = ids[mask.bool()], target[target != -100]
        row = torch.cat([source, torch.tensor([tokenizer.bos_token_id]), target])[None]
        labels = torch.cat([torch.full((len(source) + 1,), -100), target])[None]
        total += wrapper.model(input_ids=row, labels=labels).loss * len(target)
        count += len(target)
    torch.testing.assert_close(ours, total / count)


def test_decoder_only_generate_returns_the_continuation_of_source_and_separator(tokenizer):
    wrapper, batch = gpt2_wrapper(tokenizer), seq2seq_batch(tokenizer)
    generated = wrapper.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 num_beams=1, max_new_tokens=4, min_new_tokens=4)
    for row, (ids, mask) in enumerate(zip(batch["input_ids"], batch["attention_mask"])):
        sequence = torch.cat([ids[mask.bool()], torch.tensor([tokenizer.bos_token_id])])[None]
        for _ in range(4):  # greedy by hand, on the unpadded prompt
            logits = wrapper.model(input_ids=sequence).logits[0, -1]
            logits[tokenizer.eos_token_id] = float("-inf")  # min_new_tokens
            sequence = torch.cat([sequence, logits.argmax().view(1, 1)], dim=1)
        assert generated[row].tolist() == sequence[0, -4:].tolist()


def test_decoder_only_repeat_guard_covers_the_continuation_not_the_source(tokenizer):
    wrapper = gpt2_wrapper(tokenizer)
    source = torch.arange(len(tokenizer))[None]  # every token of the vocabulary is in the source
    mask = torch.ones_like(source)
    generated = wrapper.generate(input_ids=source, attention_mask=mask, num_beams=1, max_new_tokens=4,
                                 min_new_tokens=4, no_repeat_ngram_size=1)
    sequence = torch.cat([source, torch.tensor([[tokenizer.bos_token_id]])], dim=1)
    for _ in range(4):  # greedy by hand: a token may repeat one of the source, not one already generated
        logits = wrapper.model(input_ids=sequence).logits[0, -1]
        logits[tokenizer.eos_token_id] = float("-inf")  # min_new_tokens
        logits[sequence[0, source.shape[1] + 1:]] = float("-inf")
        sequence = torch.cat([sequence, logits.argmax().view(1, 1)], dim=1)
    assert generated[0].tolist() == sequence[0, -4:].tolist()


def test_seq2seq_wrapper_loss_equals_the_wrapped_models_own_loss(tokenizer):
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_heads=2, num_layers=1,
                      num_decoder_layers=1, dropout_rate=0.0, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id)
    model = T5ForConditionalGeneration(config).eval()
    wrapper = baselines.wrap(model, "t5", get_task("multi30k-en-de"), tokenizer, label_smoothing=0.0)
    batch = seq2seq_batch(tokenizer)
    torch.testing.assert_close(wrapper(**batch).loss, model(**batch).loss)


@pytest.mark.parametrize("architecture", [a for a in baselines.ARCHITECTURES if a != "ours"])
@pytest.mark.parametrize("task_name", ["multi30k-en-de", "sst2"])
def test_saved_baseline_reloads_with_the_same_outputs(architecture, task_name, tokenizer, tmp_path):
    task = get_task(task_name)
    ours = build_model(task, tokenizer, COMPARISON_MODEL)
    wrapper, _ = baselines.build_baseline(architecture, ours, task, tokenizer, label_smoothing=0.1)
    wrapper.save_pretrained(tmp_path)
    reloaded = baselines.load_model(tmp_path, task)
    batch = seq2seq_batch(tokenizer)
    if task.head == "classification":
        batch["labels"] = torch.tensor([0, 1])
    wrapper.eval(), reloaded.eval()
    torch.testing.assert_close(reloaded(**batch).logits, wrapper(**batch).logits)
    torch.testing.assert_close(reloaded(**batch).loss, wrapper(**batch).loss)


def test_a_pretrained_checkpoint_is_fine_tuned_with_its_own_tokenizer(tokenizer, tmp_path):
    """--baseline also takes a Hub id; a local folder takes the same path (no network here)."""
    folder = tmp_path / "pretrained"
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_heads=2, num_layers=1,
                      num_decoder_layers=1, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    data = multi30k(tmp_path / "data")
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "run", "--max-steps", "1",
                                      "--baseline", str(folder))) == 0
    result = json.loads((tmp_path / "run" / "results.json").read_text())
    assert result["baseline"] == str(folder) and result["parameters"] == T5ForConditionalGeneration(config).num_parameters()
    assert not (tmp_path / "run" / "tokenizer").exists()  # the checkpoint's tokenizer, not a new one


def test_a_model_of_ours_saved_by_train_py_is_fine_tuned_and_reloaded(tmp_path):
    """--baseline <folder of a trained model of ours>: fine-tuning (e.g. after pretraining on other data)."""
    data = multi30k(tmp_path / "data")
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "first", "--max-steps", "1")) == 0
    pretrained = tmp_path / "first" / "model"
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "second", "--max-steps", "2",
                                      "--baseline", str(pretrained))) == 0
    result = json.loads((tmp_path / "second" / "results.json").read_text())
    assert result["steps"] == 2 and "bleu" in result["evaluation"]["val"]
    task = get_task("multi30k-en-de")
    first = baselines.load_model(pretrained, task)
    second = baselines.load_model(tmp_path / "second" / "model", task)
    assert type(second.model) is type(first) and result["parameters"] == first.num_parameters()
    changed = [name for name, weight in first.state_dict().items()
               if not torch.equal(weight, second.model.state_dict()[name])]
    assert changed, "fine-tuning left every weight as it was"


def test_a_baseline_that_cannot_match_our_size_is_a_clear_error(tmp_path, capsys, monkeypatch):
    builders = baselines.architecture_builders

    def only_the_smallest_lstm(ours, task, tokenizer):  # an LSTM 8 wide is far smaller than the tiny model
        found = builders(ours, task, tokenizer)
        build, _, knob_name = found["lstm"]
        return {**found, "lstm": (build, [8], knob_name)}

    monkeypatch.setattr(baselines, "architecture_builders", only_the_smallest_lstm)
    data = sst2(tmp_path / "data")
    assert train.main(train_arguments("sst2", data, tmp_path / "run", "--max-steps", "1", "--baseline", "lstm")) == 1
    assert "lstm: the nearest size (hidden_size=8" in capsys.readouterr().err


def test_lstm_decoder_starts_from_the_source_and_feeds_its_attentional_state():
    """Luong et al. (2015): the decoder's first state comes from the encoder's final states (through the
    bridge), and each step reads the previous attentional state beside the next target embedding."""
    from comparison import lstm_baseline

    torch.manual_seed(0)
    model = lstm_baseline.LSTMForConditionalGeneration(lstm_baseline.LSTMConfig(vocab_size=50, hidden_size=16)).eval()
    calls = []
    model.decoder.register_forward_hook(lambda module, inputs, outputs: calls.append((inputs[0], outputs[0])))
    target = torch.tensor([[1, 7, 8, 9]])
    first_states = []
    for source in (torch.tensor([[5, 6, 7, 2]]), torch.tensor([[9, 9, 3, 2]])):
        calls.clear()
        with torch.no_grad():
            model(input_ids=source, decoder_input_ids=target)
        assert len(calls) == 4 and all(inputs.shape[-1] == 32 for inputs, _ in calls)  # embedding + fed state
        assert torch.count_nonzero(calls[0][0][..., 16:]) == 0 and torch.count_nonzero(calls[1][0][..., 16:]) > 0
        first_states.append(calls[0][1])
    assert not torch.allclose(*first_states)  # the same first target token, different sources


def test_lstm_encoder_reads_each_row_alone_whatever_its_padding():
    """A row padded inside a batch of longer rows gets the states (every position, both directions, the final
    (h, c) of every layer) and the gradients it gets alone: padding never reaches the backward direction."""
    from comparison import lstm_baseline

    torch.manual_seed(0)
    encoder = lstm_baseline.LSTMEncoder(lstm_baseline.LSTMConfig(vocab_size=50, hidden_size=16, dropout=0.0))
    rows = [torch.randint(3, 50, (length,)) for length in (7, 3, 7, 1, 5)]
    batch = torch.zeros(len(rows), 7, dtype=torch.long)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    together = encoder(batch, (batch != 0).long())
    together.last_hidden_state.sum().backward()
    batch_gradient = encoder.embed_tokens.weight.grad.clone()
    gradient = torch.zeros_like(batch_gradient)
    for index, row in enumerate(rows):
        encoder.zero_grad()
        alone = encoder(row[None], torch.ones(1, len(row), dtype=torch.long))
        alone.last_hidden_state.sum().backward()
        gradient += encoder.embed_tokens.weight.grad
        torch.testing.assert_close(together.last_hidden_state[index, : len(row)], alone.last_hidden_state[0])
        assert torch.count_nonzero(together.last_hidden_state[index, len(row):]) == 0
        torch.testing.assert_close(together.final_states[index], alone.final_states[0])
    torch.testing.assert_close(batch_gradient, gradient)


def test_lstm_generation_carries_the_decoder_state_and_writes_what_rereading_the_prefix_writes():
    """generate() with the model's cache costs one decoder step per new token (beam search reorders the state
    with the beams), and writes the same tokens as re-running the decoder over the whole prefix at every step."""
    from comparison import lstm_baseline

    torch.manual_seed(0)
    model = lstm_baseline.LSTMForConditionalGeneration(lstm_baseline.LSTMConfig(vocab_size=50, hidden_size=32)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # sharper than at initialisation, so that beams compete and reorder
            parameter.mul_(5)
    source = torch.randint(3, 50, (4, 9))
    mask = torch.ones_like(source)
    mask[1, 5:] = mask[3, 2:] = 0
    steps = []
    model.decoder.register_forward_hook(lambda module, inputs, outputs: steps.append(inputs[0].shape[0]))
    for beams in (1, 4):
        outputs = {}
        for use_cache in (True, False):
            steps.clear()
            outputs[use_cache] = model.generate(input_ids=source, attention_mask=mask, num_beams=beams,
                                                max_new_tokens=12, min_new_tokens=12, use_cache=use_cache)
            assert len(steps) == (12 if use_cache else 12 * 13 // 2)  # decoder steps: one per token, or the prefix
        assert outputs[True].shape == (4, 13) and torch.equal(outputs[True], outputs[False])


def test_lstm_encoder_decoder_starts_from_luongs_uniform_initialisation():
    """Every parameter uniform in [-0.1, 0.1] (Luong et al. 2015, Section 4.1), the padding embedding zero."""
    from comparison import lstm_baseline

    torch.manual_seed(0)
    model = lstm_baseline.LSTMForConditionalGeneration(lstm_baseline.LSTMConfig(vocab_size=500, hidden_size=64))
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.1, name
        assert abs(parameter.std().item() - 0.2 / 12 ** 0.5) < 0.01, name  # a uniform's spread, biases too
    assert torch.count_nonzero(model.get_input_embeddings().weight[model.config.pad_token_id]) == 0


def test_learning_rate_sweep_picks_each_models_best_rate_for_its_main_runs(tmp_path):
    data = sst2(tmp_path / "data")
    card = tmp_path / "model_card.md"
    argv = ["--task", "sst2", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--baselines", "ours",
            "lstm", "--results-dir", str(tmp_path / "results"), "--model-card", str(card), "--figures-dir",
            str(tmp_path / "figures"), "--in-process", "--learning_rates", "1e-4", "3e-2",
            "--sweep_args=--max_steps 3", "--", *tiny_train_arguments("--max-steps", "1")]
    assert compare.main(argv) == 0

    sweep = tmp_path / "results" / "lr-sweep" / "sst2"
    for model in ("ours", "lstm"):
        scores = {}
        for rate in (1e-4, 3e-2):
            result = json.loads((sweep / f"{model}-lr{rate:g}.json").read_text())
            assert result["arguments"]["learning_rate"] == rate and result["steps"] == 3  # the sweep's own budget
            scores[rate] = result["evaluation"]["dev"]["accuracy"]
        best = min(scores, key=lambda rate: (-scores[rate], rate))
        main_run = json.loads((tmp_path / "results" / "sst2" / f"{model}-seed0.json").read_text())
        assert main_run["arguments"]["learning_rate"] == best and main_run["steps"] == 1
    # the main runs' predictions are kept for the paired tests; the sweep's short runs need none
    assert list((tmp_path / "results" / "sst2").glob("*predictions*")) and not list(sweep.glob("*.txt"))
    text = card.read_text(encoding="utf-8")
    assert "Learning-rate sweep" in text and text.count("**") == 2 * 2  # one bold (chosen) cell per model


def test_the_next_learning_rate_is_tried_only_when_the_largest_wins_and_a_failed_run_loses(tmp_path, monkeypatch):
    """The rule of the comparison's protocol: {3e-4, 1e-3, 2e-3}, and 5e-3 only if 2e-3 scores best."""
    def fake_training(score_of_rate):
        def train_and_collect(name, output, train_argv, results_dir, in_process, with_predictions=True):
            rate = float(train_argv[train_argv.index("--learning_rate") + 1])
            if score_of_rate(rate) is None:
                return False  # a diverged run
            result = {"task": "sst2", "baseline": "ours", "commit": "0" * 40, "arguments": {"learning_rate": rate},
                      "evaluation": {"dev": {"accuracy": score_of_rate(rate)}}}
            (results_dir / f"{name}.json").write_text(json.dumps(result))
            return True
        return train_and_collect

    def sweep(score_of_rate, folder):
        monkeypatch.setattr(compare, "train_and_collect", fake_training(score_of_rate))
        argv = ["--task", "sst2", "--data", "unused", "--baselines", "ours", "--results-dir", str(tmp_path / folder),
                "--model-card", "", "--learning_rates", "3e-4", "1e-3", "2e-3", "--next_learning_rate", "5e-3",
                "--sweep_only"]
        assert compare.main(argv) == 0
        return sorted(p.stem for p in (tmp_path / folder / "lr-sweep" / "sst2").glob("*.json"))

    assert sweep(lambda rate: {3e-4: 70.0, 1e-3: 80.0, 2e-3: 75.0}[rate], "middle") == [
        "ours-lr0.0003", "ours-lr0.001", "ours-lr0.002"]
    assert sweep(lambda rate: rate * 1e4, "largest") == [
        "ours-lr0.0003", "ours-lr0.001", "ours-lr0.002", "ours-lr0.005"]
    best = comparison_report.best_learning_rate
    assert best(comparison_report.load_sweep(tmp_path / "largest")["sst2"]["ours"]) == 5e-3
    # 2e-3 diverges: it is recorded as failed, and the best finished rate is chosen
    sweep(lambda rate: None if rate == 2e-3 else rate * 1e4, "diverged")
    failed = json.loads((tmp_path / "diverged" / "lr-sweep" / "sst2" / "ours-lr0.002.json").read_text())
    assert failed["failed"] and "--learning_rate 0.002" in failed["command"]
    assert best(comparison_report.load_sweep(tmp_path / "diverged")["sst2"]["ours"]) == 1e-3


def test_a_sweep_is_decided_by_its_own_runs_not_by_an_earlier_sweeps_results(tmp_path, monkeypatch):
    """results_dir may hold an earlier sweep's runs (another commit): a better score there must neither skip
    this sweep's next rate nor be chosen."""
    trained = []

    def fake_training(scores):
        def train_and_collect(name, output, train_argv, results_dir, in_process, with_predictions=True):
            rate = float(train_argv[train_argv.index("--learning_rate") + 1])
            trained.append(rate)
            result = {"task": "sst2", "baseline": "ours", "commit": "1" * 40, "arguments": {"learning_rate": rate},
                      "evaluation": {"dev": {"accuracy": scores[rate]}}}
            (results_dir / f"{name}.json").write_text(json.dumps(result))
            return True
        return train_and_collect

    def sweep(scores):
        trained.clear()
        sweep_dir = tmp_path / "results" / "lr-sweep" / "sst2"
        sweep_dir.mkdir(parents=True, exist_ok=True)
        earlier = {"task": "sst2", "baseline": "ours", "commit": "0" * 40, "arguments": {"learning_rate": 5e-3},
                   "evaluation": {"dev": {"accuracy": 99.0}}}
        (sweep_dir / "ours-lr0.005.json").write_text(json.dumps(earlier))
        monkeypatch.setattr(compare, "train_and_collect", fake_training(scores))
        argv = ["--task", "sst2", "--data", "unused", "--baselines", "ours", "--results-dir", str(tmp_path / "results"),
                "--model-card", "", "--learning_rates", "3e-4", "1e-3", "2e-3", "--next_learning_rate", "5e-3",
                "--sweep_only"]
        assert compare.main(argv) == 0
        return comparison_report.best_learning_rate(comparison_report.load_sweep(tmp_path / "results")["sst2"]["ours"])

    # 2e-3 wins among the listed rates: 5e-3 is trained again, and its new score decides
    assert sweep({3e-4: 70.0, 1e-3: 81.2, 2e-3: 81.4, 5e-3: 80.0}) == 2e-3 and trained == [3e-4, 1e-3, 2e-3, 5e-3]
    # 1e-3 wins: 5e-3 is not part of this sweep, so the earlier run's 99.0 is removed rather than chosen
    assert sweep({3e-4: 70.0, 1e-3: 81.2, 2e-3: 75.0}) == 1e-3 and trained == [3e-4, 1e-3, 2e-3]
    assert not (tmp_path / "results" / "lr-sweep" / "sst2" / "ours-lr0.005.json").exists()


def test_a_run_stopped_part_way_continues_from_its_checkpoint(tmp_path):
    """compare.py after a kill: the unfinished run resumes (its first steps are not trained again)."""
    data = sst2(tmp_path / "data")
    def run(max_steps):
        argv = ["--task", "sst2", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--baselines", "ours",
                "--results-dir", str(tmp_path / "results"), "--model-card", "", "--in-process", "--",
                *tiny_train_arguments("--max_steps", str(max_steps), "--save_every", "1")]
        assert compare.main(argv) == 0
        return json.loads((tmp_path / "results" / "sst2" / "ours-seed0.json").read_text())

    first = run(1)
    (tmp_path / "runs" / "sst2" / "ours-seed0" / "results.json").unlink()  # as if killed after step 1's checkpoint
    resumed = run(2)
    assert resumed["steps"] == 2
    # step 1's log record (with its measured tokens/s) is the first run's own: step 1 was not trained again
    first_log, resumed_log = first["history"][0], resumed["history"][0]
    assert resumed_log["step"] == first_log["step"] == 1
    assert resumed_log["tokens_per_second"] == first_log["tokens_per_second"]


def test_an_ablation_is_trained_as_asked_and_tabled_apart_from_the_comparison(tmp_path):
    data = sst2(tmp_path / "data")
    card = tmp_path / "model_card.md"
    arguments = tiny_train_arguments("--max_steps", "1")
    overrides = arguments.index("--config_overrides") + 1
    arguments[overrides] += ",normalize_before=true"
    argv = ["--task", "sst2", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--baselines", "ours",
            "--results-dir", str(tmp_path / "results"), "--model-card", str(card), "--figures-dir",
            str(tmp_path / "figures"), "--in-process", "--ablation", "pre-ln", "--", *arguments]
    assert compare.main(argv) == 0

    result = json.loads((tmp_path / "results" / "ablations" / "sst2" / "ours-pre-ln-seed0.json").read_text())
    assert result["config"]["normalize_before"] is True  # the variant's model was trained
    assert not (tmp_path / "results" / "sst2").exists()  # the comparison's own table is untouched
    text = card.read_text(encoding="utf-8")
    assert "Ablations" in text and "| ours (Transformer encoder), pre-ln | 1 |" in text
    with pytest.raises(SystemExit):
        compare.main([*argv[: argv.index("--ablation") + 1], "pre ln/x", "--", *arguments])


def test_t5_drops_out_where_ours_does_and_not_inside_attention_or_the_feed_forward(tokenizer):
    """T5 uses one dropout rate everywhere; as a baseline it gets ours': on its residual branches (so training
    is still random) but not on the attention weights (ours' attention_dropout, 0) nor inside the FFN."""
    task = get_task("sst2")
    ours = build_model(task, tokenizer, COMPARISON_MODEL.replace("dropout=0.0", "dropout=0.3"))
    wrapper, _ = baselines.build_baseline("t5", ours, task, tokenizer, label_smoothing=0.0)
    wrapper.train()
    t5 = wrapper.model
    hidden = torch.randn(2, 5, t5.config.d_model)
    attention = t5.transformer.encoder.block[0].layer[0].SelfAttention
    feed_forward = t5.transformer.encoder.block[0].layer[1].DenseReluDense
    assert torch.equal(attention(hidden)[0], attention(hidden)[0])
    assert torch.equal(feed_forward(hidden), feed_forward(hidden))
    batch = seq2seq_batch(tokenizer)
    first, second = (wrapper(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                     for _ in range(2))
    assert not torch.equal(first, second)  # the residual dropout, at ours' rate


def test_collecting_a_finished_run_never_shows_a_half_written_results_file(tmp_path, monkeypatch):
    # Two compare.py processes share --results_dir; one reading the sweep while the other copies must see the
    # previous file or the whole new one, never a truncated one.
    run, results_dir = tmp_path / "run", tmp_path / "results"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"task": "sst2", "steps": 2}), encoding="utf-8")
    (run / "predictions_dev.txt").write_text("positive\n", encoding="utf-8")
    results_dir.mkdir()
    (results_dir / "ours-seed0.json").write_text(json.dumps({"task": "sst2", "steps": 1}), encoding="utf-8")
    copy = compare.shutil.copy
    seen = []

    def copy_and_look(source, target):
        copy(source, target)
        seen.append(json.loads((results_dir / "ours-seed0.json").read_text(encoding="utf-8"))["steps"])

    monkeypatch.setattr(compare.shutil, "copy", copy_and_look)
    assert compare.train_and_collect("ours-seed0", run, [], results_dir, in_process=True)
    assert seen[0] == 1  # while copying, the old file is still whole
    assert json.loads((results_dir / "ours-seed0.json").read_text(encoding="utf-8"))["steps"] == 2
    assert (results_dir / "ours-seed0.predictions_dev.txt").read_text(encoding="utf-8") == "positive\n"
    assert sorted(p.name for p in results_dir.iterdir()) == ["ours-seed0.json", "ours-seed0.predictions_dev.txt"]
