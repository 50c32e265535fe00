"""A bundle is untrusted input. Each case here is a bundle made hostile (a path that escapes,
a link, a lying or out-of-range manifest, a listed file that is not a model) and must end
in a one-line UserError, before anything outside the bundle is read."""
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from conftest import run_cli
from animeedge.runtimes import manifest as manifest_module
from animeedge.runtimes.errors import UserError
from animeedge.runtimes.load import load
from animeedge.runtimes.manifest import MANIFEST, load_manifest, sha256_path, size_bytes


def small_bundle(bundle, folder, fmt="tflite", precision="int8", width=1.0, mutate=None):
    """A copy of `bundle` holding one artifact; `mutate(artifact, folder)` edits it first."""
    manifest = load_manifest(bundle)
    artifact = next(a for a in manifest["artifacts"]
                    if (a["format"], a["precision"], a["width"]) == (fmt, precision, width))
    folder.mkdir()
    copy = shutil.copytree if (bundle / artifact["file"]).is_dir() else shutil.copy2
    (folder / artifact["file"]).parent.mkdir(parents=True, exist_ok=True)
    copy(bundle / artifact["file"], folder / artifact["file"])
    artifact = json.loads(json.dumps(artifact))
    if mutate:
        mutate(artifact, folder)
    text = json.dumps(dict(manifest, artifacts=[artifact]), indent=1)  # NaN and Infinity as JSON writes them
    (folder / MANIFEST).write_text(text)
    return folder, artifact


def run_load(folder, artifact):
    return load(folder, artifact["width"], artifact["resolution"], artifact["format"], artifact["precision"])


@pytest.fixture
def no_hashing(monkeypatch):
    """Fails the test if any file is hashed (refusals must come before any read)."""
    def refuse(path):
        raise AssertionError(f"{path} was read")
    monkeypatch.setattr(manifest_module, "sha256_path", refuse)


def _point_at(target):
    def mutate(a, folder):
        a["file"] = str(target)
        a["sha256"], a["size_bytes"] = sha256_path(target), size_bytes(target)
    return mutate


def _outside_copy(a, folder):
    outside = folder.parent / "outside.tflite"
    shutil.copy2(folder / a["file"], outside)
    return outside


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../../../etc/passwd", "sub/../../x.tflite", "..\\x"])
def test_paths_outside_the_bundle_are_refused_before_any_read(bundle, tmp_path, no_hashing, name):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=lambda a, f: a.update(file=name))
    with pytest.raises(UserError, match="outside the bundle"):
        run_load(folder, artifact)


def test_a_real_model_outside_the_bundle_with_its_hash_is_refused(bundle, tmp_path):
    def mutate(a, folder):
        _point_at(_outside_copy(a, folder))(a, folder)
        a["file"] = "../outside.tflite"
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=mutate)
    with pytest.raises(UserError, match="outside the bundle"):
        run_load(folder, artifact)


def _file_link(a, folder):
    (folder / "link.tflite").symlink_to(_outside_copy(a, folder))
    a["file"] = "link.tflite"


def _folder_link(a, folder):
    (folder / "sub").symlink_to(_outside_copy(a, folder).parent)
    a["file"] = "sub/outside.tflite"


@pytest.mark.parametrize("mutate", [_file_link, _folder_link])
def test_links_are_refused_wherever_they_are(bundle, tmp_path, no_hashing, mutate):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=mutate)
    with pytest.raises(UserError, match="symbolic link"):
        run_load(folder, artifact)


def test_a_link_inside_a_core_ml_package_is_refused(bundle, tmp_path, no_hashing):
    def inner_link(a, folder):
        (folder / a["file"] / "stolen").symlink_to("/etc/passwd")
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", "coreml", "fp32", mutate=inner_link)
    with pytest.raises(UserError, match="symbolic link"):
        manifest_module.verify_artifact(folder, artifact)


def test_a_special_file_is_refused_without_opening_it(bundle, tmp_path, no_hashing):
    def fifo(a, folder):
        os.mkfifo(folder / "pipe.tflite")  # opening it would block
        a["file"] = "pipe.tflite"
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=fifo)
    with pytest.raises(UserError, match="not a regular file"):
        run_load(folder, artifact)


def test_a_size_that_lies_is_refused_before_hashing(bundle, tmp_path, no_hashing):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=lambda a, f: a.update(size_bytes=a["size_bytes"] + 1))
    with pytest.raises(UserError, match="bytes, the manifest says"):
        run_load(folder, artifact)


def _set(path, value):
    def mutate(a, folder):
        *keys, last = path
        target = a
        for k in keys:
            target = target[k]
        target[last] = value
    return mutate


@pytest.mark.parametrize("path, value, message", [
    (("width",), math.nan, "width is not a finite number"),
    (("width",), math.inf, "not a finite number"),
    (("width",), 0, "width"),
    (("width",), 1.5, "width"),
    (("resolution",), 100000, "resolution"),
    (("resolution",), 4, "resolution"),
    (("input", "quantization", "scale"), 0, "scale"),
    (("input", "quantization", "scale"), -0.1, "scale"),
    (("input", "quantization", "scale"), math.nan, "not a finite number"),
    (("input", "quantization", "scale"), -math.inf, "not a finite number"),
    (("input", "quantization", "zero_point"), 200, "outside int8's range"),
    (("input", "quantization", "zero_point"), 1 << 40, "zero_point"),
    (("output", "dtype"), "float32", "float32 output has quantization"),  # the int8 file's output is int8
    (("output", "quantization"), None, "int8 output has no quantization"),
    (("input", "quantization"), None, "quantization"),
    (("gmacs",), math.nan, "not a finite number"),
    (("input", "shape"), [1, -5, 3, 3], "shape"),
])
def test_out_of_range_numbers_are_refused(bundle, tmp_path, path, value, message):
    def mutate(a, folder):
        if value is None:
            del a[path[0]][path[1]]
        else:
            _set(path, value)(a, folder)
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=mutate)
    with pytest.raises(UserError, match=message):
        load_manifest(folder)


@pytest.mark.parametrize("fmt, precision, mutate, message", [
    ("tflite", "int8", _set(("input", "quantization", "scale"), 0.5), "input quantization"),
    ("tflite", "int8", _set(("input", "quantization", "zero_point"), 3), "input quantization"),
    ("tflite", "fp32", _set(("input", "layout"), "NCHW"), "input layout"),
    ("onnx", "fp32", _set(("input", "layout"), "NHWC"), "input layout"),
    ("onnx", "fp32", _set(("input", "dtype"), "float16"), "input dtype float16, the file has float32"),
    ("tflite", "fp32", _set(("input", "shape"), [1, "H", "W", 3]), "input shape"),
])
def test_a_manifest_that_lies_about_the_file_is_caught_at_load(bundle, tmp_path, fmt, precision, mutate, message):
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", fmt, precision, mutate=mutate)
    with pytest.raises(UserError, match=message):
        run_load(folder, artifact)


def test_int8_file_declared_float_is_caught(bundle, tmp_path):
    def mutate(a, folder):
        a["input"]["dtype"] = "float32"
        del a["input"]["quantization"]
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", "tflite", "int8", mutate=mutate)
    with pytest.raises(UserError, match="input dtype float32, the file has int8"):
        run_load(folder, artifact)


@pytest.mark.parametrize("fmt, label", [("onnx", "ONNX"), ("tflite", "TFLite")])
def test_a_listed_file_that_is_not_a_model_is_a_one_line_error(bundle, tmp_path, fmt, label):
    def garbage(a, folder):
        path = folder / a["file"]
        path.write_bytes(os.urandom(4096))
        a["sha256"], a["size_bytes"] = sha256_path(path), size_bytes(path)
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", fmt, "fp32", mutate=garbage)
    with pytest.raises(UserError, match=f"not a valid {label} model"):
        run_load(folder, artifact)


def test_a_manifest_that_is_a_folder_or_a_link_says_so(bundle, tmp_path):
    folder = tmp_path / "b"
    (folder / MANIFEST).mkdir(parents=True)
    with pytest.raises(UserError, match="is a folder or a special file"):
        load_manifest(folder)
    linked = tmp_path / "c"
    linked.mkdir()
    (linked / MANIFEST).symlink_to(bundle[0] / MANIFEST)
    with pytest.raises(UserError, match="symbolic link"):
        load_manifest(linked)


def test_phone_staging_refuses_a_path_outside_the_bundle(bundle, tmp_path):
    folder, _ = small_bundle(bundle[0], tmp_path / "b", mutate=_point_at("/etc/hostname")
                             if os.path.exists("/etc/hostname") else _point_at("/etc/passwd"))
    done = subprocess.run([sys.executable, "-m", "animeedge", "package", "--bundle", folder, "--out", tmp_path / "phone"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "outside the bundle" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "phone").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda a, f: a.update(file="/etc/passwd"), "outside the bundle"),
    (_set(("width",), math.nan), "not a finite number"),
    (_set(("input", "quantization", "scale"), 0), "scale"),
])
def test_the_cli_refuses_hostile_bundles_in_one_line(bundle, tmp_path, mutate, message):
    from PIL import Image
    folder, _ = small_bundle(bundle[0], tmp_path / "b", mutate=mutate)
    Image.new("RGB", (40, 30), (200, 120, 60)).save(tmp_path / "in.png")
    result = run_cli("stylize", tmp_path / "in.png", "--out", tmp_path / "out", "--model", folder,
                     "--backend", "tflite", "--precision", "int8")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "in.png").exists()


def _deep_manifest(folder):
    text = (folder / MANIFEST).read_text()
    (folder / MANIFEST).write_text(text.replace('"model": {', '"model": {"deep": ' + "[" * 900 + "]" * 900 + ", ", 1))


def _long_name(a, folder):
    a["file"] = "tflite/" + "x" * 300 + ".tflite"


@pytest.mark.parametrize("mutate, after, message", [
    (None, _deep_manifest, "nested deeper than 32 levels"),
    (_long_name, None, "File name too long"),
    (_set(("resolution",), 32.0), None, "resolution must be integer"),
])
def test_manifests_that_raised_tracebacks_are_one_line(bundle, tmp_path, mutate, after, message):
    from PIL import Image
    folder, artifact = small_bundle(bundle[0], tmp_path / "b", mutate=mutate)
    if after:
        after(folder)
    with pytest.raises(UserError, match=message):
        run_load(folder, dict(artifact, resolution=32))
    Image.new("RGB", (40, 30), (200, 120, 60)).save(tmp_path / "in.png")
    result = run_cli("stylize", tmp_path / "in.png", "--out", tmp_path / "out", "--model", folder,
                     "--backend", "tflite", "--precision", "int8")
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("path, value, message", [
    (("resolutions",), [32.0], "resolutions.0. must be integer"),
    (("input", "shape"), [1, 32.0, 32, 3], r"shape\[1\] cannot be validated"),
    (("size_bytes",), 100.0, "size_bytes must be integer"),
    (("input", "quantization", "zero_point"), 1.0, "zero_point must be integer"),
])
def test_integers_in_a_manifest_must_be_integers(bundle, tmp_path, path, value, message):
    folder, _ = small_bundle(bundle[0], tmp_path / "b", mutate=_set(path, value))
    with pytest.raises(UserError, match=message):
        load_manifest(folder)


def test_a_bundle_path_too_long_is_one_line(tmp_path):
    with pytest.raises(UserError, match="File name too long"):
        load(tmp_path / ("x" * 300))
    with pytest.raises(UserError, match="File name too long"):
        load(tmp_path / ("x" * 300 + ".onnx"))


@pytest.mark.parametrize("threads", [-1, 0, 100000, 2 ** 31, 1.5, True, "2"])
def test_the_api_bounds_threads(bundle, threads):
    with pytest.raises(UserError, match="threads must be an integer from 1 to"):
        load(bundle[0], 1.0, 32, "tflite", "int8", threads=threads)


def test_the_api_takes_numpy_integers_and_refuses_a_float_resolution(bundle):
    import numpy as np
    stylizer = load(bundle[0], 1.0, np.int64(32), "tflite", "int8", threads=np.int32(1))
    assert stylizer.resolution == 32 and type(stylizer.resolution) is int
    assert stylizer(np.zeros((20, 30, 3), np.uint8)).shape == (20, 30, 3)
    with pytest.raises(UserError, match="resolution must be an integer from 16 to 4096 px, got 32.0"):
        load(bundle[0], 1.0, 32.0, "tflite", "int8")


def test_api_errors_name_api_arguments(bundle):
    import platform
    if platform.system() == "Darwin":
        pytest.skip("Core ML runs here")
    with pytest.raises(UserError, match="use backend='onnx' or 'tflite'"):
        load(bundle[0], 1.0, 32, "coreml", "fp32")


@pytest.mark.parametrize("command", ["train", "stylize", "compress", "export", "bench", "app"])
@pytest.mark.parametrize("value", ["100000", "2147483648", "0", "-1"])
def test_the_cli_bounds_threads(capsys, command, value):
    from animeedge.cli import build_parser
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, f"--threads={value}"])
    assert exit_.value.code == 2
    assert "argument --threads: threads must be an integer from 1 to" in capsys.readouterr().err.splitlines()[-1]
