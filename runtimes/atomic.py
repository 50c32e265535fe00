"""Write files and folders under a temporary name and rename them into place, so a crash
or an error never leaves a half-written output and never clobbers an existing file early.

Temporary names are short whatever the final name's length (a 244-character name must
still fit the file system's 255) and say whose they are: `.<first 32 characters>.<hash of
the full name>.<pid>.<random>.tmp`. A process killed mid-write (SIGKILL runs no cleanup)
leaves one behind; the next write to the same place removes those whose process is gone."""
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _owner_prefix(final: Path) -> str:
    """What every temporary name for `final` starts with, before the pid."""
    digest = hashlib.sha1(final.name.encode(errors="surrogateescape")).hexdigest()[:8]
    return f".{final.name[:32]}.{digest}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(final: Path) -> list[Path]:
    """Remove the temporary files and folders left for `final` by processes that died."""
    prefix, removed = _owner_prefix(final), []
    if not final.parent.is_dir():
        return removed
    for entry in final.parent.iterdir():
        pid = entry.name[len(prefix):].partition(".")[0]
        if entry.name.startswith(prefix) and ".tmp" in entry.name and pid.isdigit() and not _alive(int(pid)):
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


@contextlib.contextmanager
def atomic_dir(final):
    """Like atomic_path for a folder: filled under a temporary name, then renamed."""
    final = Path(final)
    tmp = Path(tempfile.mkdtemp(**_temp_args(final, "")))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path, text: str):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
