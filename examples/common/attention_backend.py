"""On NVIDIA GPUs PyTorch's scaled_dot_product_attention may pick cuDNN's attention, which builds an execution plan
for every new input shape. The scripts' batches change shape from step to step (length-grouped batches of every
size, and a key length that grows at each step of generation), so each step can pay for a new plan; the other
backends (flash, memory-efficient) prepare nothing per shape. examples/benchmark/attention_shapes.py measures it;
the figures are in performance.md."""

import torch


def avoid_per_shape_attention_plans() -> None:
    """Turn cuDNN's attention off for this process (a no-op on a CPU: the other backends are chosen as before)."""
    torch.backends.cuda.enable_cudnn_sdp(False)
