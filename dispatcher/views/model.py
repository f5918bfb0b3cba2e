"""What every read model is: a frozen pydantic model written out with the API's JSON names."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ReadModel(BaseModel):
    """A response body: frozen, unknown fields refused, written with its JSON names."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The body as JSON values, with the names the API has always used."""
        return self.model_dump(mode="json", by_alias=True)
