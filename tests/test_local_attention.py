"""Blocked local attention (linear in length) computes exactly what the full matrix with the local mask
computes: same outputs and gradients, with padding, causal or not, for windows small and large."""

import pytest
import torch

from conftest import padded_batch, tiny_seq2seq
from vanilla_transformer.modeling import attention_vanilla_transformer as attention_module
from vanilla_transformer.modeling.attention_vanilla_transformer import LocalWindowMask, blocked_local_attention
from vanilla_transformer.modeling.modeling_vanilla_transformer import eager_attention_forward


def full_local_mask(length, window, causal, key_padding):
    q = torch.arange(length)[:, None]
    k = torch.arange(length)[None, :]
    allowed = ((q - k >= 0) & (q - k <= window)) if causal else (q - k).abs() <= window
    return allowed[None, None] & key_padding.bool()[:, None, None, :]  # (B, 1, L, L)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window,length", [(0, 7), (1, 9), (3, 10), (4, 16), (5, 3), (64, 37)])
def test_blocked_equals_masked_full_attention(window, length, causal):
    generator = torch.Generator().manual_seed(length * 10 + window)
    q, k, v = (torch.randn(2, 3, length, 8, generator=generator, requires_grad=True) for _ in range(3))
    key_padding = torch.ones(2, length, dtype=torch.long)
    key_padding[1, length - max(1, length // 3):] = 0  # the second sequence ends in padding
    module = torch.nn.Module().eval()

    blocked, _ = blocked_local_attention(module, q, k, v, LocalWindowMask(window, causal, key_padding), scaling=0.3)
    full, _ = eager_attention_forward(module, q, k, v, full_local_mask(length, window, causal, key_padding), scaling=0.3)
    torch.testing.assert_close(blocked, full, rtol=1e-4, atol=1e-5)  # a fused kernel sums in another order

    grad_output = torch.randn(blocked.shape, generator=generator)
    blocked_grads = torch.autograd.grad(blocked, (q, k, v), grad_output)
    full_grads = torch.autograd.grad(full, (q, k, v), grad_output)
    for mine, reference in zip(blocked_grads, full_grads):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_model_with_blocked_local_attention_equals_the_full_mask_path(window):
    """attn_implementation="blocked_local" computes in blocks; output_attentions=True takes the full-matrix path."""
    model = tiny_seq2seq("blocked_local", attention_window=window)
    assert model.config._attn_implementation == "blocked_local"
    input_ids, attention_mask, labels = padded_batch()
    blocked = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    full = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
    real = attention_mask.bool()
    torch.testing.assert_close(blocked.encoder_last_hidden_state[real], full.encoder_last_hidden_state[real],
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocked.logits, full.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blocked.loss, full.loss)


def test_blocked_computation_runs_only_where_the_config_chooses_it(monkeypatch):
    """The implementation in config._attn_implementation is what runs: "sdpa" with a window masks the full
    matrix, "blocked_local" computes in blocks (and decodes with a cache on ordinary masks); same results."""
    calls = []
    original = attention_module.blocked_local_attention
    monkeypatch.setattr(attention_module, "blocked_local_attention",
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    input_ids, attention_mask, labels = padded_batch()
    outputs, generated = {}, {}
    for implementation in ("sdpa", "blocked_local"):
        model = tiny_seq2seq(implementation, attention_window=2)
        calls.clear()
        with torch.no_grad():
            outputs[implementation] = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
            generated[implementation] = model.generate(input_ids, attention_mask=attention_mask, num_beams=2,
                                                       max_new_tokens=6)
        # encoder and decoder self-attention of the forward pass; the generation's encoder pass
        assert len(calls) == (0 if implementation == "sdpa" else 2 * 2 + 2), implementation
    torch.testing.assert_close(outputs["sdpa"].logits, outputs["blocked_local"].logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(generated["sdpa"], generated["blocked_local"])


def saved_bytes(attention) -> int:
    """Bytes of the distinct storages that autograd keeps for the backward pass of `attention()`."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        attention()
    return sum(storages.values())


def test_blocked_local_attention_memory_grows_linearly():
    """A block's scores hold w x 3w entries, not L x L: checked through what autograd keeps."""
    sizes = {}
    for length in (256, 1024):
        q = torch.randn(1, 1, length, 8, requires_grad=True)
        mask = LocalWindowMask(8, False, None)
        sizes[length] = saved_bytes(lambda: blocked_local_attention(torch.nn.Module(), q, q, q, mask, scaling=1.0))
    assert sizes[1024] <= 4 * sizes[256] + 1024  # linear: 4x the length, about 4x the bytes
    assert sizes[1024] < 4 * 1024 * 1024 / 10  # far below one float32 L x L matrix


def test_blocked_local_attention_keeps_one_copy_of_keys_and_values():
    """The overlapping neighbourhoods are views: the backward pass keeps about what the fused global kernel
    keeps (Q, K, V, output), not three copies of K and V."""
    q, k, v = (torch.randn(2, 2, 1024, 16, requires_grad=True) for _ in range(3))
    mask = LocalWindowMask(16, False, torch.ones(2, 1024))
    local = saved_bytes(lambda: blocked_local_attention(torch.nn.Module(), q, k, v, mask, scaling=1.0))
    fused_global = saved_bytes(lambda: torch.nn.functional.scaled_dot_product_attention(q * 1, k * 1, v * 1))
    assert local <= 1.6 * fused_global, (local, fused_global)  # 1.4x (the block mask); span copies: 2.4x
