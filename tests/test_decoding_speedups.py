"""The two decoding speed-ups give the results of the straightforward code: `Linear`'s weight-first product
for few rows, and beam search leaving the encoder-decoder attention cache unreordered."""

import pytest
import torch
from torch import nn

from conftest import random_tokens, tiny_seq2seq
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration
from vanilla_transformer.modeling.modeling_vanilla_transformer import Linear


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("leading_shape", [(1,), (8, 1), (4, 8), (3, 11)])  # 1 to 33 rows: both paths
def test_linear_equals_nn_linear_values_and_gradients(bias, leading_shape):
    torch.manual_seed(0)
    layer = Linear(48, 80, bias=bias)
    x = torch.randn(*leading_shape, 48, requires_grad=True)
    y = layer(x)
    reference = nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(y, reference)
    assert y.shape == (*leading_shape, 80) and y.is_contiguous()

    upstream = torch.randn_like(y)
    gradients = torch.autograd.grad(y, [x, *layer.parameters()], upstream)
    reference_gradients = torch.autograd.grad(reference, [x, *layer.parameters()], upstream)
    for gradient, expected in zip(gradients, reference_gradients):
        torch.testing.assert_close(gradient, expected)


def test_linear_takes_the_weight_first_path_only_for_few_float32_rows(monkeypatch):
    def plain_linear(self, x):
        calls.append(x.numel() // self.in_features)
        return nn.functional.linear(x, self.weight, self.bias)

    calls = []
    monkeypatch.setattr(nn.Linear, "forward", plain_linear)
    layer = Linear(16, 16)
    layer(torch.randn(Linear.max_rows_weight_first, 16))
    layer(torch.randn(Linear.max_rows_weight_first + 1, 16))
    layer(torch.randn(2, 16))
    layer.to(torch.bfloat16)(torch.randn(2, 16, dtype=torch.bfloat16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer.float()(torch.randn(2, 16))
    assert calls == [Linear.max_rows_weight_first + 1, 2, 2]


def generate(model, input_ids, num_beams):
    with torch.no_grad():
        return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), num_beams=num_beams,
                              num_return_sequences=num_beams, min_new_tokens=12, max_new_tokens=12,
                              do_sample=False, output_scores=True, return_dict_in_generate=True)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generation_with_weight_first_linears_equals_plain_linears(num_beams, monkeypatch):
    model, input_ids = tiny_seq2seq(), random_tokens(3, 7)
    fast = generate(model, input_ids, num_beams)
    monkeypatch.setattr(Linear, "max_rows_weight_first", -1)  # every Linear through nn.Linear
    plain = generate(model, input_ids, num_beams)
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
