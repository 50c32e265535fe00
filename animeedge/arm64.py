"""Run the real aarch64 builds of numpy, onnxruntime and LiteRT on an x86 Linux host, under
qemu user-mode emulation: no binfmt_misc, no chroot. `setup` builds, under the cache folder:

    rootfs/         Debian bookworm arm64: python3.11 and the libraries it and the wheels load
    site/           the aarch64 wheels of the versions installed here, unzipped (PYTHONPATH)
    cpuinfo/MODEL   an ARM /proc/cpuinfo per qemu CPU model
    prefix/MODEL    qemu's -L folder for MODEL: links to rootfs's top folders, plus
                    proc/cpuinfo -> cpuinfo/MODEL

LiteRT reads /proc/cpuinfo and crashes on the host's x86 one. qemu's -L serves a guest path
from the -L folder when it exists there, from the host otherwise; a prefix per model gives
each run its model's cpuinfo without touching a shared file, so runs can go side by side.

    python -m animeedge.arm64     # set up, print where things are

`setup_app` adds what the staged phone folder's Kivy app needs (animeedge/phone_arm64.py):

    mesa/           Mesa's EGL/GL and llvmpipe (Debian arm64 packages the rootfs lacks),
                    found through app_env's LD_LIBRARY_PATH and friends
    site-app/       the aarch64 wheels of Kivy, OpenCV, Pillow, ... (second PYTHONPATH entry)

Give the guest host paths whose top folder is not in the rootfs (/work/..., not /tmp/...):
under /tmp, realpath() walks into the prefix's links and comes out wrong (cv2 fails to import).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from animeedge.runtimes.atomic import atomic_dir, write_text
from animeedge.runtimes.errors import UserError

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "arm64"
QEMU = "qemu-aarch64-static"
WORKER = Path(__file__).resolve().parent.parent / "runtimes" / "arm64_worker.py"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# minbase already brings the last three (apt needs them); named because the wheels load them
DEBS = ("python3.11", "libstdc++6", "libgcc-s1", "zlib1g")
# What the worker loads: the wheels' other requirements (flatbuffers, protobuf, ...) are never imported by it
WHEELS = ("numpy", "onnxruntime", "ai-edge-litert")
GLIBC_MINOR = 36  # bookworm's glibc 2.36 runs any manylinux_2_17 .. manylinux_2_36 wheel

ARMV8_0 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
ARMV8_2 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
MAX = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
       "sha3 sm3 sm4 asimddp sha512 sve asimdfhm ilrcpc flagm sb paca pacg dcpodp sve2 sveaes svepmull svebitperm "
       "svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 i8mm bf16 rng bti mte sme sme_i16i64 "
       "sme_f64f64 sme_i8i32 sme_f16f32 sme_b16f32 sme_f32f32 sme_fa64")
# model: (implementer, variant, part, revision, features). MIDR fields and features as qemu
# 7.2 reports them to the guest (MIDR_EL1, AT_HWCAP/AT_HWCAP2), plus evtstrm, which a real
# kernel shows and qemu-user does not.
CPUINFO = {
    "cortex-a35": (0x41, 1, 0xd04, 0, ARMV8_0),
    "cortex-a53": (0x41, 0, 0xd03, 4, ARMV8_0),
    "cortex-a57": (0x41, 1, 0xd07, 0, ARMV8_0),
    "cortex-a72": (0x41, 0, 0xd08, 3, ARMV8_0),
    "cortex-a76": (0x41, 4, 0xd0b, 1, ARMV8_2),
    "neoverse-n1": (0x41, 4, 0xd0c, 1, ARMV8_2),
    "max": (0x00, 0, 0x051, 0, MAX),  # qemu's own: SVE and SME, for experiments only
}
CPUS = tuple(model for model in CPUINFO if model != "max")


class EmulationUnavailable(UserError):
    """qemu or the set-up this module builds is missing."""


def _install_tools():
    missing = [pkg for tool, pkg in ((QEMU, "qemu-user-static"), ("debootstrap", "debootstrap"))
               if not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], check=True)


def _unpack_deb(deb: Path, dest: Path):
    # dpkg-deb -x would replace the merged-/usr links (lib -> usr/lib, ...) by folders
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "--keep-directory-symlink", "-C", str(dest)], input=tar, check=True)


def _build_rootfs(rootfs: Path):
    """debootstrap's first stage only (it needs no arm64 code), then every downloaded .deb
    unpacked on top: python3.11 runs without any maintainer script."""
    with atomic_dir(rootfs) as tmp:
        subprocess.run(["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase", f"--include={','.join(DEBS)}",
                        SUITE, str(tmp), MIRROR], check=True)
        for deb in sorted((tmp / "var/cache/apt/archives").glob("*.deb")):
            _unpack_deb(deb, tmp)


def _pins(names) -> dict:
    """The installed version of each distribution, to fetch the same for aarch64."""
    try:
        return {name: metadata.version(name) for name in names}
    except metadata.PackageNotFoundError as exc:
        raise EmulationUnavailable(f"{exc.name} is not installed here: pip install -e '.[app]'") from None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _site_current(site: Path, names) -> bool:
    """`site` holds exactly the installed versions of `names`."""
    found = {_normalized(d.metadata["Name"]): d.version for d in metadata.distributions(path=[str(site)])}
    return site.is_dir() and all(found.get(_normalized(n)) == v for n, v in _pins(names).items())


def _unzip_wheels(pins: dict, site: Path):
    """The aarch64 wheels of exactly these versions, unzipped into `site` (atomically)."""
    platforms = [arg for minor in range(17, GLIBC_MINOR + 1) for arg in ("--platform", f"manylinux_2_{minor}_aarch64")]
    with atomic_dir(site) as tmp, tempfile.TemporaryDirectory() as wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", *platforms,
                        "--platform", "manylinux2014_aarch64", "--python-version", "3.11", "--implementation", "cp",
                        "--abi", "cp311", "-d", wheels, *(f"{name}=={version}" for name, version in pins.items())],
                       check=True)
        for wheel in Path(wheels).glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(tmp)


def cpuinfo_text(model: str, processors: int) -> str:
    implementer, variant, part, revision, features = CPUINFO[model]
    entry = (f"BogoMIPS\t: 50.00\nFeatures\t: {features}\nCPU implementer\t: {implementer:#04x}\n"
             f"CPU architecture: 8\nCPU variant\t: {variant:#x}\nCPU part\t: {part:#05x}\n"
             f"CPU revision\t: {revision}\n\n")
    return "".join(f"processor\t: {n}\n{entry}" for n in range(processors))


def _write_cpuinfo(cache: Path):
    for model in CPUINFO:
        path, text = cache / "cpuinfo" / model, cpuinfo_text(model, os.cpu_count() or 1)
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)


def _build_prefix(cache: Path, model: str):
    with atomic_dir(cache / "prefix" / model) as tmp:
        for entry in (cache / "rootfs").iterdir():
            if entry.name != "proc":
                (tmp / entry.name).symlink_to(Path("../../rootfs") / entry.name)
        (tmp / "proc").mkdir()
        (tmp / "proc" / "cpuinfo").symlink_to(Path("../../../cpuinfo") / model)


def setup(cache=CACHE) -> Path:
    """Build what run_emulated needs; each stage is skipped when its result is there."""
    cache = Path(cache)
    _install_tools()
    if not (cache / "rootfs").is_dir():
        _build_rootfs(cache / "rootfs")
    if not _site_current(cache / "site", WHEELS):
        _unzip_wheels(_pins(WHEELS), cache / "site")
    _write_cpuinfo(cache)
    for model in CPUINFO:
        if not (cache / "prefix" / model).is_dir():
            _build_prefix(cache, model)
    return cache


# The phone folder's app on the emulated Python: Kivy draws with SDL's offscreen driver on Mesa's
# software GL (../shared/notes/kivy-headless.md). libmtdev1 only silences Kivy's touch probe.
APP_DEBS = ("libegl1", "libegl-mesa0", "libgl1-mesa-dri", "libgl1", "libmtdev1")
# What the phone folder imports beyond WHEELS; filetype is the one Kivy requirement its import needs
APP_WHEELS = ("kivy", "opencv-python-headless", "pillow", "fastjsonschema", "filetype")


def _build_mesa(cache: Path):
    """A second debootstrap, download only (it resolves the dependencies), then only the
    packages the rootfs lacks unpacked into their own folder: the rootfs stays as built."""
    have = {deb.name.split("_")[0] for deb in (cache / "rootfs/var/cache/apt/archives").glob("*.deb")}
    if not have:
        raise EmulationUnavailable(f"{cache / 'rootfs'} keeps no .debs: remove it and run `make arm64` again")
    with atomic_dir(cache / "mesa") as tmp, tempfile.TemporaryDirectory(dir=cache) as download:
        subprocess.run(["debootstrap", "--download-only", "--arch=arm64", "--variant=minbase",
                        f"--include={','.join(DEBS + APP_DEBS)}", SUITE, download, MIRROR], check=True)
        for deb in sorted(Path(download, "var/cache/apt/archives").glob("*.deb")):
            if deb.name.split("_")[0] not in have:
                _unpack_deb(deb, tmp)


def setup_app(cache=CACHE) -> Path:
    """setup, plus Mesa and the app's wheels (the host's versions); each stage skipped when there."""
    cache = setup(cache)
    if not (cache / "mesa").is_dir():
        _build_mesa(cache)
    if not _site_current(cache / "site-app", APP_WHEELS):
        _unzip_wheels(_pins(APP_WHEELS), cache / "site-app")
    return cache


def app_ready(cache=CACHE) -> bool:
    cache = Path(cache)
    return (cache / "mesa").is_dir() and _site_current(cache / "site-app", APP_WHEELS)


def app_env(cache=CACHE) -> dict:
    """The guest environment that finds Mesa in cache/mesa (PYTHONPATH: add cache/site-app)."""
    mesa = Path(cache).resolve() / "mesa"
    lib = mesa / "usr/lib/aarch64-linux-gnu"
    return {"LD_LIBRARY_PATH": str(lib), "LIBGL_DRIVERS_PATH": str(lib / "dri"),
            "__EGL_VENDOR_LIBRARY_DIRS": str(mesa / "usr/share/glvnd/egl_vendor.d")}


def emulated_command(cpu: str, args, cache=CACHE) -> list[str]:
    """The command line that runs the aarch64 python3.11 on `cpu` ("MODEL[,qemu props]")."""
    model = cpu.split(",")[0]
    prefix = Path(cache).resolve() / "prefix" / model
    if model not in CPUINFO:
        raise EmulationUnavailable(f"unknown ARM CPU model {model!r}: one of {', '.join(CPUINFO)}")
    qemu = shutil.which(QEMU)
    if not qemu:
        raise EmulationUnavailable(f"{QEMU} not found: run `make arm64` (python -m animeedge.arm64) first")
    if not (prefix / "usr/bin/python3.11").is_file() or not _site_current(Path(cache) / "site", WHEELS):
        raise EmulationUnavailable(f"no ARM64 set-up for {model} under {cache}: run `make arm64` first")
    return [qemu, "-L", str(prefix), "-cpu", cpu, str(prefix / "usr/bin/python3.11"), "-s", *map(str, args)]


def _pythonpath(cache, paths=()) -> str:
    return os.pathsep.join(map(str, [Path(cache).resolve() / "site", *paths]))


def run_emulated(cpu: str, args, cache=CACHE, timeout=None, paths=(), env=None,
                 cwd=None) -> subprocess.CompletedProcess:
    """Run the aarch64 python3.11 with `args` on `cpu`, PYTHONPATH = the site folder + `paths`,
    plus the variables in `env`; the host's display and Python home are not passed on."""
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "DISPLAY", "WAYLAND_DISPLAY")}
    full |= (env or {}) | {"PYTHONPATH": _pythonpath(cache, paths)}
    return subprocess.run(emulated_command(cpu, args, cache), env=full, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def main():
    cache = setup_app().resolve()
    print(f"qemu:     {shutil.which(QEMU)}")
    print(f"rootfs:   {cache / 'rootfs'} (Debian {SUITE} arm64)")
    print(f"site:     {cache / 'site'} ({', '.join(f'{n} {v}' for n, v in _pins(WHEELS).items())})")
    print(f"cpuinfo:  {cache / 'cpuinfo'}/{{{','.join(CPUINFO)}}}")
    print(f"prefixes: {cache / 'prefix'}/MODEL (qemu -L)")
    print(f"CPUs:     {', '.join(CPUS)} (and max, with SVE and SME: for experiments only)")
    print("run:      PYTHONPATH=" + _pythonpath(cache), *emulated_command(CPUS[0], [WORKER, "JOB.json"], cache))


if __name__ == "__main__":
    main()
