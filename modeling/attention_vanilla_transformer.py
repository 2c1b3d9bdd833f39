"""Local (windowed) attention computed in blocks, registered with transformers' attention interface.

Local attention restricts query position q to the keys k with |q - k| <= w (`config.attention_window`).
With any attention implementation the model applies it as a mask over the full L x L scores. Choosing
`attn_implementation="blocked_local"` computes it in O(L w) time and memory instead:

    model = VanillaTransformerForConditionalGeneration(config)          # config.attention_window = 64
    model.set_attn_implementation("blocked_local")                      # or from_pretrained(..., attn_implementation=...)

The registered function runs the blocked computation for the self-attention of a whole sequence (the model
passes it a `LocalWindowMask`); wherever the model passes an ordinary mask instead (encoder-decoder
attention, decoding step by step with a cache) it is PyTorch's fused kernel (SDPA) on that mask.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

BLOCKED_LOCAL = "blocked_local"


def local_window(window: int, causal: bool) -> Callable:
    """Local (hard) attention: query position q may attend to key position k only if |q - k| <= window.

    Used as a mask function of `transformers.masking_utils`, intersected with the padding (and causal) mask.
    """

    def within_window(batch_idx, head_idx, q_idx, kv_idx):
        if causal:  # the causal mask already removes k > q
            return q_idx - kv_idx <= window
        return (q_idx - kv_idx).abs() <= window

    return within_window


@dataclass(frozen=True)
class LocalWindowMask:
    """Passed instead of a (T, S) mask to the blocked computation: the window, the direction, and which keys
    are real tokens."""

    window: int
    causal: bool
    key_padding: torch.Tensor | None  # (B, S) bool or 0/1, True = a real token; None = no padding


def local_window_mask(config, attention_mask, causal: bool, output_attentions: bool, cached: bool):
    """A `LocalWindowMask` where the blocked computation applies (the "blocked_local" implementation, a window,
    the whole sequence at once: no cache, no attention weights asked for), else None (build an ordinary mask)."""
    if config._attn_implementation != BLOCKED_LOCAL or config.attention_window is None:
        return None
    if output_attentions or cached or (attention_mask is not None and attention_mask.dim() != 2):
        return None
    return LocalWindowMask(config.attention_window, causal, attention_mask)


def blocked_local_attention(
    module: nn.Module,
    query: torch.Tensor,  # (B, H, L, Dh)
    key: torch.Tensor,  # (B, H, L, Dh)
    value: torch.Tensor,  # (B, H, L, Dh)
    mask: LocalWindowMask,
    scaling: float,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, None]:
    """Attention under the local mask |q - k| <= w, in O(L w) time and memory instead of O(L^2).

    The positions are cut into blocks of w. Every key within distance w of a query of block i lies in block
    i - 1, i or i + 1 (only i - 1 and i when causal), so each block of queries is scored against those
    2-3 blocks of keys alone, then masked exactly as `local_window` masks the full matrix.
    """
    batch, heads, length, head_dim = query.shape
    block = max(mask.window, 1)
    num_blocks = -(-length // block)
    tail = num_blocks * block - length  # pad the length to whole blocks
    after = 0 if mask.causal else 1  # key blocks after the query's own
    span = 2 + after  # key blocks per query block

    def neighbourhoods(x: torch.Tensor) -> torch.Tensor:  # (B, H, L, Dh) -> (B * blocks, H, span * w, Dh)
        # The sequences of the batch, each padded to whole blocks, laid end to end with one empty block
        # before and after: the neighbourhood of every block is then a window of this one tensor, and the
        # overlapping windows are a view (`unfold`), not span copies of K and V kept for the backward pass.
        # Keys that a window borrows from the next or previous sequence are hidden by the mask below.
        x = nn.functional.pad(x.transpose(1, 2), (0, 0, 0, 0, 0, tail))  # (B, blocks * w, H, Dh)
        x = nn.functional.pad(x.reshape(batch * num_blocks * block, heads, head_dim),
                              (0, 0, 0, 0, block, after * block))
        return x.unfold(0, span * block, block).transpose(2, 3)  # (B * blocks, H, span * w, Dh)

    def by_block(x: torch.Tensor) -> torch.Tensor:  # (B, H, blocks, n, Dh) -> (B * blocks, H, n, Dh)
        return x.transpose(1, 2).reshape(batch * num_blocks, heads, x.shape[3], head_dim)

    queries = nn.functional.pad(query, (0, 0, 0, tail)).view(batch, heads, num_blocks, block, head_dim)

    # Query r of block i is position i*w + r; key c of its neighbourhood is position (i-1)*w + c.
    offset = block + torch.arange(block, device=query.device)[:, None] - torch.arange(span * block, device=query.device)
    in_window = (offset >= 0) & (offset <= mask.window) if mask.causal else offset.abs() <= mask.window
    real = torch.ones(batch, length, device=query.device) if mask.key_padding is None else mask.key_padding.float()
    real = nn.functional.pad(real, (block, tail + after * block)).view(batch, num_blocks + span - 1, block)
    real = torch.cat([real[:, i : i + num_blocks] for i in range(span)], dim=2).bool()  # (B, blocks, span*w)
    visible = in_window & real[:, :, None, :]  # (B, blocks, w, span*w)
    sees_something = visible.any(dim=-1, keepdim=True)  # (B, blocks, w, 1)

    # The fused kernel keeps no (w, span*w) weights for the backward pass, so memory stays O(L * d).
    # A query that sees no key (deep in the padding) is let see itself, and its output is then zeroed:
    # it attends to nothing, as in the written-out attention.
    self_position = offset == 0
    output = nn.functional.scaled_dot_product_attention(
        by_block(queries), neighbourhoods(key), neighbourhoods(value),
        attn_mask=(visible | (self_position & ~sees_something)).view(batch * num_blocks, 1, block, span * block),
        dropout_p=dropout if module.training else 0.0, scale=scaling,
    )  # (B * blocks, H, w, Dh)
    output = output * sees_something.view(batch * num_blocks, 1, block, 1).to(output.dtype)
    output = output.view(batch, num_blocks, heads, block, head_dim).transpose(2, 3)  # (B, blocks, w, H, Dh)
    return output.reshape(batch, num_blocks * block, heads, head_dim)[:, :length].contiguous(), None


def blocked_local_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """The "blocked_local" attention implementation: blocks under a `LocalWindowMask`, else SDPA."""
    if isinstance(attention_mask, LocalWindowMask):
        return blocked_local_attention(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout)
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


AttentionInterface.register(BLOCKED_LOCAL, blocked_local_attention_forward)
AttentionMaskInterface.register(BLOCKED_LOCAL, sdpa_mask)  # the ordinary masks are SDPA's

__all__ = ["BLOCKED_LOCAL", "LocalWindowMask", "blocked_local_attention", "local_window", "local_window_mask"]
