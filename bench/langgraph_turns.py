"""The session of ``bench/turns.py`` (b) through LangGraph's ``PostgresSaver``, for comparison.

Run by ``bench/turns.py --langgraph-python PATH`` with an interpreter that has ``langgraph``,
``langgraph-checkpoint-postgres`` and ``psycopg[binary]`` (not the project's dependencies):
``python bench/langgraph_turns.py URL TURNS CAP``. One graph of one node (the same intent:
append the message, keep the last CAP, count the turn), one thread, ``invoke`` per turn, the
saver's defaults (every checkpoint kept); then the size of its tables.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from importlib.metadata import version
from typing import Any, TypedDict

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, StateGraph

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")

# Messages are words drawn from a fixed list by a seeded generator: text that compresses
# about as well as prose does (a repeated sentence would compress to almost nothing).
_WORD_LIST = (
    "order parcel refund charge card account login password reset invoice receipt delivery "
    "address week yesterday today please thanks help still again never arrived broken wrong "
    "item size colour return label tracking number email phone support agent manager waiting "
    "days hours minutes cancel subscription plan upgrade price discount code error app website"
)
WORDS = _WORD_LIST.split()


def message(n: int) -> str:
    """The message of turn ``n``, as ``bench/turns.py`` makes it."""
    rng = random.Random(n)
    text = f"message {n}:"
    while len(text) < 90:
        text += " " + rng.choice(WORDS)
    return text


class State(TypedDict, total=False):
    input: str
    messages: list[str]
    count: int


def build(cap: int) -> StateGraph:
    def chat(state: State) -> dict[str, Any]:
        messages = [*state.get("messages", []), state["input"]]
        kept = messages[-cap:] if cap else messages
        return {"messages": kept, "count": state.get("count", 0) + 1}

    graph = StateGraph(State)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_edge("chat", END)
    return graph


def sizes(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            table: conn.execute(
                f"SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}')"
            ).fetchone()
            for table in TABLES
        }


def main() -> None:
    url, turns, cap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    samples = []
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        graph = build(cap).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "storage"}}
        for n in range(turns):
            start = time.perf_counter()
            graph.invoke({"input": message(n)}, config)
            samples.append(time.perf_counter() - start)
        final = graph.get_state(config).values
    assert final["count"] == turns, final["count"]
    left = sizes(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM FULL " + ", ".join(TABLES))
    live = sizes(url)
    mb = 1024 * 1024
    p95 = statistics.quantiles(samples, n=20, method="inclusive")[18]
    print(
        f"LangGraph {version('langgraph')}, langgraph-checkpoint-postgres "
        f"{version('langgraph-checkpoint-postgres')}, PostgresSaver defaults, the same session: "
        f"{turns} turns, one thread; per turn median {statistics.median(samples) * 1e3:.1f} ms, "
        f"p95 {p95 * 1e3:.1f} ms\n"
    )
    print("| table | rows | MB | MB after VACUUM FULL |")
    print("|---|---:|---:|---:|")
    for table in TABLES:
        rows, size = left[table]
        print(f"| {table} | {rows} | {size / mb:.2f} | {live[table][1] / mb:.2f} |")
    total = sum(v[1] for v in left.values()) / mb
    total_live = sum(v[1] for v in live.values()) / mb
    print(f"| all | | {total:.2f} | {total_live:.2f} |")


if __name__ == "__main__":
    main()
