"""torch.compile works on the model and computes what the uncompiled model computes (loss and gradients),
for global and blocked local attention, and on the CPU dropout. Run in a fresh process: compiling leaves
worker state behind that the forked multi-process tests must not inherit."""

import subprocess
import sys
import textwrap
from pathlib import Path

CHECK = textwrap.dedent("""
    import sys
    import torch
    sys.path.insert(0, sys.argv[1])
    from conftest import padded_batch, tiny_seq2seq
    for window in (None, 2):
        torch._dynamo.reset()
        model = tiny_seq2seq(attention_window=window).train()
        input_ids, attention_mask, labels = padded_batch()
        batch = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        loss = model(**batch).loss
        loss.backward()
        expected = {name: p.grad.clone() for name, p in model.named_parameters()}
        model.zero_grad()
        compiled_loss = torch.compile(model)(**batch).loss
        compiled_loss.backward()
        torch.testing.assert_close(compiled_loss, loss, rtol=1e-5, atol=1e-6)
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)
    # the CPU dropout (16-bit random numbers) compiles too: its rate and gradient hold
    from vanilla_transformer.modeling.cpu_kernels_vanilla_transformer import CPUDropout
    x = torch.ones(4096, 64, requires_grad=True)
    y = torch.compile(CPUDropout(0.1).train())(x)
    y.sum().backward()
    assert abs((y == 0).float().mean().item() - 0.1) < 0.01 and torch.equal(x.grad, y.detach())
    print("ok")
""")


def test_compiled_model_gives_the_same_loss_and_gradients():
    tests = Path(__file__).resolve().parent
    result = subprocess.run([sys.executable, "-c", CHECK, str(tests)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
