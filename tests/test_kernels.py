"""The tests whose figures come from a few training steps hold on every CPU type that runs
this suite, not only on the one it was written on. Torch picks its float kernels by the CPU
(ATEN_CPU_CAPABILITY) and oneDNN, which runs the convolutions, picks its own
(ONEDNN_MAX_CPU_ISA): each pair below is how an x86 machine of that kind computes, and any
machine can be capped down to it. A threshold that passes under one pair and fails under
another is one machine's rounding, not the behaviour it tests. `make test-kernels` runs this."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

KERNELS = {  # the plain kernels; an AVX2-only CPU (AMD Zen 3); AVX-512 (AMD Zen 4/5, Intel Xeon)
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}
TRAINING_TESTS = ["test_train.py", "test_compress.py", "test_teacher.py", "test_byo_teacher.py", "test_student.py"]


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNELS)
def test_training_thresholds_hold_under_every_kernel_setting(kernels):
    tests = Path(__file__).parent
    result = subprocess.run([sys.executable, "-m", "pytest", *[str(tests / t) for t in TRAINING_TESTS], "-q"],
                            env=os.environ | KERNELS[kernels], cwd=tests.parent,
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:]
