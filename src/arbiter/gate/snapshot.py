"""Holdout snapshots: the exact rows a gate scored, stored by the hash of their content.

``HOME/snapshots/<sha256>.parquet``: the name is the SHA-256 of the file's bytes, so a gate
result that names a snapshot names its data, and the same holdout gated twice is stored once.
Files are written to a temporary name, fsynced and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from arbiter.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

SNAPSHOT_DIR = "snapshots"


def snapshot_bytes(frame: pd.DataFrame) -> bytes:
    """The Parquet bytes of ``frame`` (index dropped): deterministic for equal frames."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError("the holdout must be a pandas DataFrame", field="holdout")
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def write_snapshot(home: str | os.PathLike[str], frame: pd.DataFrame) -> tuple[Path, str]:
    """Store ``frame`` under ``HOME/snapshots/<sha256>.parquet``; return ``(path, sha256)``.

    An existing snapshot with the same content is reused, not rewritten.
    """
    data = snapshot_bytes(frame)
    digest = hashlib.sha256(data).hexdigest()
    folder = Path(home) / SNAPSHOT_DIR
    path = folder / f"{digest}.parquet"
    if path.exists():
        return path, digest
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest


def read_snapshot(home: str | os.PathLike[str], sha256: str) -> pd.DataFrame:
    """Load the snapshot ``sha256`` of a home."""
    import pandas as pd

    path = Path(home) / SNAPSHOT_DIR / f"{sha256}.parquet"
    if not path.exists():
        raise NotFoundError(f"no snapshot {sha256} in {path.parent}")
    return pd.read_parquet(path)


__all__ = ["SNAPSHOT_DIR", "read_snapshot", "snapshot_bytes", "write_snapshot"]
