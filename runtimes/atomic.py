"""Write files and folders under a temporary name and rename them into place, so a crash
or an error never leaves a half-written output and never clobbers an existing file early.

Temporary names are short whatever the final name's length (a 244-character name must
still fit the file system's 255) and say whose they are: `.<first 32 characters>.<hash of
the full name>.<pid>.<random>.tmp`. A process killed mid-write (SIGKILL runs no cleanup)
leaves one behind; the next write into the same folder removes every such entry whose
process is gone, whatever it was writing."""
import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

_TEMP_NAME = re.compile(r"\.(?P<name>.{0,32})\.(?P<digest>[0-9a-f]{8})\.(?P<pid>\d+)\.[a-z0-9_]+\.tmp.*", re.DOTALL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode(errors="surrogateescape")).hexdigest()[:8]


def _owner_prefix(final: Path) -> str:
    """What every temporary name for `final` starts with, before the pid."""
    return f".{final.name[:32]}.{_digest(final.name)}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def is_temporary(name: str) -> bool:
    """Whether `name` is one of this tool's temporary names (a write in progress, or one a
    killed process left): never an input, whatever its extension."""
    return _TEMP_NAME.fullmatch(name) is not None


def _stale(name: str) -> bool:
    """A temporary name of this tool whose process is gone (a name shorter than 32
    characters is whole in it, so its hash must match too)."""
    m = _TEMP_NAME.fullmatch(name)
    if m is None or (len(m["name"]) < 32 and _digest(m["name"]) != m["digest"]):
        return False
    return not _alive(int(m["pid"]))


def remove_stale(final: Path) -> list[Path]:
    """Remove the temporary files and folders that dead processes left in `final`'s folder."""
    folder, removed = Path(final).parent, []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if _stale(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _temp_args(final: Path, suffix: str) -> dict:
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    return {"prefix": f"{_owner_prefix(final)}{os.getpid()}.", "suffix": f".tmp{suffix}", "dir": final.parent}


@contextlib.contextmanager
def atomic_path(final, suffix: str | None = None):
    """Yield a temporary path next to `final` (same extension, so writers that pick a
    format from the name still work); rename it onto `final` if the block succeeds."""
    final = Path(final)
    fd, tmp = tempfile.mkstemp(**_temp_args(final, final.suffix if suffix is None else suffix))
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _swap_in(tmp: Path, final: Path):
    """Rename `tmp` onto the folder `final`: the old one is renamed aside first and deleted
    only once the new one is in place (put back if that fails)."""
    if not os.path.lexists(final):
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(**_temp_args(final, ".old")))
    os.replace(final, old)  # a folder may be renamed onto an empty one
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(final, replaceable=None):
    """Like atomic_path for a folder: filled under a temporary name, then swapped in.
    `replaceable(final)`, if given, is called just before an existing `final` is replaced
    and may refuse it by raising (the new folder is then discarded)."""
    final = Path(final)
    tmp = Path(tempfile.mkdtemp(**_temp_args(final, "")))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if replaceable is not None and os.path.lexists(final):
            replaceable(final)
        _swap_in(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path, text: str):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
