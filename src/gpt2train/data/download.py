"""One download helper: stream a URL to a temp file beside the target, check it, then rename atomically.

A failed, truncated or mismatching download never leaves a file at the target path (nor a temp file).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
from http.client import HTTPException, IncompleteRead
from pathlib import Path

from gpt2train.errors import UserError

CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``dest``; if ``sha256`` is given the file must have that hash.

    An existing ``dest`` with the right hash is kept without downloading. Raises UserError (naming the
    URL and what to do) on network errors, HTTP errors, a body shorter or longer than Content-Length,
    or a checksum mismatch.
    """
    dest = Path(dest)
    if dest.exists() and sha256 and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    received = 0
    try:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise UserError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", None) or e
            raise UserError(
                f"cannot download {url}: {reason}; check the network, or pass --source with a local copy"
            ) from None
        with resp, open(tmp, "wb") as f:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            try:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    h.update(block)
                    received += len(block)
            except (IncompleteRead, HTTPException, OSError) as e:
                raise UserError(
                    f"download of {url} broke off after {received} bytes"
                    f"{f' of {expected}' if expected else ''} ({type(e).__name__}); run the command again"
                ) from None
            if expected is not None and received != expected:
                raise UserError(
                    f"download of {url} is truncated: got {received} of {expected} bytes; run the command again"
                )
            f.flush()
            os.fsync(f.fileno())
        digest = h.hexdigest()
        if sha256 and digest != sha256:
            raise UserError(
                f"download of {url} has sha256 {digest}, expected {sha256}: "
                "the file changed or was corrupted; "
                "pass --source with a trusted local copy"
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    print(f"downloaded {url} -> {dest} ({received:,} bytes)", file=sys.stderr)
    return dest


def copy_atomic(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a local file to ``dest`` through a temp file and rename (no half-written ``dest``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as e:
        raise UserError(f"cannot copy {src} to {dest}: {e.strerror or e}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
