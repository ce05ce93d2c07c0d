"""Build a tiny random-weight Phi-3 checkpoint on disk, shaped and templated like the real one.

It is saved as a normal transformers folder (config, safetensors, tokenizer with Phi-3's
special tokens and chat template) and then loaded through ``phichat.models.phi3`` exactly
as Phi-3-mini would be. The weights are random, so its text is gibberish; tests assert on
behaviour (streaming, stopping, budgets), never on content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

# Phi-3's chat format: every turn is "<|role|>\n{content}<|end|>\n", and the answer
# starts after "<|assistant|>\n".
PHI3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "<|endoftext|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
]
STOP_TOKENS = ("<|end|>", "<|endoftext|>", "<|assistant|>")

_CORPUS = (
    """
Belize City is the largest city in Belize. Visitors walk the Fort George lighthouse, the
swing bridge and the museum, then take a water taxi to Caye Caulker. Skagway in Alaska was
a gold rush town; trains climb the White Pass from the harbour. A day trip can start early
in the morning, with lunch near the market and a walk by the sea in the afternoon. The
evening brings dinner, music and a quiet hour on the pier. Small language models store few
facts, so retrieval fills the gap: search, fetch, extract, rank and pack the best passages.
Numbers like 1, 2, 3, 10, 42 and 2026 appear in dates, prices and opening hours.
"""
    * 4
)


def build_tokenizer(
    corpus: Iterable[str] | None = None, vocab_size: int = 420
):  # -> PreTrainedTokenizerFast
    """A byte-level BPE with Phi-3's special tokens and chat template.

    By default it is trained on the small built-in corpus; benchmarks pass a bigger one
    and a realistic ``vocab_size`` (32k) so that prompts have realistic token counts.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = _CORPUS.split("\n") if corpus is None else corpus
    tokenizer.train_from_iterator(lines, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    )
    fast.chat_template = PHI3_CHAT_TEMPLATE
    return fast


def build_tiny_phi3(
    folder: Path,
    *,
    long_rope: bool = False,
    eager_stop: str | None = None,
    seed: int = 0,
    hidden: int = 64,
    intermediate: int = 128,
    heads: int = 4,
) -> Path:
    """Save a tiny Phi-3 in ``folder``.

    The model is wired so that its residual stream always carries a constant positive
    value in dimension 0. That lets a test steer one token's logit without touching the
    others: special tokens get a large negative weight there (so random text never ends
    by chance and always decodes to visible text), and ``eager_stop`` names one stop
    token that instead wins every step.
    ``long_rope`` gives the config the 128k model's LongRoPE scaling. ``hidden``,
    ``intermediate`` and ``heads`` widen it (the gguf crash test needs rows of 512).
    """
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    layers = 2
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|end|>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = Phi3ForCausalLM(config)
    with torch.no_grad():
        # Unit-scale embeddings keep the random text varied; dimension 0 is the constant
        # steering channel, shielded from every layer's output projections.
        model.model.embed_tokens.weight.normal_(0.0, 1.0)
        model.model.embed_tokens.weight[:, 0] = 3.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        for token in SPECIAL_TOKENS:
            head[tokenizer.convert_tokens_to_ids(token), 0] = -50.0
        if eager_stop is not None:
            head[tokenizer.convert_tokens_to_ids(eager_stop), 0] = 50.0
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if long_rope:
        _rewrite_as_longrope(folder / "config.json", half_dim=hidden // heads // 2)
    return folder


def _rewrite_as_longrope(config_file: Path, half_dim: int) -> None:
    """Give the config the shape of Phi-3-mini-128k's own, as published (v4 style keys)."""
    config = json.loads(config_file.read_text())
    config.pop("rope_parameters", None)
    config.update(
        max_position_embeddings=131072,
        original_max_position_embeddings=4096,
        rope_theta=10000.0,
        rope_scaling={
            "type": "longrope",
            "short_factor": [1.0] * half_dim,
            "long_factor": [1.5] * half_dim,
        },
        torch_dtype="float32",
    )
    config_file.write_text(json.dumps(config, indent=2))
