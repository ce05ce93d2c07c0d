"""The whole-turn benchmark in its tiny mode, so that it keeps running as the code changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

NEEDS_LLAMA = (
    "llama-cpp-python is not installed (pip install 'phichat[gguf]'; it builds from source)"
)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's tiny model: 32,064 ids, like Phi-3-mini, and a 2k BPE padded to them."""
    import turn

    args = turn.parse_args(["--tiny"])
    folder = tmp_path_factory.mktemp("turn") / "model"
    turn.prepare_folder(folder, args.shape, args.vocab)
    return folder


def test_the_tiny_turn_benchmark_prints_its_table_and_reuses_the_prefix(
    tiny_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import turn

    args = turn.parse_args(
        [
            *("--tiny", "--turns=2", "--pages=2", "--answer-tokens=4", "--raw-decode=2"),
            *("--context-chars=1000", "--page-delay=0", "--sweep", "500"),
        ]
    )
    args.folder = tiny_folder
    result = turn.measure(args)
    turn.print_result(result, "a test machine")
    printed = capsys.readouterr().out
    assert "| turn | first token | query | retrieval | prefill |" in printed
    assert "raw transformers forward" in printed and "| 500 chars |" in printed
    first, follow_up = result["turns"]
    assert first["reused_tokens"] == 0 and first["context_chars"] > 0
    # The follow-up's prompt starts with turn 1's prompt and answer, as sent.
    assert follow_up["reused_tokens"] >= first["prompt_tokens"]
    assert follow_up["shared_tokens"] >= first["prompt_tokens"] - 1
    assert follow_up["prompt_tokens"] > follow_up["reused_tokens"]
    assert result["sweep"][500]["prompt_tokens"] < first["prompt_tokens"]
    assert all(turn["ttft_s"] > 0 and turn["new_tokens"] > 0 for turn in result["turns"])
    # Answers have text, so that follow-ups carry past turns (an empty one is left out).
    assert all(turn["answer_chars"] > 0 for turn in result["turns"])


def test_every_id_the_random_model_can_emit_decodes_to_text(tiny_folder: Path) -> None:
    import turn
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    size = json.loads((tiny_folder / "config.json").read_text())["vocab_size"]
    assert size == 32064 and len(tokenizer) == size
    special = set(tokenizer.all_special_ids)
    silent = [i for i in range(size) if i not in special and not tokenizer.decode([i])]
    assert silent == []
    # A run of padding words, as an answer brings it back in the history, tokenizes back
    # to the same ids; the prompts' own text never meets one.
    padding = list(range(size - 50, size))
    assert tokenizer(tokenizer.decode(padding), add_special_tokens=False)["input_ids"] == padding
    assert not set(padding) & set(tokenizer(turn.prompt_text()[:200_000])["input_ids"])


def test_the_gguf_carries_the_padded_vocabulary_as_user_defined_pieces(
    tiny_folder: Path, tmp_path: Path
) -> None:
    pytest.importorskip("gguf", reason="the gguf package (test extra) writes the test file")
    llama_cpp = pytest.importorskip("llama_cpp", reason=NEEDS_LLAMA)
    import turn
    from phi3_gguf import write_phi3_gguf
    from transformers import AutoTokenizer

    # A GGUF converted before the padding (its ids past the BPE were UNUSED, decoding to
    # nothing) gets the folder's vocabulary written in; its tensors stay as they were.
    old = tmp_path / "unpadded"
    old.mkdir()
    for each in tiny_folder.iterdir():
        if each.name != "tokenizer.json":
            (old / each.name).symlink_to(each)
    spec = json.loads((tiny_folder / "tokenizer.json").read_text())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["special"]]
    (old / "tokenizer.json").write_text(json.dumps(spec))
    path = write_phi3_gguf(old, tmp_path / "model.gguf")
    assert not turn.gguf_vocabulary_matches(path, tiny_folder)
    tensors_before = _tensor_data(path)

    turn.retokenized_gguf(path, tiny_folder)

    assert turn.gguf_vocabulary_matches(path, tiny_folder)
    assert _tensor_data(path) == tensors_before
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    assert llm.n_vocab() == len(tokenizer)
    special = set(tokenizer.all_special_ids)
    for index in range(llm.n_vocab()):
        if index not in special:
            assert bytes(llm.detokenize([index])), index
    # llama.cpp splits text with padding words as transformers does.
    text = "Where is it? " + tokenizer.decode(list(range(30000, 30010))) + " and then."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    llm.close()


def _tensor_data(path: Path) -> bytes:
    """The file's tensor data, everything after its metadata."""
    import gguf

    start = int(gguf.GGUFReader(str(path)).data_offset)
    return path.read_bytes()[start:]
