"""COPY INTO <location> file names (stage-semantics.md §1.5) and the checks on the naming options."""

from __future__ import annotations

from dataclasses import dataclass

from stages.errors import StageError


def file_namer(location_path: str, extension: str, *, query_id: str, include_query_id: bool) -> FileNamer:
    """``''``, ``'a'`` and ``'a/'`` mean a folder; a last segment ending in ``_`` is a name prefix."""
    path = location_path.lstrip("/")
    if path.endswith("_"):
        base = path
    else:
        folder = path.rstrip("/")
        base = f"{folder}/data_" if folder else "data_"
    if include_query_id:
        base += f"{query_id}_"
    return FileNamer(base, extension)


@dataclass(frozen=True)
class FileNamer:
    """Names the files of one unload: ``<base><group:0000>_<batch:00000000><extension>``."""

    base: str
    extension: str

    def name(self, batch: int, group: int = 0) -> str:
        return f"{self.base}{group:04d}_{batch:08d}{self.extension}"


def check_modes(
    location_path: str, *, single: bool, overwrite: bool, use_raw_path: bool, include_query_id: bool
) -> None:
    """Refuse the SINGLE / USE_RAW_PATH / OVERWRITE / INCLUDE_QUERY_ID mixes Databend refuses."""
    if use_raw_path and not single:
        raise StageError("USE_RAW_PATH=TRUE requires SINGLE=TRUE")
    if use_raw_path and (not location_path.strip("/") or location_path.endswith("/")):
        raise StageError("USE_RAW_PATH=TRUE requires a file path, not a folder")
    if overwrite and not (use_raw_path and not include_query_id):
        raise StageError("OVERWRITE=TRUE requires USE_RAW_PATH=TRUE and INCLUDE_QUERY_ID=FALSE")


def stage_key(stage_prefix: str, name: str) -> str:
    """The storage key of ``name`` (relative to the stage root) under ``stage_prefix``."""
    if not stage_prefix:
        return name
    return stage_prefix if not name else f"{stage_prefix.rstrip('/')}/{name}"
