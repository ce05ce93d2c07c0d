"""Finding model weights on disk, and downloading them from the Hugging Face Hub.

Loading never touches the network: a Hub id must already be in the local cache. That
keeps start-up predictable offline (no 70-second retry loop) and makes the one place that
downloads, ``phichat download``, explicit and visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from phichat.errors import DownloadError, ModelNotAvailable

# What a transformers checkpoint needs; skips the repo's remote-code files, ONNX and GGUF copies.
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model"]

# The 4-bit Phi-3-mini that Microsoft publishes for llama.cpp (about 2.2 GB).
GGUF_REPO = "microsoft/Phi-3-mini-4k-instruct-gguf"
GGUF_FILE = "Phi-3-mini-4k-instruct-q4.gguf"


def looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or Path(model).expanduser().exists()


def resolve_model_path(model: str) -> Path:
    """A local folder holding the model, or a one-line error saying how to get one."""
    if looks_like_path(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise ModelNotAvailable(f"model folder {folder} does not exist")
        if not (folder / "config.json").is_file():
            raise ModelNotAvailable(f"{folder} has no config.json: it is not a model folder")
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, allow_patterns=WEIGHT_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise ModelNotAvailable(
            f"model {model} is not downloaded: run `phichat download {model}`, "
            "or pass --model PATH to a local copy"
        ) from None
    except HFValidationError:
        raise ModelNotAvailable(
            f"'{model}' is neither a model folder nor a Hugging Face model id"
        ) from None


def download(model: str) -> Path:
    """Fetch a model's weights into the Hugging Face cache, with the Hub's progress bars."""
    if looks_like_path(model):
        raise DownloadError(f"{model} is a local path; `phichat download` takes a Hugging Face id")
    from huggingface_hub import snapshot_download

    with _hub_errors(model):
        return Path(snapshot_download(model, allow_patterns=WEIGHT_PATTERNS))


# A sentence-transformers folder: config, tokenizer, pooling settings and safetensors weights;
# skips the repo's ONNX, OpenVINO, TensorFlow and Rust copies of the same weights.
EMBEDDER_PATTERNS = ["*.json", "*.safetensors", "*.txt"]


def download_embedder(name: str) -> Path | None:
    """Fetch the ranking model for web search; None when it is a local folder already."""
    if looks_like_path(name):
        return None
    from huggingface_hub import snapshot_download

    with _hub_errors(name):
        return Path(snapshot_download(name, allow_patterns=EMBEDDER_PATTERNS))


def download_gguf() -> Path:
    """Fetch the 4-bit Phi-3-mini GGUF file into the Hugging Face cache, with progress bars."""
    from huggingface_hub import hf_hub_download

    with _hub_errors(f"{GGUF_REPO}/{GGUF_FILE}"):
        return Path(hf_hub_download(GGUF_REPO, GGUF_FILE))


def resolve_gguf_file(gguf_file: str | None) -> Path:
    """The .gguf file to load: the one named, or the downloaded 4-bit Phi-3-mini."""
    if gguf_file:
        path = Path(gguf_file).expanduser()
        if not path.is_file():
            raise ModelNotAvailable(f"GGUF file {path} does not exist")
        return path
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(GGUF_REPO, GGUF_FILE, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise ModelNotAvailable(
            f"the 4-bit Phi-3-mini ({GGUF_FILE}) is not downloaded: run "
            "`phichat download --gguf`, or set gguf_file to a .gguf file"
        ) from None


@contextmanager
def _hub_errors(what: str) -> Iterator[None]:
    """Turn the Hub client's exceptions into one-line ``DownloadError`` messages."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        raise DownloadError("cannot download while HF_HUB_OFFLINE is set; unset it and try again")
    try:
        yield
    except HFValidationError:
        raise DownloadError(f"'{what}' is not a valid Hugging Face model id") from None
    except (RepositoryNotFoundError, GatedRepoError, RemoteEntryNotFoundError):
        raise DownloadError(
            f"{what} was not found on the Hugging Face Hub (or needs a login)"
        ) from None
    except LocalEntryNotFoundError as exc:
        # The Hub client puts the underlying network error on the first line ("Got: ...").
        cause = str(exc).splitlines()[0].removeprefix("Got: ")
        raise DownloadError(
            f"cannot reach the Hugging Face Hub to download {what} ({cause}); "
            "check the network connection and try again"
        ) from None
    except KeyboardInterrupt:
        raise DownloadError("download cancelled; run the same command again to resume") from None
    except (HfHubHTTPError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(f"cannot download {what}: {reason}") from None
