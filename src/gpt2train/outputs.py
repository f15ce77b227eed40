"""Outputs the user names (``-o``): checked before any work, and an OS error while writing them turned into the
one-line error that names the path, for every command alike."""

from __future__ import annotations

import contextlib
import os

from gpt2train.errors import UserError


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def check_writable(path: str, flag: str = "-o", directory: bool | None = True) -> None:
    """Raise a UserError unless ``path`` (a directory, a file when ``directory`` is False, either when None) can
    be made or written: it or its nearest existing parent must be a writable directory (a read-only file system
    fails os.access even for root)."""
    path = str(path)
    what = {True: "directory", False: "file", None: "path"}[directory]
    if os.path.exists(path):
        if directory and not os.path.isdir(path):
            raise UserError(f"{flag} {path}: exists and is not a directory; choose another output {what}")
        if directory is False and os.path.isdir(path):
            raise UserError(f"{flag} {path}: is a directory; name an output file")
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise UserError(f"{flag} {path}: {base} is a file, not a directory; choose another output {what}")
    target = path if os.path.exists(path) else base
    if not os.access(target, os.W_OK | (os.X_OK if os.path.isdir(target) else 0)):
        raise UserError(f"{flag} {path}: {target} is not writable (read-only or no permission); choose a writable "
                        f"output {what}")  # fmt: skip


def _inside(filename, root: str, directory: bool | None) -> bool:
    """Whether ``filename`` is the output ``root``, inside it, or (an output file) its temp file beside it."""
    if not filename:
        return False
    filename, root = os.path.abspath(os.fsdecode(filename)), os.path.abspath(root)
    if directory is False or (directory is None and not os.path.isdir(root)):
        return filename.startswith(root)  # model.bin.tmp, renamed to model.bin when complete
    return filename == root or filename.startswith(root.rstrip(os.sep) + os.sep)


@contextlib.contextmanager
def writing_output(path, flag: str = "-o", directory: bool | None = True):
    """Check ``path`` as check_writable does, then run the block; an OSError on a file inside ``path`` (disk
    full, read-only file system...) becomes a UserError naming it. Errors on other files (the inputs) pass.
    No ``path`` (the command's default place): nothing is checked."""
    if not path:
        yield
        return
    path = str(path)
    check_writable(path, flag, directory)
    try:
        yield
    except OSError as e:
        name = getattr(e, "filename", None)
        if not (_inside(name, path, directory) or _inside(getattr(e, "filename2", None), path, directory)):
            raise
        reason = e.strerror or str(e)
        raise UserError(f"{flag} {path}: cannot write {os.fsdecode(name)} ({reason}); free space or choose "
                        "a writable output path (files written before it are kept)") from None  # fmt: skip
