"""Beam search leaving the encoder-decoder attention cache unreordered gives transformers' own result."""

import torch

from conftest import random_tokens, tiny_seq2seq
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration


def generate(model, input_ids, num_beams):
    with torch.no_grad():
        return model.generate(input_ids, attention_mask=torch.ones_like(input_ids), num_beams=num_beams,
                              num_return_sequences=num_beams, min_new_tokens=12, max_new_tokens=12,
                              do_sample=False, output_scores=True, return_dict_in_generate=True)


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
