"""LangGraph's ``PostgresSaver``, as one worker of ``bench/peers/run.py`` (``.bench/peers-venv``).

``python bench/peers/langgraph_worker.py URL`` (URL: an empty PostgreSQL database;
``saver.setup()`` creates the tables). Contender ``langgraph``: a ``StateGraph`` of two
channels, ``rows`` and ``counter``, and 11 nodes in a chain: node ``n0`` returns
``{"rows": BIG}``, nodes ``n1``..``n10`` return ``{"counter": i}``. One thread id per run,
``graph.invoke(..., durability="sync")``: each step's checkpoint is written before the next
step starts, as warlock_ai and DBOS do (LangGraph's default, ``"async"``, writes it while the
next step runs). The saver's defaults otherwise (one connection, every checkpoint kept).

A run's measured time starts when node ``n1`` begins and ends when ``invoke`` returns.
Samples are seconds per measured step, one per run (``common.serve``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import cache
from importlib.metadata import version
from itertools import count
from typing import Any, TypedDict

from common import STEPS, big_value, serve
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph

started = [0.0]
run_numbers = count()


class State(TypedDict, total=False):
    rows: list[dict[str, Any]]
    counter: int


def node(size: int, i: int) -> Callable[[State], dict[str, Any]]:
    def run(state: State) -> dict[str, Any]:
        if i == 0:
            return {"rows": big_value(size)}
        if i == 1:
            started[0] = time.perf_counter()
        return {"counter": i}

    return run


def build(size: int) -> StateGraph:
    graph = StateGraph(State)
    previous = START
    for i in range(STEPS + 1):
        graph.add_node(f"n{i}", node(size, i))
        graph.add_edge(previous, f"n{i}")
        previous = f"n{i}"
    graph.add_edge(previous, END)
    return graph


def main() -> None:
    with PostgresSaver.from_conn_string(sys.argv[1]) as saver:
        saver.setup()

        @cache
        def graph(size: int) -> Any:
            return build(size).compile(checkpointer=saver)

        def measure(contender: str, size: int, runs: int) -> list[float]:
            if contender != "langgraph":
                raise ValueError(f"this worker runs langgraph, not {contender!r}")
            samples = []
            for _ in range(runs):
                config = {"configurable": {"thread_id": f"lg-{size}-{next(run_numbers)}"}}
                final = graph(size).invoke({"counter": 0}, config, durability="sync")
                samples.append((time.perf_counter() - started[0]) / STEPS)
                if final["counter"] != STEPS:
                    raise AssertionError(f"the run ended with counter {final['counter']!r}")
            return samples

        names = ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-postgres", "psycopg")
        serve(measure, {"versions": {n: version(n) for n in names}})


if __name__ == "__main__":
    main()
