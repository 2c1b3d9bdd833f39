"""The opt-in CPU speed-ups (`enable_cpu_kernels`) compute what the model computes without them: `CPUDropout`
(16-bit random numbers instead of one random number per element) and the written-out attention in bfloat16;
the state dict stays the same. Also the model's label-smoothed loss, which the kernels once replaced."""

import pytest
import torch

from conftest import padded_batch, tiny_classifier, tiny_seq2seq
from vanilla_transformer.modeling import VanillaTransformerForConditionalGeneration, enable_cpu_kernels
from vanilla_transformer.modeling.cpu_kernels_vanilla_transformer import CPUDropout as Dropout
from vanilla_transformer.modeling.modeling_vanilla_transformer import label_smoothed_cross_entropy


def dropped_fraction(mask: torch.Tensor) -> float:
    return (mask == 0).float().mean().item()


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_dropout_drops_a_fraction_p_in_each_of_the_four_16_bit_lanes_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    n = 4 * 2**18
    out = Dropout(p).train()(torch.ones(n))
    kept_value = 2**16 / (2**16 - round(p * 2**16))
    assert torch.all((out == 0) | torch.isclose(out, torch.tensor(kept_value)))
    four_sigma = 4 * (p * (1 - p) / (n / 4)) ** 0.5
    for lane in range(4):  # element i is decided by 16-bit number i of the draws: each lane must be uniform
        assert abs(dropped_fraction(out[lane::4]) - p) < four_sigma, lane
    assert abs(out.mean().item() - 1.0) < 4 * (p / (1 - p) / n) ** 0.5  # E[dropout(x)] = x


def test_dropout_masks_follow_the_seed_and_differ_between_calls():
    dropout = Dropout(0.5).train()
    x = torch.ones(3, 5, 7)  # 105 elements: not a multiple of the 4 per random draw
    torch.manual_seed(1)
    first, second = dropout(x), dropout(x)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), first)
    assert not torch.equal(first, second)
    assert first.shape == x.shape


def test_dropout_gradient_is_the_mask_and_dtype_is_kept():
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.full((64, 33), 2.0, dtype=dtype, requires_grad=True)
        out = Dropout(0.25).train()(x)
        out.sum().backward()
        assert out.dtype == dtype and x.grad.dtype == dtype
        torch.testing.assert_close(x.grad, out.detach() / 2)  # d out / d x = mask / (1 - p)
        assert 0 < dropped_fraction(out) < 0.5


def test_dropout_is_the_identity_in_eval_mode_and_at_p_0_and_zero_at_p_1():
    x = torch.randn(10, 10)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_label_smoothed_loss_is_the_papers_mixture_summed_over_labels_and_divided_by_num_items(label_smoothing):
    """(1 - eps) * -log p(label) + eps * mean over the vocabulary of -log p(v), at labelled positions only."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 6, 50)).bfloat16()
    labels = torch.randint(0, 50, (3, 6))
    labels[0, 2:] = -100
    labels[2, :] = -100  # a sequence with no label at all
    loss = label_smoothed_cross_entropy(logits, labels, label_smoothing, num_items_in_batch=torch.tensor(17))
    log_probs = logits.float().log_softmax(-1)
    labelled = labels != -100
    per_position = -(1 - label_smoothing) * log_probs.gather(-1, labels.clamp(min=0)[..., None])[..., 0] \
        - label_smoothing * log_probs.mean(-1)
    torch.testing.assert_close(loss, per_position[labelled].sum() / 17)
    assert loss.dtype == torch.float32  # summed in float32 whatever the logits' dtype
    default = label_smoothed_cross_entropy(logits, labels, label_smoothing)  # divided by the labelled count
    torch.testing.assert_close(default, per_position[labelled].sum() / labelled.sum())


def loss_and_gradients(model, batch, bf16=False):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("bf16", [False, True])
def test_model_with_kernels_gives_the_loss_and_gradients_of_the_model_without(bf16):
    """Dropout 0 and training mode: the attention kernel must change nothing but rounding."""
    input_ids, attention_mask, labels = padded_batch()
    batch = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    reference = tiny_seq2seq(label_smoothing=0.1).train()
    fast = enable_cpu_kernels(tiny_seq2seq(label_smoothing=0.1).train())
    assert fast.config._attn_implementation == "cpu_written_out"  # what runs is what the config says
    expected_loss, expected = loss_and_gradients(reference, batch, bf16)
    loss, gradients = loss_and_gradients(fast, batch, bf16)
    tolerance = dict(rtol=2e-2, atol=2e-2) if bf16 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, expected_loss, **tolerance)
    assert gradients.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(gradients[name], expected[name], **tolerance, msg=name)


def test_kernels_leave_the_state_dict_and_the_saved_folder_as_they_were(tmp_path):
    model = tiny_seq2seq(dropout=0.1)
    before = model.state_dict()
    enable_cpu_kernels(model)
    assert sum(isinstance(module, Dropout) for module in model.modules()) > 0
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    model.save_pretrained(tmp_path)
    loaded = VanillaTransformerForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert loaded.config._attn_implementation == "sdpa"  # the kernels are not saved with the model
    assert not any(isinstance(module, Dropout) for module in loaded.modules())
    input_ids, attention_mask, targets = padded_batch()
    with torch.no_grad():
        expected = model.eval()(input_ids, attention_mask, decoder_input_ids=targets).logits
        torch.testing.assert_close(loaded(input_ids, attention_mask, decoder_input_ids=targets).logits, expected)


def test_kernels_keep_an_attention_implementation_chosen_by_the_user_and_switch_on_only_those_named():
    eager = enable_cpu_kernels(tiny_seq2seq("eager"))
    assert eager.config._attn_implementation == "eager"
    classifier = enable_cpu_kernels(tiny_classifier(dropout=0.1), kernels=("dropout",))
    assert classifier.config._attn_implementation == "sdpa"
    assert isinstance(classifier.dropout, Dropout)
    with pytest.raises(ValueError, match="unknown CPU kernels"):
        enable_cpu_kernels(tiny_seq2seq(), kernels=("onednn",))


@pytest.mark.parametrize("padded", [True, False])  # unpadded: the causal mask is left implicit
def test_written_out_attention_in_bfloat16_equals_the_fused_kernel(padded):
    input_ids, attention_mask, targets = padded_batch()
    if not padded:
        input_ids, attention_mask, targets = input_ids[1:, :6], attention_mask[1:, :6], targets[1:]

    def logits(model):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids, attention_mask, decoder_input_ids=targets).logits

    kernels, written_out, fused = logits(enable_cpu_kernels(tiny_seq2seq())), logits(tiny_seq2seq("eager")), \
        logits(tiny_seq2seq("sdpa"))
    assert torch.equal(kernels, written_out)
    torch.testing.assert_close(kernels, fused, rtol=2e-2, atol=5e-2)  # bfloat16 rounding, summed in another order
