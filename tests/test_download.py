"""`phichat download` fetches the ranking model too; without the Hub it fails in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from phichat.errors import DownloadError
from phichat.models.hub import download_embedder


def test_a_local_embedder_folder_needs_no_download(tmp_path: Path) -> None:
    assert download_embedder(str(tmp_path)) is None


def test_embedder_download_refuses_while_offline() -> None:
    # conftest sets HF_HUB_OFFLINE=1 for every test.
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        download_embedder("sentence-transformers/all-MiniLM-L6-v2")


def test_embedder_download_names_the_unreachable_hub() -> None:
    script = (
        "from phichat.models.hub import download_embedder\n"
        "download_embedder('sentence-transformers/all-MiniLM-L6-v2')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode != 0
    assert "DownloadError: cannot reach the Hugging Face Hub" in result.stderr
    assert "all-MiniLM-L6-v2" in result.stderr
