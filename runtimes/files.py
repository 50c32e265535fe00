"""The checks before the project opens a path it was given: an input must be a regular file
(a FIFO, a socket or a device would block or stream forever on open(), so nothing is opened
until `stat`, links followed as a user expects, says it is a plain file), and an output file
must be writable where it is to go, checked before a run rather than after it."""
import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import UserError

NAME_MAX = 255  # bytes in one file or folder name, on every common file system


def problem(path, what: str = "file") -> str | None:
    """Why `path` is not an existing regular file (after following links), or None."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a link to nothing" if os.path.islink(path) else "no such file"
    except (OSError, ValueError) as exc:  # too long a name, a file where a folder is expected, a NUL byte
        if getattr(exc, "errno", None) == errno.ELOOP:
            return "a loop of links that never reaches a file"
        return f"cannot read the {what} ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISDIR(mode):
        return f"is a folder, not a {what}"
    if not stat.S_ISREG(mode):
        return "not a regular file (a FIFO, socket or device); refused"
    return None


def regular_file(path, what: str = "file") -> Path:
    """`path` as a Path if it is an existing regular file (after following links); else a
    one-line UserError saying what it is instead."""
    why = problem(path, what)
    if why is not None:
        raise UserError(f"{path}: {why}")
    return Path(path)


def exists(path) -> bool:
    """Whether anything (a dangling link too) is at `path`. A name no file system takes (a
    part over NAME_MAX bytes, even under a missing folder) or that the system refuses to look
    up is a one-line UserError rather than an OSError."""
    if any(len(os.fsencode(part)) > NAME_MAX for part in Path(path).parts):
        raise UserError(f"{path}: a name in it is over {NAME_MAX} bytes, too long for a file system")
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    return True


def _creatable(folder: Path) -> bool:
    """Whether a missing folder could be made: a file can be made in its nearest existing parent."""
    parent = next(p for p in folder.parents if p.exists())
    return parent.is_dir() and _can_create_in(parent)


def check_writable_file(path):
    """Refused before a run, not after it: an output that is a folder, or in a folder that
    cannot be written or made."""
    if Path(path).is_dir():
        raise UserError(f"{path}: is a folder; give a file name")
    folder = Path(path).resolve().parent
    if not (_can_create_in(folder) if folder.exists() else _creatable(folder)):
        raise UserError(f"{path}: cannot write there")


def _can_create_in(folder: Path) -> bool:
    """A file can be made there: tried, as permissions alone do not say it (root, /proc,
    a read-only mount)."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False
