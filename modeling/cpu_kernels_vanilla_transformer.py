"""Opt-in speed-ups for training the model on a CPU, in pure PyTorch; the model computes the same function.

    from vanilla_transformer.modeling import enable_cpu_kernels
    enable_cpu_kernels(model)   # before training on a CPU; examples/train.py does this there

What it switches on, each measured by examples/benchmark/benchmark.py (ours with and without them, against
MarianMTModel, in one run). Kept are the speed-ups that made a training step 1.1x faster or more; a
label-smoothed loss writing its gradient in place did not, and was removed (performance.md):

- `CPUDropout` for every `nn.Dropout`: one 64-bit random draw decides four elements (read as four 16-bit
  numbers) where `nn.Dropout` draws one random number per element, the part of dropout that costs on a CPU.
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

from .modeling_vanilla_transformer import eager_attention_forward

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


def cpu_written_out_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The "cpu_written_out" attention implementation: written out for bfloat16 on a CPU up to
    `WRITTEN_OUT_MAX_KEYS` keys, SDPA otherwise. Both are exact attention."""
    if query.device.type == "cpu" and query.dtype == torch.bfloat16 and key.shape[-2] <= WRITTEN_OUT_MAX_KEYS:
        return eager_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout)
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


AttentionInterface.register(CPU_WRITTEN_OUT, cpu_written_out_attention_forward)
AttentionMaskInterface.register(CPU_WRITTEN_OUT, sdpa_mask)  # both paths read SDPA's masks


KERNELS = ("dropout", "attention")


def enable_cpu_kernels(model: nn.Module, kernels=KERNELS) -> nn.Module:
    """Switch on the CPU speed-ups named in `kernels` (all by default) in `model`, in place; returns it."""
    unknown = set(kernels) - set(KERNELS)
    if unknown:
        raise ValueError(f"unknown CPU kernels {sorted(unknown)}; choose from {KERNELS}")
    if "dropout" in kernels:
        for name, module in list(model.named_modules()):
            if type(module) is nn.Dropout:
                model.set_submodule(name, CPUDropout(module.p, module.inplace))
    if "attention" in kernels and getattr(model.config, "_attn_implementation", None) == "sdpa":
        model.set_attn_implementation(CPU_WRITTEN_OUT)
    return model


__all__ = ["CPUDropout", "enable_cpu_kernels"]
