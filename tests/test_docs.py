"""Every command the documentation shows is one the real argument parser accepts."""
import re
import shlex
from pathlib import Path

import pytest

from animeedge.cli import EXAMPLES, build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each `animeedge ...` line in a code block."""
    found = []
    for doc in DOCS:
        for chunk in (b.replace("\\\n", " ") for b in _code_blocks(doc.read_text())):
            for line in chunk.splitlines():
                for part in re.split(r"&&|;|\|", line.split(" #")[0]):
                    part = part.strip().removeprefix("$ ").removeprefix(".venv/bin/")
                    if part.startswith("animeedge "):
                        found.append((doc.name, part))
    return found


EXAMPLE_LINES = [(f"--help of {name}", line) for name, lines in EXAMPLES.items() for line in lines]


@pytest.mark.parametrize("where,command", documented_commands() + EXAMPLE_LINES)
def test_the_parser_accepts_the_documented_command(where, command):
    args = shlex.split(command)[1:]
    if args in (["--version"], ["--help"]) or args[-1:] == ["--help"]:
        return
    try:
        build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: `{command}` is not accepted by the parser")


def test_the_documentation_shows_commands():
    assert len(documented_commands()) > 20


# The README's tour shows how to load a bundle from Python (the first ```python block). It is
# run here as written, on the session's test bundle: only the bundle path, the width and the
# resolution (the test bundle holds widths 0.5 and 1.0 at BUNDLE_RES and BUNDLE_RES2, the demo's
# 0.25 and 1.0 at 256) are replaced, and the picture it reads, `photo.jpg`, is written where it runs.
README_BUNDLE, README_WIDTH, README_RESOLUTION = "demo_out/bundle", "width=0.25", "resolution=256"
README_PHOTO, README_OUTPUT = "photo.jpg", "photo_anime.png"


def readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "README.md has no ```python block (the runtimes.load example)"
    return blocks[0]


def test_the_readme_python_example_names_what_the_test_replaces():
    code = readme_python_example()
    for token in (README_BUNDLE, README_WIDTH, README_RESOLUTION, README_PHOTO, README_OUTPUT):
        assert code.count(token) == 1, f"the README's python example should name {token!r} once"
    assert "import torch" not in code and "from torch" not in code
    compile(code, "README.md", "exec")


def test_the_readme_python_example_runs_on_a_bundle(bundle, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from conftest import BUNDLE_RES2, synthetic_image
    bundle_dir, _ = bundle
    photo = synthetic_image(np.random.default_rng(7), size=72)[:, :60]  # not square
    monkeypatch.chdir(tmp_path)
    Image.fromarray(photo).save(tmp_path / README_PHOTO)
    code = (readme_python_example().replace(README_BUNDLE, Path(bundle_dir).as_posix())
            .replace(README_WIDTH, "width=0.5").replace(README_RESOLUTION, f"resolution={BUNDLE_RES2}"))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = tmp_path / README_OUTPUT
    assert out.is_file()
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (photo.shape[1], photo.shape[0])
    printed = capsys.readouterr().out.split()
    assert printed[2:] == ["0.5", str(BUNDLE_RES2)], printed
