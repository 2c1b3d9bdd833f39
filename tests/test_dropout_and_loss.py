"""The two training-time speed-ups on a CPU do what the straightforward code does: `Dropout` (16-bit random
numbers instead of one random float per element) and `LabelSmoothedCrossEntropy` (the gradient written into
the saved log-probabilities)."""

import pytest
import torch

from vanilla_transformer.modeling.modeling_vanilla_transformer import Dropout, label_smoothed_cross_entropy


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_label_smoothed_loss_and_its_gradient_equal_torch_cross_entropy(dtype, label_smoothing):
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 6, 50)).to(dtype).requires_grad_()
    labels = torch.randint(0, 50, (3, 6))
    labels[0, 2:] = -100
    labels[2, :] = -100  # a sequence with no label at all

    loss = label_smoothed_cross_entropy(logits, labels, label_smoothing, num_items_in_batch=torch.tensor(17))
    (grad,) = torch.autograd.grad(loss, logits)
    reference = torch.nn.functional.cross_entropy(
        logits.float().view(-1, 50), labels.view(-1), reduction="sum", label_smoothing=label_smoothing
    ) / 17
    (reference_grad,) = torch.autograd.grad(reference, logits)

    torch.testing.assert_close(loss, reference)
    assert grad.dtype == dtype
    tight = {"rtol": 1e-5, "atol": 1e-8} if dtype == torch.float32 else {}
    torch.testing.assert_close(grad, reference_grad, **tight)
    assert torch.all(grad[2] == 0)  # no gradient where nothing is labelled
    # softmax and the smoothed target both sum to 1, so each labelled position's gradient sums to 0
    row_sum_tolerance = 1e-6 if dtype == torch.float32 else 1e-2  # bfloat16: each element rounded
    torch.testing.assert_close(grad.float().sum(-1), torch.zeros(3, 6), rtol=0, atol=row_sum_tolerance)


def test_label_smoothed_loss_refuses_a_second_backward_instead_of_giving_a_wrong_gradient():
    logits = torch.randn(4, 7, requires_grad=True)
    loss = label_smoothed_cross_entropy(logits, torch.tensor([1, 2, 3, 4]), 0.1)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace"):
        loss.backward()
