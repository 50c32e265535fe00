"""The house's rules, read from the source: which folder may import which (the floors of
docs/architecture.md), the vocabulary defined once (runtimes/formats.py), and nothing
generic installed at the top of site-packages."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> the project's packages its modules may import (besides itself)
MAY_IMPORT = {
    "runtimes": set(),
    "calibration": {"runtimes"},
    "mobile_app": {"runtimes"},
    "generator": {"runtimes"},
    "compress": {"runtimes", "calibration", "generator"},
    "animeedge": {"runtimes", "calibration", "generator", "compress", "mobile_app"},
}
# the one door upward: load(backend="torch") runs a checkpoint as the reference, importing
# the generator only when asked (torch is not installed with the runtime)
LAZY_DOORS = {"runtimes/load.py": {"generator"}}
VOCABULARY = {  # literals that runtimes/formats.py alone may spell
    "widths": r"0\.25,\s*0\.5,\s*0\.75,\s*1\.0",
    "precisions": r"[\"']fp32[\"'],\s*[\"']fp16[\"'],\s*[\"']int8[\"']",
    "formats": r"[\"']onnx[\"'],\s*[\"']tflite[\"'],\s*[\"']coreml[\"']",
    "resolutions": r"128,\s*256,\s*512\b",
    "resolution range": r"\b16,\s*4096\b|16 to 4096",
}


def _modules(folder):
    return sorted((ROOT / folder).glob("*.py"))


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "animeedge" and len(parts) > 1 and parts[1] in MAY_IMPORT:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_each_folder_imports_only_the_floors_below_it(folder):
    for path in _modules(folder):
        door = LAZY_DOORS.get(str(path.relative_to(ROOT)), set())
        bad = _imported_packages(path) - MAY_IMPORT[folder] - {folder} - door
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_vocabulary_is_spelt_once():
    sources = [p for folder in MAY_IMPORT for p in _modules(folder)]
    for name, pattern in VOCABULARY.items():
        spelt = [str(p.relative_to(ROOT)) for p in sources if re.search(pattern, p.read_text())]
        assert set(spelt) <= {"runtimes/formats.py"}, f"{name} spelt outside runtimes/formats.py: {spelt}"


def test_only_the_animeedge_namespace_is_importable_outside_the_repo(tmp_path):
    code = ("import importlib.util as u, animeedge.runtimes, animeedge.generator.network; "
            "print([n for n in ('generator', 'compress', 'runtimes', 'calibration', 'mobile_app') if u.find_spec(n)])")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
