"""One engine, two drivers.

The engines (workflow, supervisor) are written as generators that *yield effects* (call a
user function, save a snapshot, sleep, run children concurrently) and receive the outcome.
:func:`run_sync` performs effects in the calling thread (parallel children in threads);
:func:`run_async` performs them on the running event loop (parallel children as tasks).
So ``execute`` and ``aexecute`` share every line of engine logic, and the ORM store is
called from the caller's own thread in sync mode, as Django expects.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .cancel import CancelToken

logger = logging.getLogger("warlock_ai.engine")

Engine = Generator[Any, Any, Any]


class Call:
    """Call ``fn(*args)``; an awaitable result is awaited.

    With ``offload`` (step bodies), a plain function runs in a worker thread under the async
    driver so it may block or use the Django ORM without stalling the event loop.
    """

    __slots__ = ("args", "fn", "offload")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), offload: bool = False):
        self.fn = fn
        self.args = args
        self.offload = offload


class CallEither:
    """Call ``sync_fn`` under the sync driver and ``async_fn`` under the async driver.

    Without an ``async_fn`` the async driver runs ``sync_fn`` in a worker thread.
    """

    __slots__ = ("args", "async_fn", "kwargs", "sync_fn")

    def __init__(
        self,
        sync_fn: Callable[..., Any],
        async_fn: Callable[..., Awaitable[Any]] | None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.sync_fn = sync_fn
        self.async_fn = async_fn
        self.args = args
        self.kwargs = kwargs or {}


class Emit:
    """Run event handlers in order; a failing handler is logged and swallowed."""

    __slots__ = ("handlers", "payload")

    def __init__(
        self, handlers: Sequence[Callable[[dict[str, Any]], Any]], payload: dict[str, Any]
    ):
        self.handlers = handlers
        self.payload = payload


class Save:
    """``store.save(snapshot, claim=claim)`` / ``await store.asave(snapshot, claim=claim)``.

    Yields back the exception when the write failed, else what the store returned (a
    ``CancelRequest`` when an operator asked to cancel the run, usually None).
    """

    __slots__ = ("claim", "snapshot", "store")

    def __init__(self, store: Any, snapshot: Any, claim: Any = None):
        self.store = store
        self.snapshot = snapshot
        self.claim = claim


class Sleep:
    """Sleep ``seconds``, woken early by cancellation; yields back True when cancelled."""

    __slots__ = ("seconds", "token")

    def __init__(self, seconds: float, token: CancelToken | None):
        self.seconds = seconds
        self.token = token


class Gather:
    """Drive several engines concurrently; yields back their results in order.

    An engine that raised contributes its exception object to the list (all engines settle
    before the list is returned).
    """

    __slots__ = ("engines",)

    def __init__(self, engines: Sequence[Engine]):
        self.engines = engines


# --- the sync driver --------------------------------------------------------------------


class _SyncRunner:
    """Performs effects in the calling thread; owns one lazy event loop for async callables."""

    __slots__ = ("_loop",)

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def run(self, engine: Engine) -> Any:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = engine.throw(error) if error is not None else engine.send(value)
                except StopIteration as stop:
                    return stop.value
                value = error = None
                try:
                    value = self.perform(effect)
                except BaseException as exc:  # KeyboardInterrupt too: the engine releases
                    error = exc  # its lease on the way out
        finally:
            if self._loop is not None:
                self._loop.close()
                self._loop = None

    def perform(self, effect: Any) -> Any:
        kind = type(effect)
        if kind is Call:
            result = effect.fn(*effect.args)
            return self.resolve(result) if inspect.isawaitable(result) else result
        if kind is Save:
            try:
                if effect.claim is None:  # a store that leases nothing may predate claims
                    return effect.store.save(effect.snapshot)
                return effect.store.save(effect.snapshot, claim=effect.claim)
            except Exception as exc:
                return exc
        if kind is Emit:
            for handler in effect.handlers:
                try:
                    result = handler(effect.payload)
                    if inspect.isawaitable(result):
                        self.resolve(result)
                except Exception:
                    logger.exception("event handler for %s failed", effect.payload.get("event"))
            return None
        if kind is CallEither:
            return effect.sync_fn(*effect.args, **effect.kwargs)
        if kind is Sleep:
            if effect.token is None:
                threading.Event().wait(effect.seconds)
                return False
            return effect.token.wait(effect.seconds)
        if kind is Gather:
            return self.gather(effect.engines)
        raise TypeError(f"unknown effect {effect!r}")

    def resolve(self, awaitable: Any) -> Any:
        """Run an awaitable to completion from sync code."""

        async def wrapper() -> Any:
            return await awaitable

        if _running_loop() is not None:
            # Called from inside an event loop's thread: run it on a private loop elsewhere.
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(asyncio.run, wrapper()).result()
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(wrapper())

    @staticmethod
    def gather(engines: Sequence[Engine]) -> list[Any]:
        if len(engines) <= 1:
            return [_settle_sync(e) for e in engines]
        with ThreadPoolExecutor(max_workers=len(engines), thread_name_prefix="warlock") as pool:
            # Each child sees the caller's context variables, as asyncio tasks do.
            futures = [
                pool.submit(contextvars.copy_context().run, _settle_in_worker, engine)
                for engine in engines
            ]
            return [future.result() for future in futures]


#: Called in each worker thread the sync driver started, when its engine is done. The Django
#: app registers a function closing that thread's database connections.
worker_thread_exit_hooks: list[Callable[[], Any]] = []


def _settle_sync(engine: Engine) -> Any:
    try:
        return _SyncRunner().run(engine)
    except Exception as exc:
        return exc


def _settle_in_worker(engine: Engine) -> Any:
    """``_settle_sync`` in a pool thread of ours, then release that thread's resources."""
    try:
        return _settle_sync(engine)
    finally:
        for hook in worker_thread_exit_hooks:
            try:
                hook()
            except Exception:
                logger.exception("worker thread exit hook %r failed", hook)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def run_sync(engine: Engine) -> Any:
    """Drive ``engine`` to completion in this thread and return its result."""
    return _SyncRunner().run(engine)


# --- the async driver -------------------------------------------------------------------


async def run_async(engine: Engine) -> Any:
    """Drive ``engine`` to completion on the running event loop and return its result."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = engine.throw(error) if error is not None else engine.send(value)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            value = await _perform_async(effect)
        except BaseException as exc:  # a cancelled task too: the engine releases its lease
            error = exc


async def _perform_async(effect: Any) -> Any:
    kind = type(effect)
    if kind is Call:
        fn = effect.fn
        if effect.offload and not inspect.iscoroutinefunction(fn):
            result = await asyncio.to_thread(fn, *effect.args)
        else:
            result = fn(*effect.args)
        return (await result) if inspect.isawaitable(result) else result
    if kind is Save:
        try:
            if effect.claim is None:
                return await effect.store.asave(effect.snapshot)
            return await effect.store.asave(effect.snapshot, claim=effect.claim)
        except Exception as exc:
            return exc
    if kind is Emit:
        for handler in effect.handlers:
            try:
                result = handler(effect.payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("event handler for %s failed", effect.payload.get("event"))
        return None
    if kind is CallEither:
        if effect.async_fn is None:
            return await asyncio.to_thread(effect.sync_fn, *effect.args, **effect.kwargs)
        return await effect.async_fn(*effect.args, **effect.kwargs)
    if kind is Sleep:
        if effect.token is None:
            await asyncio.sleep(effect.seconds)
            return False
        return await effect.token.async_wait(effect.seconds)
    if kind is Gather:
        return await asyncio.gather(*(_settle_async(e) for e in effect.engines))
    raise TypeError(f"unknown effect {effect!r}")


async def _settle_async(engine: Engine) -> Any:
    try:
        return await run_async(engine)
    except Exception as exc:
        return exc
