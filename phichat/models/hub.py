"""Finding model weights on disk, and downloading them from the Hugging Face Hub.

Loading never touches the network: a Hub id must already be in the local cache. That
keeps start-up predictable offline (no 70-second retry loop) and makes the one place that
downloads, ``phichat download``, explicit and visible.
"""

from __future__ import annotations

from pathlib import Path

from phichat.errors import DownloadError, ModelNotAvailable

# What a transformers checkpoint needs; skips the repo's remote-code files, ONNX and GGUF copies.
WEIGHT_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model"]


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
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if constants.HF_HUB_OFFLINE:
        raise DownloadError("cannot download while HF_HUB_OFFLINE is set; unset it and try again")
    try:
        return Path(snapshot_download(model, allow_patterns=WEIGHT_PATTERNS))
    except HFValidationError:
        raise DownloadError(f"'{model}' is not a valid Hugging Face model id") from None
    except (RepositoryNotFoundError, GatedRepoError):
        raise DownloadError(
            f"{model} was not found on the Hugging Face Hub (or needs a login)"
        ) from None
    except LocalEntryNotFoundError as exc:
        # The Hub client puts the underlying network error on the first line ("Got: ...").
        cause = str(exc).splitlines()[0].removeprefix("Got: ")
        raise DownloadError(
            f"cannot reach the Hugging Face Hub to download {model} ({cause}); "
            "check the network connection and try again"
        ) from None
    except KeyboardInterrupt:
        raise DownloadError("download cancelled; run the same command again to resume") from None
    except (HfHubHTTPError, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(f"cannot download {model}: {reason}") from None
