"""examples/source_dependence.py: mismatching sources changes the loss of a model that reads them, and
changes nothing for a model whose decoder cannot see the encoder."""

import json

import pytest
import torch
from tiny_datasets import multi30k, sst2, train_arguments

import source_dependence
import train
from common.data import DataSource, load_records
from common.tasks import get_task
from comparison.baselines import load_model
from transformers import AutoTokenizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("source_dependence")
    data = multi30k(folder / "data")
    assert train.main(train_arguments("multi30k-en-de", data, folder / "run", "--max-steps", "3")) == 0
    return data, folder / "run" / "model"


def test_pairs_each_target_with_the_next_source():
    data = {"input_ids": [[1], [2], [3]], "labels": [[7], [8], [9]]}
    assert source_dependence.mismatched(data) == {"input_ids": [[2], [3], [1]], "labels": [[7], [8], [9]]}


def test_reports_both_losses_of_a_model_that_reads_its_source(trained, capsys):
    data, model = trained
    assert source_dependence.main(["--model", str(model), "--task", "multi30k-en-de", "--data", str(data),
                                   "--split", "val"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 8
    assert report["difference"] == pytest.approx(report["mismatched_loss"] - report["matched_loss"])
    assert abs(report["difference"]) > 1e-4  # the encoder output reaches the loss


def test_no_difference_when_the_decoder_cannot_see_the_encoder(trained):
    data, folder = trained
    task = get_task("multi30k-en-de")
    model = load_model(folder, task)
    with torch.no_grad():
        for layer in model.model.decoder.layers:
            layer.encoder_attn.out_proj.weight.zero_()  # encoder-decoder attention now adds nothing
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    report = source_dependence.source_dependence(model, tokenizer, task, load_records(task, DataSource(str(data)), "val"),
                                                 max_tokens=8192, bf16=False)
    assert report["difference"] == pytest.approx(0.0, abs=1e-5)


def test_classification_task_is_a_clear_error(tmp_path, capsys):
    data = sst2(tmp_path / "data")
    assert source_dependence.main(["--model", str(tmp_path), "--task", "sst2", "--data", str(data),
                                   "--split", "dev"]) == 1
    assert "classification" in capsys.readouterr().err


def test_checkpoint_weights_replace_the_model_folders(trained, tmp_path, capsys):
    """--checkpoint: a training checkpoint whose encoder-decoder attention adds nothing gives no difference."""
    from safetensors.torch import save_file

    data, folder = trained
    model = load_model(folder, get_task("multi30k-en-de"))
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()
               if name != "lm_head.weight"}  # tied to the embeddings, not saved in a checkpoint
    for name in weights:
        if "encoder_attn.out_proj.weight" in name:
            weights[name].zero_()
    (tmp_path / "step-9").mkdir()
    save_file(weights, tmp_path / "step-9" / "model.safetensors")
    assert source_dependence.main(["--model", str(folder), "--checkpoint", str(tmp_path / "step-9"),
                                   "--task", "multi30k-en-de", "--data", str(data), "--split", "val"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == str(tmp_path / "step-9")
    assert report["difference"] == pytest.approx(0.0, abs=1e-5)


def test_attention_entropy_falls_to_zero_when_a_layers_attention_saturates(trained, capsys):
    """--attention_entropy: each encoder layer's entropy lies between 0 and uniform attention's; queries scaled
    up a thousandfold make that layer's softmax one-hot (entropy near 0) and leave the uniform figure alone."""
    data, folder = trained
    task = get_task("multi30k-en-de")
    assert source_dependence.main(["--model", str(folder), "--task", "multi30k-en-de", "--data", str(data),
                                   "--split", "val", "--attention_entropy"]) == 0
    report = json.loads(capsys.readouterr().out)
    model = load_model(folder, task)
    assert len(report["encoder_attention_entropy"]) == len(model.model.encoder.layers)
    assert all(0 < entropy <= report["uniform_attention_entropy"] + 1e-6
               for entropy in report["encoder_attention_entropy"])
    with torch.no_grad():
        model.model.encoder.layers[0].self_attn.q_proj.weight.mul_(1000)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    saturated = source_dependence.encoder_attention_entropy(model, tokenizer, task,
                                                            load_records(task, DataSource(str(data)), "val"))
    assert saturated["encoder_attention_entropy"][0] < 0.1 * report["encoder_attention_entropy"][0]
    assert saturated["uniform_attention_entropy"] == pytest.approx(report["uniform_attention_entropy"])


def test_attention_entropy_of_a_model_without_encoder_self_attention_is_a_clear_error(trained):
    from comparison import lstm_baseline
    from comparison.baselines import Seq2SeqWrapper

    data, folder = trained
    task = get_task("multi30k-en-de")
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    lstm = lstm_baseline.LSTMForConditionalGeneration(lstm_baseline.LSTMConfig(vocab_size=len(tokenizer), hidden_size=16))
    with pytest.raises(ValueError, match="LSTMForConditionalGeneration's encoder has no self-attention"):
        source_dependence.encoder_attention_entropy(Seq2SeqWrapper(lstm, "lstm", label_smoothing=0.1), tokenizer, task,
                                                    load_records(task, DataSource(str(data)), "val"))
