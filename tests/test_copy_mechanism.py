"""config.copy_mechanism: the pointer-generator mixed into the output distribution."""

import pytest
import torch

from conftest import VOCAB, random_tokens, tiny_seq2seq
from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration


def source_with_padding():
    source = random_tokens(2, 9, seed=1)
    mask = torch.ones_like(source)
    mask[1, 6:] = 0
    source[1, 6:] = VOCAB - 1  # a token that stands only where the mask hides it
    source[:, :6] = source[:, :6].clamp(max=VOCAB - 2)
    return source, mask


def forced_gate(model, bias: float):
    """p_gen = sigmoid(bias): about 1 (write from the vocabulary only) or about 0 (copy only)."""
    with torch.no_grad():
        model.copy_mechanism.gate.weight.zero_()
        model.copy_mechanism.gate.bias.fill_(bias)


def test_outputs_are_log_probabilities_that_sum_to_one():
    model = tiny_seq2seq(copy_mechanism=True)
    source, mask = source_with_padding()
    with torch.no_grad():
        log_probs = model(input_ids=source, attention_mask=mask, labels=random_tokens(2, 5, seed=2)).logits
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 5))


def test_copying_puts_all_mass_on_the_unmasked_source_tokens():
    model = tiny_seq2seq(copy_mechanism=True)
    forced_gate(model, -40.0)
    source, mask = source_with_padding()
    with torch.no_grad():
        probs = model(input_ids=source, attention_mask=mask, decoder_input_ids=random_tokens(2, 4, seed=3)).logits.exp()
    for row in range(2):
        visible = set(source[row][mask[row].bool()].tolist())
        outside = [token for token in range(VOCAB) if token not in visible]
        assert probs[row][:, outside].max() < 1e-6  # nothing on other tokens, the pad or the masked-out token
        torch.testing.assert_close(probs[row][:, sorted(visible)].sum(-1), torch.ones(4))


def test_writing_only_is_the_plain_softmax_of_the_linear_layer():
    model = tiny_seq2seq(copy_mechanism=True)
    forced_gate(model, 40.0)
    source, mask = source_with_padding()
    target = random_tokens(2, 4, seed=3)
    with torch.no_grad():
        log_probs = model(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits
        hidden = model.model(input_ids=source, attention_mask=mask, decoder_input_ids=target).last_hidden_state
        plain = model.lm_head(hidden).log_softmax(-1)
    torch.testing.assert_close(log_probs, plain, rtol=1e-4, atol=1e-4)


def test_generate_step_by_step_matches_the_full_forward_and_beam_search_runs():
    model = tiny_seq2seq(copy_mechanism=True)
    source, mask = source_with_padding()
    greedy = model.generate(input_ids=source, attention_mask=mask, max_new_tokens=6, do_sample=False,
                            output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        full = model(input_ids=source, attention_mask=mask, decoder_input_ids=greedy.sequences[:, :-1]).logits
    torch.testing.assert_close(torch.stack(greedy.logits, 1), full, rtol=1e-4, atol=1e-4)
    beams = model.generate(input_ids=source, attention_mask=mask, max_new_tokens=6, num_beams=3)
    assert beams.shape[0] == 2


def test_training_reduces_the_loss_and_the_gate_gets_gradients():
    model = tiny_seq2seq(copy_mechanism=True).train()
    source = random_tokens(8, 6, seed=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(input_ids=source, labels=source).loss
        optimizer.zero_grad()
        loss.backward()
        assert model.copy_mechanism.gate.weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_save_and_load_keep_the_copy_mechanism(tmp_path):
    model = tiny_seq2seq(copy_mechanism=True)
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config.copy_mechanism is True
    source, mask = source_with_padding()
    target = random_tokens(2, 4, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits,
                                   model(input_ids=source, attention_mask=mask, decoder_input_ids=target).logits)


def test_without_source_ids_or_with_a_wrong_value_the_error_names_the_field():
    model = tiny_seq2seq(copy_mechanism=True)
    source, _ = source_with_padding()
    embeds = model.get_input_embeddings()(source)
    with pytest.raises(ValueError, match="copy_mechanism=True needs the source token ids"):
        model(inputs_embeds=embeds, decoder_input_ids=source[:, :3])
    with pytest.raises(ValueError, match=r"VanillaTransformerConfig\.copy_mechanism='yes'"):
        VanillaTransformerConfig(copy_mechanism="yes")
