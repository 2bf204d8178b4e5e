"""Small artifacts (pictures, reports, model metadata) written next to the lakehouse:
a local (or FUSE) path directly, an object store through pyarrow.fs."""
from __future__ import annotations

import os
import shutil

from vistarank.udfs.images import local_path


def write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` (parent folders are created); returns ``path``."""
    local = local_path(path)
    if local is not None:
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        tmp = local + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, local)  # readers never see a half-written file
        return path
    from pyarrow import fs as pafs

    norm = path.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    filesystem, inner = pafs.FileSystem.from_uri(norm)
    filesystem.create_dir(os.path.dirname(inner), recursive=True)
    with filesystem.open_output_stream(inner) as fh:
        fh.write(data)
    return path


def read_text(path: str) -> str | None:
    """A small text file's content, or None if it does not exist."""
    local = local_path(path)
    if local is not None:
        if not os.path.exists(local):
            return None
        with open(local, encoding="utf-8") as fh:
            return fh.read()
    from pyarrow import fs as pafs

    norm = path.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    filesystem, inner = pafs.FileSystem.from_uri(norm)
    if filesystem.get_file_info(inner).type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(inner) as fh:
        return fh.read().decode("utf-8")


def remove_tree(path: str) -> None:
    """Delete a folder and everything under it (nothing if it does not exist)."""
    local = local_path(path)
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)
        return
    from pyarrow import fs as pafs

    norm = path.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    filesystem, inner = pafs.FileSystem.from_uri(norm)
    if filesystem.get_file_info(inner).type != pafs.FileType.NotFound:
        filesystem.delete_dir(inner)
