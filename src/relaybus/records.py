"""Record classes without :mod:`dataclasses`, for the modules the hook commands load
(:mod:`relaybus.identity`, :mod:`relaybus.profiles`, the hooks' own)."""

from __future__ import annotations


class Record:
    """A record class without :mod:`dataclasses`: equality and ``repr`` over the fields
    named in ``__slots__``, as a dataclass has them. The hook commands load their
    records on every call, and importing ``dataclasses`` costs each of them about
    14 ms of CPU (it imports ``inspect``, which imports ``ast``, ``dis``, ``tokenize``).
    Mutable records are unhashable, as a dataclass with ``eq`` is (a class that
    defines ``__eq__`` and no ``__hash__`` gets ``__hash__ = None``).
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def to_dict(self) -> dict[str, object]:
        """The fields as a dict, records in them as dicts too (``dataclasses.asdict``)."""
        return {
            name: value.to_dict() if isinstance(value, Record) else value
            for name, value in zip(self.__slots__, self._values(), strict=True)
        }


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__`` (which sets
    them with :meth:`_set`), hashable by its fields: a frozen dataclass."""

    __slots__ = ()

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __hash__(self) -> int:
        return hash(self._values())
