"""The model behaves as the paper's Transformer must: a specification, one property per test."""

import pytest
import torch

from conftest import VOCAB, padded_batch, random_tokens, tiny_classifier, tiny_config, tiny_seq2seq
from vanilla_transformer.configuration import VanillaTransformerConfig
from vanilla_transformer.modeling import (
    VanillaTransformerForConditionalGeneration,
    VanillaTransformerForSequenceClassification,
)

ATTENTION_IMPLEMENTATIONS = ["eager", "sdpa"]


@pytest.mark.parametrize("attn_implementation", ATTENTION_IMPLEMENTATIONS)
@pytest.mark.parametrize("window", [None, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoder_is_causal(attn_implementation, window, dtype):
    """Changing target tokens after position t leaves the logits at positions <= t unchanged."""
    model = tiny_seq2seq(attn_implementation, attention_window=window).to(dtype)
    input_ids, attention_mask, targets = padded_batch()
    changed = targets.clone()
    changed[:, 3:] = random_tokens(2, 2, seed=9)
    with torch.no_grad():
        logits = model(input_ids, attention_mask, decoder_input_ids=targets).logits
        logits_changed = model(input_ids, attention_mask, decoder_input_ids=changed).logits
    torch.testing.assert_close(logits[:, :3], logits_changed[:, :3])
    assert not torch.allclose(logits[:, 3:], logits_changed[:, 3:])


@pytest.mark.parametrize("attn_implementation", ATTENTION_IMPLEMENTATIONS)
@pytest.mark.parametrize("window", [None, 2])
def test_padding_does_not_change_outputs(attn_implementation, window):
    """A source padded inside a batch gives the same logits as the same source alone, unpadded."""
    model = tiny_seq2seq(attn_implementation, attention_window=window)
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        batched = model(input_ids, attention_mask, decoder_input_ids=targets).logits
        alone = model(input_ids[1:, :6], decoder_input_ids=targets[1:]).logits
        more_padding = model(
            torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], dim=1),
            torch.cat([attention_mask, torch.zeros(2, 5, dtype=torch.long)], dim=1),
            decoder_input_ids=targets,
        ).logits
    torch.testing.assert_close(batched[1:], alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched, more_padding, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("window", [None, 1])
@pytest.mark.parametrize("normalize_before", [False, True])
def test_eager_and_sdpa_give_the_same_outputs(window, normalize_before):
    eager = tiny_seq2seq("eager", attention_window=window, normalize_before=normalize_before)
    sdpa = tiny_seq2seq("sdpa", attention_window=window, normalize_before=normalize_before)
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        expected = eager(input_ids, attention_mask, decoder_input_ids=targets).logits
        actual = sdpa(input_ids, attention_mask, decoder_input_ids=targets).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)


def test_attention_weights_from_a_fused_implementation_fall_back_to_eager_with_one_warning():
    from transformers.testing_utils import CaptureLogger
    from vanilla_transformer.modeling import modeling_vanilla_transformer

    model = tiny_seq2seq("sdpa")
    input_ids, attention_mask, targets = padded_batch()
    modeling_vanilla_transformer.logger.warning_once.cache_clear()
    with CaptureLogger(modeling_vanilla_transformer.logger) as captured, torch.no_grad():
        for _ in range(2):
            out = model(input_ids, attention_mask, decoder_input_ids=targets, output_attentions=True)
    assert captured.out.count("cannot return attention weights") == 1
    assert out.encoder_attentions[0] is not None and model.config._attn_implementation == "sdpa"


def test_attention_weights_are_returned_and_are_distributions():
    """output_attentions works whatever the attention backend; every row is a probability distribution
    that puts no weight on padding."""
    model = tiny_seq2seq("sdpa")
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        out = model(input_ids, attention_mask, decoder_input_ids=targets, output_attentions=True)
        reference = model(input_ids, attention_mask, decoder_input_ids=targets).logits
    torch.testing.assert_close(out.logits, reference, rtol=1e-4, atol=1e-5)
    assert len(out.encoder_attentions) == 2 and out.encoder_attentions[0].shape == (2, 4, 9, 9)
    assert out.decoder_attentions[0].shape == (2, 4, 5, 5) and out.cross_attentions[0].shape == (2, 4, 5, 9)
    for weights in out.encoder_attentions + out.decoder_attentions + out.cross_attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
    for weights in out.encoder_attentions + out.cross_attentions:
        assert torch.all(weights[1, :, :, 6:] == 0)  # padded source positions get no attention
    assert torch.all(out.decoder_attentions[0].triu(diagonal=1) == 0)  # no attention to the future


@pytest.mark.parametrize("window", [0, 1, 3])
def test_local_attention_puts_zero_weight_outside_the_window(window):
    model = tiny_seq2seq("eager", attention_window=window)
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        out = model(input_ids, attention_mask, decoder_input_ids=targets, output_attentions=True)
    for weights, causal in [(w, False) for w in out.encoder_attentions] + [(w, True) for w in out.decoder_attentions]:
        length = weights.shape[-1]
        distance = torch.arange(length)[:, None] - torch.arange(length)[None, :]  # q - k
        allowed = (distance >= 0) & (distance <= window) if causal else distance.abs() <= window
        assert torch.all(weights[..., ~allowed] == 0)
        assert torch.all(weights[0][..., allowed] > 0)  # the unpadded example uses every allowed position


def test_local_attention_with_a_window_covering_everything_is_global_attention():
    global_model = tiny_seq2seq("eager")
    local_model = tiny_seq2seq("eager", attention_window=64)
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        expected = global_model(input_ids, attention_mask, decoder_input_ids=targets).logits
        actual = local_model(input_ids, attention_mask, decoder_input_ids=targets).logits
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("window", [None, 2])
def test_cached_and_uncached_generation_agree(window):
    model = tiny_seq2seq("sdpa", attention_window=window, decoder_layers=3)  # encoder and decoder depths differ
    input_ids, attention_mask, _ = padded_batch()
    kwargs = dict(attention_mask=attention_mask, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    cached = model.generate(input_ids, use_cache=True, return_dict_in_generate=True, output_scores=True, **kwargs)
    uncached = model.generate(input_ids, use_cache=False, return_dict_in_generate=True, output_scores=True, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(torch.stack(cached.scores), torch.stack(uncached.scores), rtol=1e-4, atol=1e-4)


def test_greedy_generation_follows_the_argmax_of_the_forward_pass():
    model = tiny_seq2seq("eager")
    input_ids, attention_mask, _ = padded_batch()
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=6, min_new_tokens=6)
    assert torch.all(generated[:, 0] == model.config.decoder_start_token_id)
    with torch.no_grad():
        logits = model(input_ids, attention_mask, decoder_input_ids=generated[:, :-1]).logits
    assert torch.equal(logits.argmax(-1), generated[:, 1:])


def test_beam_search_and_sampling_run():
    model = tiny_seq2seq("sdpa")
    input_ids, attention_mask, _ = padded_batch()
    beams = model.generate(input_ids, attention_mask=attention_mask, num_beams=4, num_return_sequences=2,
                           max_new_tokens=8, return_dict_in_generate=True, output_scores=True)
    assert beams.sequences.shape[0] == 4 and beams.sequences.shape[1] <= 9
    assert torch.all(beams.sequences_scores[0::2] >= beams.sequences_scores[1::2])  # best beam first
    torch.manual_seed(0)
    sampled = model.generate(input_ids, attention_mask=attention_mask, do_sample=True, top_k=20, max_new_tokens=8)
    torch.manual_seed(0)
    sampled_again = model.generate(input_ids, attention_mask=attention_mask, do_sample=True, top_k=20, max_new_tokens=8)
    assert torch.equal(sampled, sampled_again)
    assert sampled.min() >= 0 and sampled.max() < VOCAB


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": False}, {"positional_encoding": "learned"},
                                       {"normalize_before": True, "attention_window": 2},
                                       {"layernorm_embedding": True}])
def test_save_and_load_give_identical_logits(tmp_path, overrides):
    model = tiny_seq2seq("sdpa", **overrides)
    for name, parameter in model.named_parameters():  # trained-looking norms, so that a lost one would show
        if "layernorm_embedding" in name:
            torch.nn.init.normal_(parameter, mean=1.0 if name.endswith("weight") else 0.0, std=0.5)
    input_ids, attention_mask, targets = padded_batch()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(input_ids, attention_mask, decoder_input_ids=targets).logits
        actual = loaded(input_ids, attention_mask, decoder_input_ids=targets).logits
    assert torch.equal(actual, expected)
    tied = loaded.lm_head.weight is loaded.model.encoder.embed_tokens.weight
    assert tied == loaded.config.tie_word_embeddings


def test_classifier_save_and_load_give_identical_logits(tmp_path):
    model = tiny_classifier(num_labels=3)
    input_ids, attention_mask, _ = padded_batch()
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(input_ids, attention_mask).logits, model(input_ids, attention_mask).logits)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_classifier_loss_is_smoothed_by_the_configs_label_smoothing(label_smoothing):
    """The classification head's cross-entropy uses config.label_smoothing (transformers' own loss has none)."""
    model = tiny_classifier(num_labels=3, label_smoothing=label_smoothing)
    input_ids, attention_mask, _ = padded_batch()
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        output = model(input_ids, attention_mask, labels=labels)
    expected = torch.nn.functional.cross_entropy(output.logits.float(), labels, label_smoothing=label_smoothing)
    assert torch.allclose(output.loss, expected, atol=1e-6)
    multi_label = tiny_classifier(num_labels=3, label_smoothing=label_smoothing,
                                  problem_type="multi_label_classification")
    with torch.no_grad():  # other problem types keep transformers' loss (binary cross-entropy here)
        targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        output = multi_label(input_ids, attention_mask, labels=targets)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(output.logits, targets)
    assert torch.allclose(output.loss, expected, atol=1e-6)


def test_bfloat16_loading(tmp_path):
    tiny_seq2seq().save_pretrained(tmp_path)
    model = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    input_ids, attention_mask, _ = padded_batch()
    generated = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=4)
    assert generated.shape == (2, 5)


def test_a_tiny_model_overfits_a_tiny_batch():
    model = tiny_seq2seq("sdpa").train()
    input_ids, attention_mask, targets = padded_batch()
    labels = torch.cat([targets, torch.full((2, 1), model.config.eos_token_id)], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98), eps=1e-9)
    for _ in range(150):
        loss = model(input_ids, attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    generated = model.eval().generate(input_ids, attention_mask=attention_mask, max_new_tokens=10)
    assert torch.equal(generated[:, 1:], labels)  # reproduces the targets and stops at </s>


def test_labels_of_minus_100_are_ignored_and_label_smoothing_follows_the_paper():
    model = tiny_seq2seq()
    input_ids, attention_mask, targets = padded_batch()
    labels = targets.clone()
    labels[1, 3:] = -100
    with torch.no_grad():
        out = model(input_ids, attention_mask, labels=labels)
        log_probs = out.logits.log_softmax(-1)
        kept = labels != -100
        nll = -log_probs[kept].gather(-1, labels[kept].unsqueeze(-1)).mean()
        torch.testing.assert_close(out.loss, nll)
        model.config.label_smoothing = 0.1
        smoothed = model(input_ids, attention_mask, labels=labels).loss
    # epsilon_ls spreads 0.1 of the target mass uniformly over the vocabulary
    uniform = -log_probs[kept].mean(-1).mean()
    torch.testing.assert_close(smoothed, 0.9 * nll + 0.1 * uniform)


def test_gradient_checkpointing_gives_the_same_gradients():
    input_ids, attention_mask, targets = padded_batch()

    def gradients(checkpointing):
        model = tiny_seq2seq("sdpa").train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model(input_ids, attention_mask, labels=targets).loss.backward()
        return {name: p.grad for name, p in model.named_parameters()}

    plain, checkpointed = gradients(False), gradients(True)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_resize_token_embeddings_keeps_the_weights_tied():
    model = tiny_seq2seq()
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(VOCAB + 8)
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == VOCAB + 8 and model.config.vocab_size == VOCAB + 8
    assert model.lm_head.weight is embeddings and model.model.decoder.embed_tokens.weight is embeddings
    assert torch.equal(embeddings[:VOCAB], old)
    input_ids, attention_mask, targets = padded_batch()
    assert model(input_ids, attention_mask, decoder_input_ids=targets).logits.shape[-1] == VOCAB + 8


def test_every_classifier_parameter_gets_a_gradient():
    """Distributed data parallel fails on parameters that get no gradient: the classifier has none."""
    model = tiny_classifier().train()
    input_ids, attention_mask, _ = padded_batch()
    model(input_ids, attention_mask, labels=torch.tensor([0, 1])).loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_classifier_pooling_ignores_padding(pooling):
    model = tiny_classifier(classifier_pooling=pooling)
    input_ids, attention_mask, _ = padded_batch()
    with torch.no_grad():
        batched = model(input_ids, attention_mask).logits
        alone = model(input_ids[1:, :6]).logits
    torch.testing.assert_close(batched[1:], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "field, value",
    [
        ("d_model", 30),  # not divisible by 4 heads
        ("num_attention_heads", 0),
        ("vocab_size", -5),
        ("encoder_layers", 0),
        ("ffn_dim", 1.5),
        ("dropout", 1.0),
        ("attention_dropout", -0.1),
        ("word_dropout", 1.0),
        ("label_smoothing", 2.0),
        ("attention_window", -1),
        ("attention_window", 2.5),
        ("positional_encoding", "rotary"),
        ("activation_function", "not-an-activation"),
        ("classifier_pooling", "median"),
        ("pad_token_id", VOCAB),
        ("max_position_embeddings", 0),
    ],
)
def test_invalid_config_fields_raise_an_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        tiny_config(**{field: value})


def test_config_defaults_are_the_papers_base_model():
    config = VanillaTransformerConfig()
    assert (config.d_model, config.num_attention_heads, config.ffn_dim) == (512, 8, 2048)
    assert (config.encoder_layers, config.decoder_layers, config.dropout) == (6, 6, 0.1)
    assert config.activation_function == "relu" and config.positional_encoding == "sinusoidal"
    assert config.scale_embedding and config.tie_word_embeddings and not config.normalize_before
    assert config.attention_window is None


def test_over_long_inputs_raise_an_error_naming_the_length():
    model = tiny_seq2seq()
    with pytest.raises(ValueError, match=r"length 65.*max_position_embeddings=64"):
        model(random_tokens(1, 65), decoder_input_ids=random_tokens(1, 3))
    with pytest.raises(ValueError, match=r"decoder input has length 70"):
        model(random_tokens(1, 5), decoder_input_ids=random_tokens(1, 70))


@pytest.mark.parametrize("attn_implementation", ATTENTION_IMPLEMENTATIONS)
def test_no_nan_when_a_padded_position_sees_only_padding(attn_implementation):
    """Under local attention a padded query may have no key to attend to; nothing may become NaN."""
    model = tiny_seq2seq(attn_implementation, attention_window=1)
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        out = model(input_ids, attention_mask, decoder_input_ids=targets, output_hidden_states=True)
    assert all(torch.isfinite(h).all() for h in out.encoder_hidden_states + out.decoder_hidden_states)


# ---------------------------------------------------------------------------------------------------
# Inputs that do not fit together: an error naming them
# ---------------------------------------------------------------------------------------------------


def test_batch_sizes_that_differ_are_named():
    model = tiny_seq2seq()
    with pytest.raises(ValueError, match="batch sizes differ: input_ids has 1, labels has 2"):
        model(input_ids=random_tokens(1, 6), labels=random_tokens(2, 4))  # was a loss, the encoder broadcast
    with pytest.raises(ValueError, match="batch sizes differ: input_ids has 2, .*labels has 1"):
        model(input_ids=random_tokens(2, 6), attention_mask=torch.ones(2, 6, dtype=torch.long),
              labels=random_tokens(1, 4))
    with pytest.raises(ValueError, match="batch sizes differ: input_ids has 2, decoder_input_ids has 3"):
        model(input_ids=random_tokens(2, 6), decoder_input_ids=random_tokens(3, 4))
    with pytest.raises(ValueError, match="batch sizes differ: input_ids has 3, labels has 2"):
        tiny_classifier()(input_ids=random_tokens(3, 6), labels=torch.tensor([0, 1]))


def test_attention_mask_of_another_shape_is_named():
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\) but input_ids has \(2, 6\)"):
        tiny_seq2seq()(input_ids=random_tokens(2, 6), attention_mask=torch.ones(2, 5, dtype=torch.long),
                       labels=random_tokens(2, 4))  # an all-ones mask of the wrong shape was ignored


@pytest.mark.parametrize("name", ["input_ids", "decoder_input_ids", "labels"])
def test_an_id_outside_the_vocabulary_is_named_with_vocab_size(name):
    inputs = {"input_ids": random_tokens(2, 6), "decoder_input_ids": random_tokens(2, 4), "labels": random_tokens(2, 4)}
    inputs[name][1, 2] = VOCAB + 7
    with pytest.raises(ValueError, match=rf"{name} holds the id {VOCAB + 7}, outside \[0, vocab_size={VOCAB}\)"):
        tiny_seq2seq()(**inputs)
    labels = random_tokens(2, 4)
    labels[:, -1] = -100  # ignored positions are not ids
    assert tiny_seq2seq()(input_ids=random_tokens(2, 6), labels=labels).loss.isfinite()


def test_word_dropout_hides_whole_words_in_training_only():
    """word_dropout: in training some positions carry their positional encoding alone (the word's embedding is
    zeroed across all of d_model) and the others the plain sum; in evaluation every word is seen."""
    input_ids = random_tokens(4, 50)
    model = tiny_seq2seq("sdpa", word_dropout=0.5).train()
    encoder = model.model.encoder
    positions = encoder.embed_positions(torch.arange(50))
    full_sum = encoder.embed_tokens(input_ids) * encoder.embed_scale + positions

    def dropped_words(embedded):
        only_position = torch.isclose(embedded, positions.expand_as(embedded), atol=1e-6).all(-1)
        unchanged = torch.isclose(embedded, full_sum, atol=1e-6).all(-1)
        assert (only_position | unchanged).all()  # a word is dropped whole or kept whole
        return only_position.float().mean().item()

    with torch.no_grad():
        assert 0.35 < dropped_words(encoder.embed(input_ids, None, past_length=0)[1]) < 0.65
        model.eval()
        assert dropped_words(encoder.embed(input_ids, None, past_length=0)[1]) == 0.0


def test_layernorm_embedding_normalises_what_enters_the_first_layer():
    """layernorm_embedding=True: each position's embedding sum reaches layer 1 with mean 0 and variance 1 (the
    LayerNorm's initial weight and bias); off (the paper's), it is the plain scaled sum."""
    input_ids, attention_mask, _ = padded_batch()
    for enabled in (False, True):
        model = tiny_seq2seq("sdpa", layernorm_embedding=enabled).eval()
        _, embedded = model.model.encoder.embed(input_ids, None, past_length=0)
        mean, variance = embedded.mean(-1), embedded.var(-1, unbiased=False)
        normalised = torch.allclose(mean, torch.zeros_like(mean), atol=1e-5) and torch.allclose(
            variance, torch.ones_like(variance), atol=1e-3)
        assert normalised == enabled
        assert any("layernorm_embedding" in name for name, _ in model.named_parameters()) == enabled
