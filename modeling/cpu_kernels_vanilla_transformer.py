"""Opt-in speed-ups for training the model on a CPU, in pure PyTorch; the model computes the same function.

    from vanilla_transformer.modeling import enable_cpu_kernels
    enable_cpu_kernels(model)   # before training on a CPU; examples/train.py does this there

What it switches on, each measured by examples/benchmark/benchmark.py (ours with and without them, against
MarianMTModel, in one run):

- `CPUDropout` for every `nn.Dropout`: one 64-bit random draw decides four elements (read as four 16-bit
  numbers) where `nn.Dropout` draws one random number per element, the part of dropout that costs on a CPU.
- `label_smoothed_cross_entropy_in_place` as the seq2seq model's `loss_function`: the same loss as
  `nn.functional.cross_entropy(..., label_smoothing=eps)`, whose backward pass writes the gradient into the
  saved log-probabilities instead of allocating several (N, vocabulary) buffers.
- The "cpu_written_out" attention implementation: the written-out (eager) attention, whose matrix products
  run on the CPU's bfloat16 units, for bfloat16 on a CPU up to `WRITTEN_OUT_MAX_KEYS` keys; SDPA elsewhere.
  Switched on only where the model uses SDPA.

The state dict is unchanged, so a model trained with them saves, loads and runs without them. This file is
not part of the code exported to the Hub with a model.
"""

import torch
from torch import nn

from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .modeling_vanilla_transformer import VanillaTransformerForConditionalGeneration, eager_attention_forward

CPU_WRITTEN_OUT = "cpu_written_out"
WRITTEN_OUT_MAX_KEYS = 512  # beyond this the written-out L x L weights cost more than the bfloat16 units save


class CPUDropout(nn.Dropout):
    """Dropout with rate p: each element is zeroed with probability p, the kept ones scaled by 1 / (1 - p).

    On a CPU, one 64-bit draw of the global generator is read as four 16-bit numbers, and an element is
    dropped when its number falls in the lowest round(p * 2^16) of the 2^16 values: p is exact to 2^-16 and
    the scaling uses that rounded p, so the expected output equals the input. The masks follow
    `torch.manual_seed` as `nn.Dropout`'s do (but are different masks). Elsewhere (a GPU draws its random
    numbers inside the kernel) this is `nn.Dropout`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p in (0.0, 1.0) or x.device.type != "cpu":
            return super().forward(x)
        dropped_values = round(self.p * 2**16)  # of the 2^16 values a 16-bit number can take
        draws = torch.randint(-(2**63), 2**63 - 1, (-(-x.numel() // 4),), dtype=torch.int64, device=x.device)
        numbers = draws.view(torch.int16)[: x.numel()].view(x.shape)  # uniform on [-2^15, 2^15)
        kept = numbers >= -(2**15) + dropped_values
        return x * (kept.to(x.dtype) * (2**16 / (2**16 - dropped_values)))


class LabelSmoothedCrossEntropy(torch.autograd.Function):
    """Sum over labelled positions of (1 - eps) * -log p(label) + eps * mean over the vocabulary of -log p(v).

    Its gradient with respect to the logits is softmax - target, target being (1 - eps) on the label plus
    eps / V everywhere. The backward pass writes it into the saved log-probabilities in place, so the loss
    allocates one (N, V) float32 buffer in all, where `nn.functional.cross_entropy` allocates four (the
    log-probabilities, the gradient of the label term, the sum of both terms' gradients, the gradient of the
    log-softmax).
    """

    @staticmethod
    def forward(ctx, logits, labels, label_smoothing: float):  # (N, V), (N,)
        log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
        labelled = labels != -100
        labels = labels.masked_fill(~labelled, 0)
        label_nll = -log_probs.gather(1, labels[:, None]).squeeze(1)
        mean_nll = -log_probs.mean(dim=-1)
        per_position = (1 - label_smoothing) * label_nll + label_smoothing * mean_nll
        ctx.save_for_backward(log_probs, labels, labelled)
        ctx.label_smoothing, ctx.logits_dtype = label_smoothing, logits.dtype
        return (per_position * labelled).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total):
        log_probs, labels, labelled = ctx.saved_tensors
        eps = ctx.label_smoothing
        grad = log_probs.exp_()  # softmax; the log-probabilities are not needed again (a second backward fails)
        grad.sub_(eps / grad.shape[-1])
        grad.scatter_add_(1, labels[:, None], grad.new_full((grad.shape[0], 1), -(1 - eps)))
        grad.mul_((labelled * grad_total)[:, None])  # zero at ignored positions
        return grad.to(ctx.logits_dtype), None, None


def label_smoothed_cross_entropy_in_place(logits, labels, label_smoothing: float, num_items_in_batch=None,
                                          **kwargs) -> torch.Tensor:
    """`modeling_vanilla_transformer.label_smoothed_cross_entropy`, through `LabelSmoothedCrossEntropy`."""
    labels = labels.to(logits.device).reshape(-1)
    total = LabelSmoothedCrossEntropy.apply(logits.reshape(-1, logits.shape[-1]), labels, label_smoothing)
    if num_items_in_batch is None:
        num_items_in_batch = (labels != -100).sum()
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def cpu_written_out_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The "cpu_written_out" attention implementation: written out for bfloat16 on a CPU up to
    `WRITTEN_OUT_MAX_KEYS` keys, SDPA otherwise. Both are exact attention."""
    if query.device.type == "cpu" and query.dtype == torch.bfloat16 and key.shape[-2] <= WRITTEN_OUT_MAX_KEYS:
        return eager_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout)
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


AttentionInterface.register(CPU_WRITTEN_OUT, cpu_written_out_attention_forward)
AttentionMaskInterface.register(CPU_WRITTEN_OUT, sdpa_mask)  # both paths read SDPA's masks


KERNELS = ("dropout", "loss", "attention")


def enable_cpu_kernels(model: nn.Module, kernels=KERNELS) -> nn.Module:
    """Switch on the CPU speed-ups named in `kernels` (all by default) in `model`, in place; returns it."""
    unknown = set(kernels) - set(KERNELS)
    if unknown:
        raise ValueError(f"unknown CPU kernels {sorted(unknown)}; choose from {KERNELS}")
    if "dropout" in kernels:
        for name, module in list(model.named_modules()):
            if type(module) is nn.Dropout:
                model.set_submodule(name, CPUDropout(module.p, module.inplace))
    if "loss" in kernels and isinstance(model, VanillaTransformerForConditionalGeneration):
        model.loss_function = label_smoothed_cross_entropy_in_place
    if "attention" in kernels and getattr(model.config, "_attn_implementation", None) == "sdpa":
        model.set_attn_implementation(CPU_WRITTEN_OUT)
    return model


__all__ = ["CPUDropout", "enable_cpu_kernels", "label_smoothed_cross_entropy_in_place"]
