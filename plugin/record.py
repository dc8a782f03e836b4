"""The job parameters stored with a result group, so it can be re-run from itself.

Why stored: "Re-run portrait" must rebuild the original request from the group
alone — the painting, every knob, which layer it came from — after the artist
has edited the mask, saved the file and reopened it days later. Each editor
keeps this record in its own way (a GIMP parasite, a Krita annotation); the
record itself is one JSON text defined here, with a format version.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..protocol.request import JobParams

__all__ = ["JobRecord", "RecordError", "RECORD_FORMAT", "RECORD_NAME", "file_sha256"]

#: bump when a field changes meaning; readers accept older formats they know
RECORD_FORMAT = 1
#: the name hosts store the record under (parasite / annotation name)
RECORD_NAME = "portrait-style-job"


class RecordError(ValueError):
    """A stored record is missing, unreadable or from an unknown format."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (styles can be large scans)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class JobRecord:
    """What a result group remembers about the job that made it.

    style_path / style_sha256: the painting's file and its bytes' hash, so a
        re-run can tell the file was changed or moved.
    style_name: the readable name shown in the group's name.
    params: ``JobParams.as_dict()`` of the request (every knob the artist set).
    source_id / source_name: the host's id and the name of the layer stylized.
    engine / daemon_version / device: what produced the result (from the reply).
    """

    style_path: str
    style_sha256: str
    style_name: str
    params: dict[str, Any]
    source_id: str = ""
    source_name: str = ""
    engine: str = ""
    daemon_version: str = ""
    device: str = ""
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    plugin_version: str = __version__
    format: int = RECORD_FORMAT

    def job_params(self) -> JobParams:
        """The stored request parameters, checked as the daemon would check them."""
        raw = {k: v for k, v in self.params.items()
               if k in JobParams.__dataclass_fields__ and v is not None}
        if "outputs" in raw:
            raw["outputs"] = tuple(raw["outputs"])
        try:
            return JobParams(**raw).check()
        except Exception as exc:
            raise RecordError(f"the stored job parameters are not valid: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes | None) -> JobRecord:
        if not text:
            raise RecordError("this group has no portrait-style job record")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RecordError(f"the job record is not valid JSON: {exc}") from None
        found = data.get("format") if isinstance(data, dict) else None
        if found != RECORD_FORMAT:
            raise RecordError(f"unknown job record format {found!r}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            return cls(**known)
        except TypeError as exc:
            raise RecordError(f"the job record is incomplete: {exc}") from None
