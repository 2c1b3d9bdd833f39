"""Time of one attention call (forward + backward, SDPA) per SDPA backend, when every call has a new shape against
one shape repeated. train.py's length-grouped batches change the batch size and the lengths from step to step
(Multi30k: 109 distinct shapes among the 271 batches of an epoch), where benchmark.py repeats one shape; a
backend that prepares something per shape (a plan, a compiled kernel) pays for it at each new one.

    python examples/benchmark/attention_shapes.py --output attention-shapes.json
    python examples/benchmark/attention_shapes.py --quick      # tiny: checks the script runs

For each backend this device offers (default = PyTorch's own choice, then each backend alone), with an encoder's
padding mask and with a decoder's causal flag: ms per call on new shapes, ms per call on one repeated shape, and
their ratio; then the ratio of each backend to the default on new shapes. The kernels the default runs (from
torch.profiler) are printed, to say which backend it chose. Defaults: the Multi30k preset's attention (4 heads of
64) under bf16 autocast on batches of about 4,096 tokens.
"""

import argparse
import contextlib
import json
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}


def distinct_shapes(count: int, tokens: int, shortest: int, longest: int) -> list[tuple[int, int]]:
    """`count` different (batch, length) pairs of at most about `tokens` tokens, in random order."""
    pairs = [(max(1, tokens // length - fewer), length) for length in range(shortest, longest + 1)
             for fewer in range(64)]
    pairs = list(dict.fromkeys(pairs))
    random.Random(0).shuffle(pairs)
    if len(pairs) < count:
        raise SystemExit(f"--calls {count} per backend needs more distinct shapes than --shortest {shortest} to "
                         f"--longest {longest} give ({len(pairs)}); lower --calls")
    return pairs[:count]


def attention_call(batch: int, length: int, heads: int, head_dim: int, masked: bool, device: str):
    """A function running one forward + backward on fresh inputs of this shape."""
    q, k, v = (torch.randn(batch, heads, length, head_dim, device=device, requires_grad=True) for _ in range(3))
    mask = None
    if masked:  # padding at the end of every row but the longest, as in a batch of sources
        lengths = torch.randint(max(1, length // 2), length + 1, (batch,), device=device)
        lengths[0] = length
        mask = (torch.arange(length, device=device)[None, :] < lengths[:, None])[:, None, None, :]

    def run():
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=not masked)
        out.float().sum().backward()
    return run


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_calls(calls, device: str) -> float:
    """Median ms of the calls, each timed alone."""
    times = []
    for call in calls:
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(backend: str, masked: bool, new_shapes: list[tuple[int, int]], args, device: str) -> dict:
    context = sdpa_kernel([BACKENDS[backend]]) if backend != "default" else contextlib.nullcontext()
    new = [attention_call(b, n, args.heads, args.head_dim, masked, device) for b, n in new_shapes]
    batch, length = args.tokens // args.longest, args.longest
    repeated = [attention_call(batch, length, args.heads, args.head_dim, masked, device) for _ in range(args.calls)]
    try:
        with context:
            repeated[0]()  # the repeated shape's first call (its preparation) is not part of its timing
            repeated_ms = time_calls(repeated[1:], device)
            new_ms = time_calls(new, device)
    except RuntimeError as error:  # this backend cannot run these inputs here
        return {"error": str(error).splitlines()[0][:160]}
    return {"new_shapes_ms": new_ms, "repeated_shape_ms": repeated_ms, "new_over_repeated": new_ms / repeated_ms}


def default_kernels(args, device: str) -> list[str]:
    """Names of the device kernels the default SDPA runs for one masked call of a new shape."""
    call = attention_call(args.tokens // 37, 37, args.heads, args.head_dim, True, device)
    activity = torch.profiler.ProfilerActivity.CUDA if device == "cuda" else torch.profiler.ProfilerActivity.CPU
    with torch.profiler.profile(activities=[activity]) as profile:
        call()
        synchronize(device)
    names = {event.key for event in profile.key_averages()}
    return sorted(name for name in names if any(word in name.lower() for word in
                                                 ("attention", "fmha", "flash", "cudnn", "sdpa", "softmax")))[:12]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls timed per backend and case")
    parser.add_argument("--tokens", type=int, default=4096, help="about batch x length of every call")
    parser.add_argument("--shortest", type=int, default=8)
    parser.add_argument("--longest", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head_dim", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few calls")
    parser.add_argument("--output", help="results JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.tokens, args.longest, args.heads, args.head_dim = 4, 64, 16, 2, 8
    if args.calls < 2:
        parser.error("--calls must be at least 2")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
               "arguments": vars(args), "default_kernels": default_kernels(args, device), "cases": {}}
    print(f"{results['device']}, torch {results['torch']}; kernels of the default: {results['default_kernels']}")
    for masked in (True, False):
        case = "padding mask" if masked else "causal"
        rows = results["cases"][case] = {}
        backends = ["default", *BACKENDS]
        # each backend its own shapes: none finds another's preparations cached
        pool = distinct_shapes(args.calls * len(backends), args.tokens, args.shortest, args.longest)
        print(f"\n{case}: ms per forward + backward, median of {args.calls}")
        print(f"{'backend':10} {'new shapes':>11} {'repeated':>9} {'new/repeated':>13} {'default/this (new)':>19}")
        for index, backend in enumerate(backends):  # each row printed as it is measured: a cut run keeps them
            row = rows[backend] = measure(backend, masked, pool[index * args.calls : (index + 1) * args.calls], args,
                                          device)
            if "error" in row:
                print(f"{backend:10} cannot run: {row['error']}", flush=True)
                continue
            default = rows["default"].get("new_shapes_ms")
            versus = f"{default / row['new_shapes_ms']:.2f}x" if default else "-"
            print(f"{backend:10} {row['new_shapes_ms']:11.3f} {row['repeated_shape_ms']:9.3f} "
                  f"{row['new_over_repeated']:12.2f}x {versus:>19}", flush=True)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
