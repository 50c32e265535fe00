"""Every script in experiments/ and benchmarks/ runs as documented, for a few steps (slow:
each exports or trains a little). Scripts that read the research data are skipped where it
is absent; the ARM64 one where `make arm64` has not been run."""
import subprocess
import sys
from pathlib import Path

import pytest

from animeedge.calibration.data import has_shared_data

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = str(ROOT / "generator" / "default" / "generator.safetensors")
RESEARCH = "research data"
# script -> (arguments, what it needs); {tmp} is the test's folder
RUNS = {
    "experiments/cel_heads.py": (["--steps", "2", "--photos", "4", "--scored", "2"], RESEARCH),
    "experiments/cel_target.py": (["sheet", "{tmp}/sheet.jpg"], None),
    "experiments/cel_target.py fit": (["fit", "--photos", "2", "--steps", "2", "--evals", "1", "--scored", "1",
                                       "--size", "64"], RESEARCH),
    "experiments/device_cel_run.py": (["pack", "--out", "{tmp}/pack", "--photos", "2", "--cache", "{tmp}/cache"],
                                      RESEARCH),
    "experiments/face_target.py": (["--n", "2"], RESEARCH),
    "experiments/guide_sweep.py": (["--n", "2", "--videos", "1", "{{}}"], RESEARCH),  # "{}" after format
    "experiments/lade_variants.py": (["--variants", "model", "--resolution", "64"], RESEARCH),
    "experiments/make_probe.py": (["--out", "{tmp}"], None),
    "experiments/matte_threshold.py": (["--n", "2", "--videos", "1", "--variants", "1,0", "2,2"], RESEARCH),
    "experiments/norm_choice.py": (["--runs", "1"], None),
    "experiments/onnx_int8_scope.py": (["--widths", "0.25", "--resolution", "64"], RESEARCH),
    "experiments/semantic_fit.py": (["--photos", "2", "--steps", "2", "--size", "64"], RESEARCH),
    "experiments/semantic_residual.py": (["--model", DEFAULT, "--n", "2"], RESEARCH),
    "experiments/semantic_sweep.py": (["--public-sheet", "{tmp}/targets.jpg"], None),
    "experiments/arm64_max_cpu.py": (["--bundle", "{bundle}", "--precisions", "fp32"], "arm64"),
    "benchmarks/frame_overhead.py": (["--bundle", "{bundle}", "--resolution", "32", "--rounds", "1", "--runs", "3",
                                      "--min-seconds", "0"], None),
    "benchmarks/self_tuning.py": (["{bundle}"], None),
    "benchmarks/byo_teacher.py": (["--filter-steps", "2", "--default-steps", "2"], RESEARCH),
    "benchmarks/student_forms.py": (["--widths", "0.25"], None),
    "benchmarks/train_throughput.py": (["--steps", "2", "--size", "64", "--batch", "1"], None),
}


def _missing(need) -> str | None:
    if need == RESEARCH and not (has_shared_data("photos/train") and has_shared_data("photos/calib")):
        return "needs the research data"
    if need == "arm64":
        from animeedge.arm64 import CACHE
        if not (CACHE / "site").is_dir():
            return "needs `make arm64`"
    return None


def test_every_script_is_listed():
    listed = {name.split()[0] for name in RUNS}
    found = {str(p.relative_to(ROOT)) for folder in ("experiments", "benchmarks") for p in (ROOT / folder).glob("*.py")}
    assert found == listed


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_script_runs_for_a_few_steps(name, tmp_path, bundle):
    args, need = RUNS[name]
    missing = _missing(need)
    if missing:
        pytest.skip(missing)
    argv = [a.format(tmp=tmp_path, bundle=bundle[0]) for a in args]
    done = subprocess.run([sys.executable, ROOT / name.split()[0], *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=1700)
    assert done.returncode == 0, done.stderr[-3000:]
