"""Two real processes on the CPU (gloo, world size 2, through accelerate.debug_launcher): gradients are
synchronised, parameters stay identical, and the training script computes the same losses and weights as one
process accumulating the same global batch; FSDP2 trains ours. debug_launcher uses a fixed port: these tests run
one at a time, and those that start no Accelerator in this process come first (the forked workers would inherit
its one-process state)."""

import json

import pytest
import torch
from accelerate import Accelerator, debug_launcher
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from tiny_datasets import multi30k, train_arguments

import train
from conftest import random_tokens, tiny_seq2seq


def check_gradients_are_synchronised(marker_dir):
    accelerator = Accelerator(cpu=True)
    # Without two real processes every check below would pass trivially.
    assert accelerator.num_processes == 2 and accelerator.distributed_type == DistributedType.MULTI_CPU
    model = tiny_seq2seq(seed=0).train()  # dropout is 0: the two ranks differ only by their data
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)
    rank = accelerator.process_index
    batch = {"input_ids": random_tokens(4, 7, seed=10 + rank), "labels": random_tokens(4, 5, seed=20 + rank)}

    with accelerator.no_sync(model):
        accelerator.backward(model(**batch).loss)
    local = torch.cat([p.grad.flatten() for p in model.parameters()])
    optimizer.zero_grad()
    accelerator.backward(model(**batch).loss)
    synced = torch.cat([p.grad.flatten() for p in model.parameters()])

    local_both, synced_both = accelerator.gather(local[None]), accelerator.gather(synced[None])
    assert not torch.allclose(local_both[0], local_both[1]), "the ranks saw the same data"
    assert torch.equal(synced_both[0], synced_both[1])
    torch.testing.assert_close(synced, local_both.mean(dim=0), rtol=1e-5, atol=1e-7)

    optimizer.step()
    parameters = accelerator.gather(torch.cat([p.detach().flatten() for p in model.parameters()])[None])
    assert torch.equal(parameters[0], parameters[1])
    (marker_dir / f"rank{rank}.checked").write_text("ok")


def test_two_processes_synchronise_gradients_and_parameters(tmp_path):
    debug_launcher(check_gradients_are_synchronised, args=(tmp_path,), num_processes=2)
    assert sorted(p.name for p in tmp_path.glob("*.checked")) == ["rank0.checked", "rank1.checked"]


def check_fsdp2_trains_ours_and_saves_a_loadable_folder(folder):
    """FSDP2 (`fully_shard`) on two CPU processes with gloo: each layer one unit, the root (the shared
    embedding, which is also the output projection) one more, as Accelerate's transformer-based wrapping does
    with `_no_split_modules`. The same batch on both ranks gives the step of one unsharded model."""
    import copy

    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForSeq2SeqLM

    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 2 and accelerator.distributed_type == DistributedType.MULTI_CPU
    mesh = init_device_mesh("cpu", (2,))
    model = tiny_seq2seq(seed=0).train()
    reference = copy.deepcopy(model)
    for layer in [*model.model.encoder.layers, *model.model.decoder.layers]:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    shared = model.model.encoder.embed_tokens.weight
    assert model.lm_head.weight is shared and model.model.decoder.embed_tokens.weight is shared
    assert shared.to_local().shape[0] < shared.shape[0], "the embedding is not sharded"

    batch = {"input_ids": random_tokens(4, 7, seed=10), "labels": random_tokens(4, 5, seed=20)}
    for net in (model, reference):
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        net(**batch).loss.backward()
        optimizer.step()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if accelerator.is_main_process:
        expected = reference.state_dict()
        for name, tensor in state.items():
            torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6)
        plain = tiny_seq2seq(seed=1)
        plain.load_state_dict(state, strict=False)  # tied copies are one tensor: the state names it once
        plain.save_pretrained(folder)
        reloaded = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        assert reloaded.lm_head.weight.data_ptr() == reloaded.model.encoder.embed_tokens.weight.data_ptr()
        torch.testing.assert_close(reloaded(**batch).logits, reference.eval()(**batch).logits)
        (folder / "checked").write_text("ok")
    accelerator.wait_for_everyone()


def test_fsdp2_on_two_cpu_processes_trains_and_saves_ours(tmp_path):
    debug_launcher(check_fsdp2_trains_ours_and_saves_a_loadable_folder, args=(tmp_path,), num_processes=2)
    assert (tmp_path / "checked").read_text() == "ok"


def run_training_script(argv):
    assert train.main(argv) == 0


@pytest.mark.parametrize("accumulation", [1])  # 2 hung under debug_launcher (fork); test_train_distributed.py
# checks accumulation 2 through the real launcher
def test_two_process_training_equals_one_process_with_the_same_global_batch(tmp_path, accumulation):
    data = multi30k(tmp_path / "data", count=80)
    common = ["--max-steps", "4", "--max-tokens", "100", "--save-every", "4"]
    two_processes = train_arguments("multi30k-en-de", data, tmp_path / "two", *common,
                                    "--gradient-accumulation-steps", str(accumulation))
    debug_launcher(run_training_script, args=(two_processes,), num_processes=2)
    assert train.main(train_arguments("multi30k-en-de", data, tmp_path / "one", *common,
                                      "--gradient-accumulation-steps", str(2 * accumulation))) == 0

    two, one = (json.loads((tmp_path / run / "results.json").read_text()) for run in ("two", "one"))
    assert two["hardware"]["processes"] == 2 and one["hardware"]["processes"] == 1
    losses = [[h["train_loss"] for h in run["history"] if "train_loss" in h] for run in (two, one)]
    assert len(losses[0]) == 4
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=0)
    weights = [load_file(tmp_path / run / "checkpoints" / "step-4" / "model.safetensors") for run in ("two", "one")]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-4, atol=1e-6)

