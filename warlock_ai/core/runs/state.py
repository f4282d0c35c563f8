"""A step's state, and the state's JSON kept by top-level key: what makes a step's cost
follow what it changed, not what the run carries.

``StepState`` is the dict a step attempt works on. It starts as the settled state's entries,
shared, not copied; the first time the attempt reaches a value that could be changed in
place (a dict or a list, through ``[]``, ``get``, ``setdefault``, ``pop``, ``items()``,
``values()``, ``copy()``, ``dict(state)``, ``{**state}``, ``json.dumps(state)`` ...), the value
is copied for this attempt and its key marked ``touched``. Assigning or deleting a key marks
it too. So a failed attempt leaves the settled state as it was (as a whole copy would), and
when the step settles only the touched keys are encoded again: a 1 MiB list the step never
reached costs nothing, and one it reached, even only to read it, is encoded again and written
only if its JSON changed (``ctx.state["rows"].append(x)`` is persisted).

What is not seen: a value changed through a reference kept *outside* the state from one step
to the next (a module global, an object another key also holds). Such a change was never
safe across a resume (the resumed run has its own copies); it is documented, not detected.

``StateEncoding`` is the state's JSON by top-level key. Each settle makes a new one from the
last, reusing the text of every untouched key; stores write the state either whole
(``json()``) or split (``split()``): keys whose JSON is at least ``EXTERNAL_BYTES`` long apart
from the rest, so that a store keeping them in rows of their own rewrites only those that
changed (``changed_since``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import SnapshotSerializationError
from .serialization import clone, dumps, key_json

#: A state key whose value's JSON is this many characters or more is stored apart from
#: the rest of the state by the stores that can (the ORM store's ``SnapshotValue`` rows).
EXTERNAL_BYTES = 8192
#: Keys longer than this always stay with the rest of the state.
MAX_EXTERNAL_KEY_LENGTH = 255

_SCALARS = (str, int, float, bool, type(None))
_get = dict.__getitem__
_set = dict.__setitem__
_MISSING: Any = object()


class StepState(dict[str, Any]):
    """The state of one step attempt: a ``dict`` that copies a value the first time the
    attempt reaches it (``own``: the keys whose value is the attempt's), and remembers which
    keys were reached or written since the state last settled (``touched``)."""

    __slots__ = ("own", "touched")

    def __init__(self, base: Any = ()) -> None:
        super().__init__(_entries(base) if isinstance(base, dict) else base)
        self.own: set[Any] = set()
        self.touched: set[Any] = set()

    @classmethod
    def over(cls, base: dict[str, Any]) -> StepState:
        """An attempt's state over the settled ``base``: nothing copied yet. Keys of a
        ``StepState`` base touched since it settled (by a router, say) stay touched."""
        state = cls.__new__(cls)
        dict.update(state, _entries(base))
        state.own = set()
        state.touched = set(base.touched) if isinstance(base, StepState) else set()
        return state

    def settled(self) -> None:
        """Its touched keys are encoded: what is touched from now on is new."""
        self.touched = set()

    def _reach(self, key: Any) -> Any:
        value = _get(self, key)
        if isinstance(value, _SCALARS):
            return value
        self.touched.add(key)  # reached: it may change in place, so it is encoded again
        if key not in self.own:
            value = clone(value)
            _set(self, key, value)
            self.own.add(key)
        return value

    def reach_all(self) -> None:
        """Copy every value not copied yet, and mark it (what handing them all out needs)."""
        own, touched = self.own, self.touched
        for key, value in dict.items(self):
            if not isinstance(value, _SCALARS):
                touched.add(key)
                if key not in own:
                    _set(self, key, clone(value))
                    own.add(key)

    # Reading: a value that can change in place is this attempt's own copy.
    def __getitem__(self, key: Any) -> Any:
        return self._reach(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._reach(key) if dict.__contains__(self, key) else default

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._reach(key)
        self[key] = default
        return default

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        if dict.__contains__(self, key):
            value = self._reach(key)
            self.__delitem__(key)
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[Any, Any]:
        if not self:
            raise KeyError("popitem(): dictionary is empty")
        key = next(reversed(dict.keys(self)))
        return key, self.pop(key)

    def items(self) -> Any:
        self.reach_all()
        return dict.items(self)

    def values(self) -> Any:
        self.reach_all()
        return dict.values(self)

    def __iter__(self) -> Iterator[Any]:
        # Defined so that dict(state), {**state} and f(**state) read values through
        # __getitem__ (CPython copies a dict subclass's entries directly only when it keeps
        # dict's own __iter__).
        return dict.__iter__(self)

    def copy(self) -> dict[str, Any]:
        self.reach_all()
        return _entries(self)

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.copy(), memo)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (dict, (self.copy(),))

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        merged = dict(other)
        merged.update(self.copy())
        return merged

    # Writing: the key is this attempt's.
    def __setitem__(self, key: Any, value: Any) -> None:
        _set(self, key, value)
        self.own.add(key)
        self.touched.add(key)

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self.touched.add(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> StepState:  # type: ignore[override]
        self.update(other)
        return self

    def clear(self) -> None:
        self.touched.update(dict.keys(self))
        dict.clear(self)
        self.own.clear()


def _entries(state: dict[str, Any]) -> dict[str, Any]:
    """A plain dict of ``state``'s entries as they are. (``dict.copy`` and ``dict(state)``
    of a dict subclass that defines ``__iter__`` read each value through ``__getitem__``;
    iterating ``dict.items`` does not.)"""
    return dict(dict.items(state))


def own_items(state: dict[str, Any]) -> Iterable[tuple[Any, Any]]:
    """The entries of ``state`` as they are, without copying anything (engine use)."""
    return dict.items(state)


def changed_items(state: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The entries of a step's ``state`` that differ from ``base`` (new keys and changed
    values; a removed key is not an entry): only touched keys are compared."""
    keys: Iterable[Any] = state.touched if isinstance(state, StepState) else dict.keys(state)
    changed = {}
    for key in keys:
        value = dict.get(state, key, _MISSING)
        if value is _MISSING:
            continue
        before = dict.get(base, key, _MISSING)
        if before is _MISSING or (before is not value and before != value):
            changed[key] = value
    return changed


class StateEncoding:
    """The JSON of a state, by top-level key: ``texts`` maps each key to its value's JSON.

    Immutable once made. ``updated()`` makes the next one reusing the text of every key the
    step did not touch (the same ``str`` object: a store compares by identity first).
    """

    __slots__ = ("_json", "_split", "texts")

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self._json: str | None = None
        self._split: tuple[str, dict[str, str]] | None = None

    @classmethod
    def of(cls, state: dict[str, Any]) -> StateEncoding:
        """Encode every key of ``state``; ``SnapshotSerializationError`` names a bad path."""
        try:
            return cls({_key(key): dumps(value) for key, value in own_items(state)})
        except SnapshotSerializationError:
            raise _whole_state_error(state) from None

    def updated(self, state: dict[str, Any]) -> StateEncoding:
        """The encoding of ``state``, a step's result over the state this one encodes:
        only the keys it touched (or all, when it is not a ``StepState``) are encoded."""
        if not isinstance(state, StepState):
            return StateEncoding.of(state)
        touched, previous = state.touched, self.texts
        if not touched and len(previous) == len(state):
            return self
        texts = {}
        try:
            for key, value in own_items(state):
                text = previous.get(key) if key not in touched else None
                if text is None:  # touched, or new: its key and its value are checked
                    _key(key)
                    text = dumps(value)
                texts[key] = text
        except SnapshotSerializationError:
            raise _whole_state_error(state) from None
        return StateEncoding(texts)

    def json(self) -> str:
        """The whole state as one JSON object."""
        text = self._json
        if text is None:
            text = self._json = _object(self.texts.items())
        return text

    def split(self) -> tuple[str, dict[str, str]]:
        """``(JSON object of the keys kept together, {key: JSON} of the keys stored apart)``:
        apart, each key whose JSON is at least ``EXTERNAL_BYTES`` long (and whose name is
        at most ``MAX_EXTERNAL_KEY_LENGTH``)."""
        split = self._split
        if split is None:
            apart = {
                k: v
                for k, v in self.texts.items()
                if len(v) >= EXTERNAL_BYTES and len(k) <= MAX_EXTERNAL_KEY_LENGTH
            }
            if not apart:
                split = (self.json(), apart)
            else:
                kept = ((k, v) for k, v in self.texts.items() if k not in apart)
                split = (_object(kept), apart)
            self._split = split
        return split

    def changed_since(self, base: StateEncoding | None) -> dict[str, str] | None:
        """The keys stored apart whose JSON differs from ``base``'s (all of them without a
        base; possibly none, when only a key stopped being stored apart); None when there is
        nothing to write apart: nothing is stored apart, or nothing of it changed."""
        apart = self.split()[1]
        if not apart:
            return None
        if base is None:
            return apart
        before = base.split()[1]
        changed = {k: v for k, v in apart.items() if (old := before.get(k)) is not v and old != v}
        if changed or before.keys() != apart.keys():
            return changed
        return None


def _key(key: Any) -> str:
    """``key``, checked: a string that can be stored (else ``SnapshotSerializationError``;
    the caller then raises the whole state's error, which names it)."""
    if not isinstance(key, str):
        raise SnapshotSerializationError("state key is not a string")
    key_json(key)  # a key that cannot be stored fails here, not when the state is joined
    return key


def _object(members: Iterable[tuple[str, str]]) -> str:
    """A JSON object of already encoded values."""
    return "{" + ",".join(f"{key_json(k)}:{v}" for k, v in members) + "}"


def _whole_state_error(state: dict[str, Any]) -> SnapshotSerializationError:
    """The error encoding the whole state gives (its path and wording), raised per key."""
    try:
        dumps(dict(own_items(state)), path="state")
    except SnapshotSerializationError as exc:
        return exc
    return SnapshotSerializationError("snapshot is not JSON: state: cannot be encoded")
