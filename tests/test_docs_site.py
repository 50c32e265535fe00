"""The documentation site (mkdocs.yml over docs/, what `make docs` builds) builds in strict
mode with no warning: no broken link or anchor, no page left out of the nav, and the API
reference finds the runtime's docstrings."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = [name for name in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers") if importlib.util.find_spec(name) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed: the `docs` extra "
                                          "(pip install -e '.[docs]', which `make install` does)")
@pytest.mark.timeout(120)
def test_the_site_builds_strictly_without_a_warning(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=110)
    output = result.stdout + result.stderr
    warnings = [line for line in output.splitlines() if "WARNING" in line or "ERROR" in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or output[-3000:]
    assert (site / "index.html").is_file() and (site / "research" / "index.html").is_file()
    api = (site / "api" / "index.html").read_text()  # the reference, read from runtimes/
    for name in ("load.load", "load.Stylizer", "imageio.read_image", "video.VideoWriter", "errors.UserError"):
        assert f'id="runtimes.{name}"' in api, f"the API reference lacks animeedge.runtimes.{name}"
