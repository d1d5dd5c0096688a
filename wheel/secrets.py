"""Channel credentials, looked up by reference: from the environment or a secrets file.

A channel row stores only the reference (say `tatacliq-ua`); the secret is the environment
variable `WHEEL_SECRET_TATACLIQ_UA`, or else the file `<secrets dir>/tatacliq-ua`. Secrets never
reach the database, a log line, an event or an alert.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SecretNotFound(LookupError):
    pass


@dataclass(frozen=True)
class SecretStore:
    environ: Mapping[str, str]
    secrets_dir: Path

    @staticmethod
    def env_name(ref: str) -> str:
        return "WHEEL_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", ref).upper()

    def get(self, ref: str) -> str:
        if not ref or "/" in ref or ref.startswith("."):
            raise SecretNotFound(f"credentials reference {ref!r} must be a plain name (not empty, no '/', no leading '.')")
        value = (self.environ.get(self.env_name(ref)) or "").strip()
        if value:
            return value
        path = self.secrets_dir / ref
        try:
            value = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SecretNotFound(
                f"no secret for credentials reference {ref!r}: set {self.env_name(ref)} "
                f"or create the file {path}"
            ) from None
        if not value:
            raise SecretNotFound(f"the secret file {path} is empty")
        return value
