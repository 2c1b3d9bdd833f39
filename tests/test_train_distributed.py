"""The two-process checks (tests/multiprocess_checks.py: synchronised gradients and parameters, and the
training script's 2-process run equal to a 1-process run with the same global batch) run in a fresh
pytest process: forking two workers from a process that other tests have filled with threads hung."""

import subprocess
import sys
from pathlib import Path

CHECKS = Path(__file__).resolve().parent / "multiprocess_checks.py"


def test_two_process_checks_pass_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)],
                            capture_output=True, text=True, timeout=600, cwd=CHECKS.parent.parent)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "2 passed" in result.stdout, result.stdout[-2000:]
