"""One registry per schema build: every generated type is made once, by its GraphQL name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strawberry.types.lazy_type import LazyType

from gateway.kernel.errors import CatalogError


class TypeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, Any] = {}
        self._origins: dict[str, str] = {}

    def add(self, name: str, cls: Any, origin: str) -> Any:
        if name in self._types:
            raise CatalogError(
                f"two types would be named {name}: {self._origins[name]} and {origin}"
            )
        definition = getattr(cls, "__strawberry_definition__", None)
        if definition is not None:
            definition.name = name  # as given: Strawberry would camel-case `cdm_company`
        self._types[name] = cls
        self._origins[name] = origin
        return cls

    def ref(self, name: str) -> Any:
        """A reference resolved when Strawberry converts the schema, so cycles are fine."""
        return TypeRef(name, "", None, self)

    def __getitem__(self, name: str) -> Any:
        return self._types[name]


@dataclass(frozen=True)
class TypeRef(LazyType[Any, Any]):
    # compared by identity, so references from two builds never resolve to each other
    registry: TypeRegistry | None = None

    def resolve_type(self) -> type[Any]:
        assert self.registry is not None
        resolved: type[Any] = self.registry[self.type_name]
        return resolved
