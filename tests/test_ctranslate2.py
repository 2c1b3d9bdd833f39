"""Export to CTranslate2: a tiny trained model translates token for token as generate() does (greedy and beam
4), the exported model scores targets as ours does for each architecture variant that converts, and what
CTranslate2 cannot represent is refused naming the config field."""

import json

import pytest
import torch
from tiny_datasets import TINY_MODEL, multi30k, train_arguments

import train
from conftest import tiny_classifier, tiny_seq2seq
from benchmark.benchmark_ctranslate2 import GENERATE_LIKE_BEAM_SEARCH
from vanilla_transformer.modeling import export_ctranslate2
from vanilla_transformer.modeling.export_ctranslate2_vanilla_transformer import (
    NotConvertible,
    main as ct2_main,
    translator_threads,
)

ctranslate2 = pytest.importorskip("ctranslate2")
TEXTS = ["The cat sleeps.", "The dog sleeps.", "The horse sleeps.", "The bird sleeps.", "The cow sleeps.", "A fish"]


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory):
    """A tiny model trained on the tiny Multi30k data until it translates it (about 10 s)."""
    root = tmp_path_factory.mktemp("ct2")
    data = multi30k(root / "data", count=80)
    argv = train_arguments("multi30k-en-de", data, root / "run", "--max_steps", "120", "--num_train_epochs", "100",
                           "--warmup_steps", "20", "--log_every", "20", "--save_every", "120")
    assert train.main(argv) == 0
    return root / "run" / "model"


def generate_ids(folder, texts, beams):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        generated = model.generate(**tokenizer(texts, return_tensors="pt", padding=True), num_beams=beams,
                                   length_penalty=1.0, max_new_tokens=20, do_sample=False)
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    return [[i for i in row.tolist()[1:] if i not in special] for row in generated]


def translate_ids(ct2_folder, tokenizer, texts, beams):
    translator = ctranslate2.Translator(str(ct2_folder), device="cpu", **translator_threads())
    sources = [tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) for text in texts]
    results = translator.translate_batch(sources, beam_size=beams, length_penalty=1.0, max_decoding_length=20,
                                         **GENERATE_LIKE_BEAM_SEARCH)
    return [tokenizer.convert_tokens_to_ids(result.hypotheses[0]) for result in results]


@pytest.mark.parametrize("beams", [1, 4])
def test_float32_translates_token_for_token_as_generate(trained_folder, tmp_path, beams):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained_folder)
    output = export_ctranslate2(trained_folder, tmp_path / "ct2")
    expected = generate_ids(trained_folder, TEXTS, beams)
    assert all(len(ids) >= 3 for ids in expected), "the tiny model did not learn to translate"
    assert translate_ids(output, tokenizer, TEXTS, beams) == expected
    assert tokenizer.decode(expected[0]).strip().startswith("Katze")


def test_int8_export_is_smaller_and_still_translates(trained_folder, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained_folder)
    float32, int8 = (export_ctranslate2(trained_folder, tmp_path / name, quantization=q)
                     for name, q in [("f32", None), ("i8", "int8")])
    assert (tmp_path / "i8" / "model.bin").stat().st_size < 0.5 * (tmp_path / "f32" / "model.bin").stat().st_size
    translations = [tokenizer.decode(ids) for ids in translate_ids(int8, tokenizer, TEXTS[:3], 4)]
    assert [t.split()[0] for t in translations] == ["Katze", "Hund", "Pferd"]


@pytest.mark.parametrize("variant", [{}, {"normalize_before": True}, {"positional_encoding": "learned"},
                                     {"layernorm_embedding": True}])
def test_exported_model_scores_targets_as_ours_does(variant, tokenizer, tmp_path):
    """Post-LN (the paper's), pre-LN, learned positions and a LayerNorm on the embeddings: CTranslate2's
    log-probabilities of a target equal ours, token by token."""
    model = tiny_seq2seq(seed=3, vocab_size=len(tokenizer), **variant)
    torch.nn.init.normal_(model.model.encoder.embed_tokens.weight, std=0.5)  # outputs far from uniform
    if variant.get("positional_encoding") == "learned":
        torch.nn.init.normal_(model.model.encoder.embed_positions.weight, std=0.5)
        torch.nn.init.normal_(model.model.decoder.embed_positions.weight, std=0.5)
    if variant.get("layernorm_embedding"):  # away from the identity LayerNorm, so that a missing one shows
        for stack in (model.model.encoder, model.model.decoder):
            torch.nn.init.normal_(stack.layernorm_embedding.weight, mean=1.0, std=0.5)
            torch.nn.init.normal_(stack.layernorm_embedding.bias, std=0.5)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    output = export_ctranslate2(tmp_path / "model", tmp_path / "ct2")

    source = tokenizer("The cat sat on the mat.")["input_ids"]
    target = tokenizer("Die Katze sass auf der Matte.")["input_ids"]  # ends with </s>
    translator = ctranslate2.Translator(str(output), device="cpu")
    scored = translator.score_batch([tokenizer.convert_ids_to_tokens(source)],
                                    [tokenizer.convert_ids_to_tokens(target)[:-1]])[0]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([source]), labels=torch.tensor([target])).logits
    ours = logits.log_softmax(-1)[0].gather(-1, torch.tensor(target)[:, None]).squeeze(-1)
    assert scored.tokens == tokenizer.convert_ids_to_tokens(target)
    torch.testing.assert_close(torch.tensor(scored.log_probs), ours, rtol=1e-4, atol=1e-4)


def test_local_attention_copying_and_classifiers_are_refused_naming_the_field(tokenizer, tmp_path, capsys):
    local = tiny_seq2seq(vocab_size=len(tokenizer), attention_window=4)
    local.save_pretrained(tmp_path / "local")
    tokenizer.save_pretrained(tmp_path / "local")
    with pytest.raises(NotConvertible, match=r"config\.attention_window=4: CTranslate2 has no local"):
        export_ctranslate2(tmp_path / "local", tmp_path / "out")
    copying = tiny_seq2seq(vocab_size=len(tokenizer), copy_mechanism=True)
    copying.save_pretrained(tmp_path / "copying")
    tokenizer.save_pretrained(tmp_path / "copying")
    with pytest.raises(NotConvertible, match=r"config\.copy_mechanism=True"):
        export_ctranslate2(tmp_path / "copying", tmp_path / "out")
    classifier = tiny_classifier(vocab_size=len(tokenizer))
    classifier.save_pretrained(tmp_path / "classifier")
    tokenizer.save_pretrained(tmp_path / "classifier")
    assert ct2_main([str(tmp_path / "classifier"), str(tmp_path / "out")]) == 1
    assert "config.architectures=['VanillaTransformerForSequenceClassification']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_script_writes_a_quantized_model(trained_folder, tmp_path):
    assert ct2_main([str(trained_folder), str(tmp_path / "ct2"), "--quantization", "int8"]) == 0
    config = json.loads((tmp_path / "ct2" / "config.json").read_text())
    assert config["decoder_start_token"] == "<s>" and config["eos_token"] == "</s>"


def test_translator_threads_put_one_thread_in_each_translation():
    assert translator_threads(2) == {"inter_threads": 2, "intra_threads": 1}
    assert translator_threads()["inter_threads"] >= 1


def test_benchmark_script_measures_every_engine_and_writes_its_table(trained_folder, tmp_path):
    from benchmark import benchmark_ctranslate2

    data = trained_folder.parent.parent / "data"
    output, report = tmp_path / "bench.json", tmp_path / "performance.md"
    report.write_text("# Performance\n\nkept text\n")
    assert benchmark_ctranslate2.main(["--model", str(trained_folder), "--dataset_name", str(data), "--sizes", "small",
                                       "--latency_records", "3", "--output", str(output), "--report", str(report)]) == 0
    results = json.loads(output.read_text())
    engines = results["sizes"]["small"]["engines"]
    assert {"ours, transformers, float32", "ours, transformers, bf16", "ours, CTranslate2, float32",
            "ours, CTranslate2, int8"} <= set(engines)
    float32 = engines["ours, CTranslate2, float32"]["beam 4"]
    assert float32["identical_to_transformers_float32"] == 1.0 and float32["tokens_per_second"] > 0
    text = report.read_text()
    assert text.startswith("# Performance\n\nkept text") and "| ours, CTranslate2, int8 |" in text
    assert benchmark_ctranslate2.report(results, str(output)) in text  # the table comes from the JSON alone
