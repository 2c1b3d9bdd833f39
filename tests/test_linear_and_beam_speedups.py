"""The speed-ups of `Linear` and of beam search give the results of the straightforward code: `Linear`'s
products through oneDNN on a CPU in float32 (values and gradients), with weights packed inside
`generate()`, and beam search leaving the encoder-decoder attention cache unreordered."""

import pytest
import torch
from torch import nn

from conftest import random_tokens, tiny_seq2seq
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration
from vanilla_transformer.modeling import modeling_vanilla_transformer
from vanilla_transformer.modeling.modeling_vanilla_transformer import Linear, packed_linear_weights

packed_path = pytest.mark.skipif(not modeling_vanilla_transformer.ONEDNN_LINEAR,
                                 reason="this PyTorch build has no oneDNN linear")


@pytest.fixture(autouse=True)
def onednn_for_tiny_layers(monkeypatch):
    """The tiny test layers are below `Linear.min_onednn_weight_elements`: take the oneDNN path anyway."""
    monkeypatch.setattr(Linear, "min_onednn_weight_elements", 0)


@packed_path
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("leading_shape", [(1,), (8, 1), (4, 8), (3, 11), (2, 0)])
def test_linear_with_packed_weight_equals_nn_linear(bias, leading_shape, monkeypatch):
    packings = count_packings(monkeypatch)
    torch.manual_seed(0)
    layer = Linear(48, 80, bias=bias)
    x = torch.randn(*leading_shape, 48)
    with torch.no_grad(), packed_linear_weights():
        unpacked, packed = layer(x), layer(x)  # the weight is packed at its second use
        reference = nn.functional.linear(x, layer.weight, layer.bias)
    assert len(packings) == 1
    for y in [unpacked, packed]:
        assert y.shape == (*leading_shape, 80) and y.dtype == torch.float32
        torch.testing.assert_close(y, reference)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("trainable", ["all", "input only", "layer only"])
def test_linear_training_equals_nn_linear_values_and_gradients(bias, trainable):
    torch.manual_seed(0)
    layer = Linear(48, 80, bias=bias).requires_grad_(trainable != "input only")
    x = torch.randn(4, 8, 48, requires_grad=trainable != "layer only")
    assert layer.uses_onednn(x) == modeling_vanilla_transformer.ONEDNN_LINEAR
    y = layer(x)
    reference = nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(y, reference)
    upstream = torch.randn_like(y)
    wanted = [t for t in [x, *layer.parameters()] if t.requires_grad]
    gradients = torch.autograd.grad(y, wanted, upstream)
    reference_gradients = torch.autograd.grad(reference, wanted, upstream)
    for gradient, expected in zip(gradients, reference_gradients, strict=True):
        torch.testing.assert_close(gradient, expected)


@packed_path
def test_linear_packs_weights_only_for_products_without_gradients(monkeypatch):
    packings = count_packings(monkeypatch)
    layer = Linear(16, 24)
    x = torch.randn(3, 16)
    with packed_linear_weights():
        for _ in range(3):
            layer(x).sum().backward()  # training inside the block: the weight may change, never packed
        assert packings == []
        layer.requires_grad_(False)
        for _ in range(3):
            layer(x.requires_grad_()).sum().backward()  # gradients for the input only: not packed either
        assert packings == []
        layer(x.detach())
        layer(x.detach())
    assert len(packings) == 1


def count_packings(monkeypatch) -> list:
    """The weights packed from now on, in order."""
    packings = []
    if not modeling_vanilla_transformer.ONEDNN_LINEAR:
        return packings
    pack = torch.ops.mkldnn._reorder_linear_weight
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight",
                        lambda weight, *args: packings.append(weight) or pack(weight, *args))
    return packings


@packed_path
def test_linear_packs_a_weight_at_its_second_use_in_a_block_and_only_inside_one(monkeypatch):
    packings = count_packings(monkeypatch)
    layer = Linear(16, 24)
    with torch.no_grad():
        layer(torch.randn(3, 16))
        assert packings == []
        with packed_linear_weights():
            layer(torch.randn(3, 16))
            assert packings == []
        for _ in range(2):
            with packed_linear_weights():
                for rows in [3, 5, 3]:
                    layer(torch.randn(rows, 16))
    assert [weight.data_ptr() for weight in packings] == [layer.weight.data_ptr()] * 2


@packed_path
def test_generate_sees_weights_updated_by_a_fused_optimizer_between_calls():
    """Fused optimizers update weights without advancing their version counter: packed copies kept from an
    earlier `generate()` call would go unnoticed stale."""
    model, input_ids = tiny_seq2seq(), random_tokens(3, 7)

    def greedy():
        return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=8,
                              do_sample=False, output_logits=True, return_dict_in_generate=True)

    before = greedy()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    model(input_ids, labels=random_tokens(3, 5, seed=1)).loss.backward()
    optimizer.step()
    after = greedy()
    assert not torch.equal(after.sequences, before.sequences)
    with torch.no_grad():  # the updated model, run outside generate(): no packed weights
        logits = model(input_ids, decoder_input_ids=after.sequences[:, :-1]).logits
    torch.testing.assert_close(torch.stack(after.logits, 1), logits)


def test_linear_uses_onednn_only_for_large_float32_weights_on_a_cpu_without_autocast(monkeypatch):
    layer = Linear(16, 16)
    x = torch.randn(2, 16)
    assert layer.uses_onednn(x) == modeling_vanilla_transformer.ONEDNN_LINEAR
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not layer.uses_onednn(x)
    layer.bfloat16()
    assert not layer.uses_onednn(x.bfloat16())
    assert torch.equal(layer(x.bfloat16()), nn.functional.linear(x.bfloat16(), layer.weight, layer.bias))
    layer.float()
    monkeypatch.setattr(Linear, "min_onednn_weight_elements", 16 * 16 + 1)  # weights smaller than that
    assert not layer.uses_onednn(x)
    assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))
    monkeypatch.setattr(Linear, "min_onednn_weight_elements", 16 * 16)
    assert layer.uses_onednn(x) == modeling_vanilla_transformer.ONEDNN_LINEAR
    traced = torch.jit.trace(layer, x)  # a traced graph keeps the portable product
    assert "mkldnn" not in str(traced.graph) and "linear" in str(traced.graph)
    monkeypatch.setattr(modeling_vanilla_transformer, "ONEDNN_LINEAR", False)
    assert not layer.uses_onednn(x)
    assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))


def generate(model, input_ids, num_beams):
    with torch.no_grad():
        return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), num_beams=num_beams,
                              num_return_sequences=num_beams, min_new_tokens=12, max_new_tokens=12,
                              do_sample=False, output_scores=True, return_dict_in_generate=True)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generation_with_packed_and_unpacked_onednn_linears_equals_nn_linear(num_beams, monkeypatch):
    packings = count_packings(monkeypatch)
    model, input_ids = tiny_seq2seq(), random_tokens(3, 7)
    packed = generate(model, input_ids, num_beams)
    # every decoder weight and the output projection, once (the tiny model has 2 decoder layers)
    assert len(packings) == (2 * 8 + 1 if modeling_vanilla_transformer.ONEDNN_LINEAR else 0)
    model.pack_weights_in_generate = False
    unpacked = generate(model, input_ids, num_beams)
    assert len(packings) == (17 if modeling_vanilla_transformer.ONEDNN_LINEAR else 0)
    monkeypatch.setattr(modeling_vanilla_transformer, "ONEDNN_LINEAR", False)  # every Linear is nn.Linear
    plain = generate(model, input_ids, num_beams)
    for fast in [packed, unpacked]:
        assert torch.equal(fast.sequences, plain.sequences)
        torch.testing.assert_close(torch.stack(fast.scores), torch.stack(plain.scores))


def test_beam_search_without_reordering_the_cross_attention_cache_equals_full_reordering(monkeypatch):
    model, input_ids = tiny_seq2seq(), random_tokens(3, 7)
    reorders = []
    original = VanillaTransformerForConditionalGeneration._reorder_cache

    def recording_reorder(self, past_key_values, beam_idx):
        reorders.append(beam_idx.clone())
        cross_before = [layer.keys for layer in past_key_values.cross_attention_cache.layers]
        result = original(self, past_key_values, beam_idx)
        assert all(layer.keys is before for layer, before in
                   zip(result.cross_attention_cache.layers, cross_before))  # left as it was
        return result

    monkeypatch.setattr(VanillaTransformerForConditionalGeneration, "_reorder_cache", recording_reorder)
    ours = generate(model, input_ids, num_beams=4)
    # Beam search did move beams around, so the self-attention cache had to follow them.
    assert any(not torch.equal(idx, torch.arange(len(idx))) for idx in reorders)

    # transformers' own path: without `_reorder_cache`, generate calls EncoderDecoderCache.reorder_cache,
    # which reorders the cross-attention cache too.
    monkeypatch.delattr(VanillaTransformerForConditionalGeneration, "_reorder_cache")
    full = generate(model, input_ids, num_beams=4)
    assert torch.equal(ours.sequences, full.sequences)
    torch.testing.assert_close(ours.sequences_scores, full.sequences_scores)
