"""Write a transformers Phi-3 folder (like the tiny test model) as a GGUF file for llama.cpp.

This follows llama.cpp's conversion rules for the ``phi3`` architecture, for the models
phichat builds itself: a byte-level BPE tokenizer (llama.cpp's ``gpt2`` tokenizer model)
and Phi-3's fused ``qkv_proj`` and ``gate_up_proj`` weights, which llama.cpp's phi3 graph
takes as they are (no reordering). It is not a general converter: the real Phi-3 uses a
SentencePiece tokenizer, and Microsoft publishes its GGUF files ready-made.

Tensors are streamed one at a time, so converting a Phi-3-mini-shaped model (for the
benchmark) never holds more than one weight matrix in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# HF tensor name (with {i} for the layer) -> GGUF tensor name.
TENSOR_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.qkv_proj.weight": "blk.{i}.attn_qkv.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def gguf_name(hf_name: str) -> str:
    parts = hf_name.split(".")
    if len(parts) > 3 and parts[1] == "layers":
        layer = parts[2]
        template = ".".join([*parts[:2], "{i}", *parts[3:]])
        return TENSOR_NAMES[template].format(i=layer)
    return TENSOR_NAMES[hf_name]


def write_phi3_gguf(
    folder: Path, out: Path, *, half: bool = False, chat_template: bool = True
) -> Path:
    """Convert ``folder`` to ``out``; matrices in f16 when ``half``, else f32 (norms stay f32).

    ``chat_template=False`` leaves the template out, as some early conversions did.
    """
    import gguf
    import numpy as np
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    writer = gguf.GGUFWriter(out, "phi3")
    # Not "phi3" in the name: llama.cpp keys per-token quirks of Microsoft's SentencePiece
    # Phi-3 vocabulary (it expects a "</s>" token) on the model's name.
    writer.add_name("phichat random model")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(_rope_theta(config))
    file_type = gguf.LlamaFileType.MOSTLY_F16 if half else gguf.LlamaFileType.ALL_F32
    writer.add_file_type(int(file_type))
    _add_tokenizer(writer, folder, config["vocab_size"], chat_template)

    weights = sorted((folder).glob("*.safetensors"))
    plan: list[tuple[Path, str, Any]] = []
    for shard in weights:
        with safe_open(str(shard), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                shape = handle.get_slice(name).get_shape()
                dtype = np.float16 if half and len(shape) == 2 else np.float32
                count = int(np.prod(shape))
                plan.append((shard, name, dtype))
                writer.add_tensor_info(
                    gguf_name(name), shape, np.dtype(dtype), count * np.dtype(dtype).itemsize
                )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for shard, name, dtype in plan:
        with safe_open(str(shard), framework="pt") as handle:
            tensor = handle.get_tensor(name).float().numpy().astype(dtype)
        writer.write_tensor_data(tensor)
    writer.close()
    return out


# llama.cpp's LLAMA_FTYPE_MOSTLY_* values for the quantizations phichat's tests and
# benchmarks make.
QUANT_TYPES = {"Q4_0": 2, "Q8_0": 7, "Q4_K_M": 15}


def quantize_gguf(source: Path, out: Path, quant: str, *, threads: int | None = None) -> Path:
    """Quantize a GGUF file with llama.cpp's own quantizer (llama_model_quantize).

    It only converts weights (no matrix products run), so it is safe in the calling process.
    The file appears at ``out`` only once complete.
    """
    import os

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[quant]
    params.nthread = threads or os.cpu_count() or 1
    partial = out.with_name(out.name + ".partial")
    if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {source} to {quant}")
    partial.rename(out)
    return out


def write_quantized_phi3_gguf(folder: Path, out: Path, quant: str = "Q4_K_M") -> Path:
    """Convert a transformers Phi-3 folder straight to a quantized GGUF file at ``out``.

    The f16 file in between is deleted. Q4_K needs rows of a multiple of 256 values, so the
    model must be at least that wide (llama.cpp falls back to other types otherwise).
    """
    half = out.with_name(out.name + ".f16.partial")
    try:
        write_phi3_gguf(folder, half, half=True)
        return quantize_gguf(half, out, quant)
    finally:
        half.unlink(missing_ok=True)


def _rope_theta(config: dict[str, Any]) -> float:
    # transformers 5 keeps it under rope_parameters; v4-style configs have it at the top.
    parameters = config.get("rope_parameters") or {}
    return float(config.get("rope_theta") or parameters.get("rope_theta") or 10000.0)


def gguf_vocabulary(folder: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """The token list and token types of ``folder``'s tokenizer, as a GGUF file holds them.

    Special tokens are CONTROL; other added tokens (pieces added to the vocabulary as they
    are, such as the benchmark's padding words) are USER_DEFINED, which llama.cpp, like
    transformers, matches in text as a whole and decodes to its text as it is. Ids past the
    tokenizer (Phi-3 pads its embedding to 32064 rows) are UNUSED and decode to nothing.
    """
    import gguf

    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    added = {token["content"]: token for token in spec["added_tokens"]}
    vocab.update({text: token["id"] for text, token in added.items()})
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [int(gguf.TokenType.UNUSED)] * vocab_size
    for text, index in vocab.items():
        tokens[index] = text
        kind = gguf.TokenType.NORMAL
        if text in added:
            special = added[text].get("special", True)
            kind = gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED
        types[index] = int(kind)
    return tokens, types


def _add_tokenizer(writer: Any, folder: Path, vocab_size: int, chat_template: bool) -> None:
    spec = json.loads((folder / "tokenizer.json").read_text())
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    tokens, types = gguf_vocabulary(folder, vocab_size)
    ids = {text: index for index, text in enumerate(tokens)}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # the ByteLevel pre-tokenizer's GPT-2 split pattern
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(ids[settings["bos_token"]])
    writer.add_eos_token_id(ids[settings["eos_token"]])
    writer.add_unk_token_id(ids[settings["unk_token"]])
    writer.add_pad_token_id(ids[settings.get("pad_token") or settings["eos_token"]])
    # The chat template writes the BOS itself, as Phi-3's does.
    writer.add_add_bos_token(False)
    template = settings.get("chat_template")
    if template is None and (folder / "chat_template.jinja").is_file():
        template = (folder / "chat_template.jinja").read_text()
    if template and chat_template:
        writer.add_chat_template(template)
