"""Every command the documentation shows is one the real argument parser accepts, the guides
show their commands first, and their Python runs as written.

The guides are README.md and docs/*.md; the research notebook (docs/research/) is left out:
its commands are the project's history, made with the options of their day."""
import re
import shlex
import unicodedata
from pathlib import Path

import pytest

from animeedge.cli import EXAMPLES, build_parser

ROOT = Path(__file__).resolve().parents[1]
GUIDES = sorted((ROOT / "docs").glob("*.md"))  # not docs/research/: the notebook
DOCS = [ROOT / "README.md", *GUIDES]
# One guide per job, each opening with its commands (docs/index.md lists them).
JOB_GUIDES = ["stylize", "compression", "training", "export", "runtime", "phones", "bench", "app"]
FIRST_SCREEN = 25  # lines
GUIDE_LINES = 1200  # the guides together stay shorter than this


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)


def _commands(doc: Path) -> list[str]:
    found = []
    for chunk in (b.replace("\\\n", " ") for b in _code_blocks(doc.read_text())):
        for line in chunk.splitlines():
            for part in re.split(r"&&|;|\|", line.split(" #")[0]):
                part = part.strip().removeprefix("$ ").removeprefix(".venv/bin/")
                if part.startswith("animeedge "):
                    found.append(part)
    return found


def documented_commands() -> list[tuple[str, str]]:
    """(where, command) for each `animeedge ...` line in a code block of the README and the guides."""
    return [(doc.name, command) for doc in DOCS for command in _commands(doc)]


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
    assert not any("research" in str(doc.relative_to(ROOT)) for doc in DOCS)


@pytest.mark.parametrize("name", JOB_GUIDES)
def test_each_guide_opens_with_its_commands(name):
    """A newcomer finds a job's commands on the first screen of its guide, and every command
    a guide shows is among those the parser test checks."""
    guide = ROOT / "docs" / f"{name}.md"
    lines = guide.read_text().splitlines()
    fences = [i for i, line in enumerate(lines) if line.startswith("```")]
    assert fences and fences[0] < FIRST_SCREEN, f"{guide.name}: no code block in its first {FIRST_SCREEN} lines"
    first_block = "\n".join(lines[fences[0] + 1:fences[1]])
    if name == "runtime":  # run from Python: the block after the install line
        assert "```python" in "\n".join(lines[:FIRST_SCREEN]) and "load(" in guide.read_text()
    else:
        assert "animeedge " in first_block, f"{guide.name}: its first code block shows no animeedge command"
        assert _commands(guide), guide.name


def test_the_guides_are_short():
    total = sum(len(guide.read_text().splitlines()) for guide in GUIDES)
    assert total < GUIDE_LINES, f"docs/*.md: {total} lines; history belongs in docs/research/"


def test_no_issue_numbers_in_the_docs():
    """A goal is stated as what it is, not by the number of the issue that set it."""
    pattern = re.compile(r"issues? ?#?[0-9]|#[0-9]{2}", re.I)
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for n, line in enumerate(doc.read_text().splitlines(), 1):
            assert not pattern.search(line), f"{doc.relative_to(ROOT)}:{n}: {line.strip()}"


def _slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[`*]", "", heading).strip()
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_the_readme_links_into_the_docs_resolve():
    """The site build checks the links between pages; the README is outside it."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", readme)
    assert links
    for target, anchor in links:
        path = ROOT / target
        assert path.is_file(), f"README.md links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
            assert anchor in {_slug(h) for h in headings}, f"README.md: {target} has no heading #{anchor}"


def _python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_every_python_block_compiles(doc):
    for code in _python_blocks(doc):
        assert "import torch" not in code and "from torch" not in code, doc.name
        compile(code, doc.name, "exec")


# The README's tour shows how to load a bundle from Python (the first ```python block). It is
# run here as written, on the session's test bundle: only the bundle path, the width and the
# resolution (the test bundle holds widths 0.5 and 1.0 at BUNDLE_RES and BUNDLE_RES2, the demo's
# 0.25 and 1.0 at 256) are replaced, and the picture it reads, `photo.jpg`, is written where it runs.
README_BUNDLE, README_WIDTH, README_RESOLUTION = "demo_out/bundle", "width=0.25", "resolution=256"
README_PHOTO, README_OUTPUT = "photo.jpg", "photo_anime.png"


def readme_python_example() -> str:
    blocks = _python_blocks(ROOT / "README.md")
    assert blocks, "README.md has no ```python block (the runtimes.load example)"
    return blocks[0]


def test_the_readme_python_example_names_what_the_test_replaces():
    code = readme_python_example()
    for token in (README_BUNDLE, README_WIDTH, README_RESOLUTION, README_PHOTO, README_OUTPUT):
        assert code.count(token) == 1, f"the README's python example should name {token!r} once"
    assert "import torch" not in code and "from torch" not in code
    compile(code, "README.md", "exec")


def _user_files(where: Path):
    """photo.jpg (not square) and clip.mp4, the files the examples read."""
    import cv2
    import numpy as np
    from PIL import Image

    from conftest import synthetic_image
    rng = np.random.default_rng(7)
    photo = synthetic_image(rng, size=72)[:, :60]
    Image.fromarray(photo).save(where / README_PHOTO)
    video = cv2.VideoWriter(str(where / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(4):
        video.write(np.roll(synthetic_image(rng, 64)[:48], i, axis=1))
    video.release()
    return photo


def test_the_readme_python_example_runs_on_a_bundle(bundle, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from conftest import BUNDLE_RES2
    bundle_dir, _ = bundle
    monkeypatch.chdir(tmp_path)
    photo = _user_files(tmp_path)
    code = (readme_python_example().replace(README_BUNDLE, Path(bundle_dir).as_posix())
            .replace(README_WIDTH, "width=0.5").replace(README_RESOLUTION, f"resolution={BUNDLE_RES2}"))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    out = tmp_path / README_OUTPUT
    assert out.is_file()
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (photo.shape[1], photo.shape[0])
    printed = capsys.readouterr().out.split()
    assert printed[2:] == ["0.5", str(BUNDLE_RES2)], printed


def test_the_runtime_guides_python_runs_on_a_bundle(bundle, tmp_path, monkeypatch):
    """docs/runtime.md's examples (a picture, a video) as written, on the test bundle: the
    bundle path, the width and the resolution replaced as for the README's."""
    from PIL import Image

    from conftest import BUNDLE_RES2
    bundle_dir, _ = bundle
    monkeypatch.chdir(tmp_path)
    photo = _user_files(tmp_path)
    blocks = _python_blocks(ROOT / "docs" / "runtime.md")
    assert len(blocks) >= 2, "docs/runtime.md shows a picture and a video example"
    for code in blocks:
        assert '"runs/bundle"' in code
        code = (code.replace('"runs/bundle"', repr(Path(bundle_dir).as_posix()))
                .replace("width=0.25", "width=0.5").replace("resolution=256", f"resolution={BUNDLE_RES2}"))
        exec(compile(code, "docs/runtime.md", "exec"), {"__name__": "runtime_example"})
    with Image.open(tmp_path / README_OUTPUT) as img:
        assert img.size == (photo.shape[1], photo.shape[0])
    assert (tmp_path / "clip_anime.mp4").stat().st_size > 0
