"""The kit's own small pretrained causal LM: made by this module, shipped, loaded offline.

Track E fine-tunes and serves a real Hugging Face model whose weights never come from a hub.
``python -m aifkit.course.tiny_lm --build`` trains a byte-level BPE tokenizer and a small
``LlamaForCausalLM`` on the bundled corpus (:mod:`aifkit.course.corpus`), seeded, in a few minutes
on a CPU, and writes ``model.safetensors``, ``config.json``, ``generation_config.json`` and
``tokenizer.json`` to ``aifkit/data/models/tiny-lm/`` with their checksums in ``SHA256SUMS``.
:func:`load` verifies those checksums, then loads with ``local_files_only=True``.

transformers is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aifkit import resources
from aifkit.course import corpus, datasets
from aifkit.errors import AifkitError

if TYPE_CHECKING:
    import torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

MODEL_DIR = resources.data_path("models") / "tiny-lm"
MANIFEST_NAME = "SHA256SUMS"
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")
EOS = "<|endoftext|>"
PAD = "<|pad|>"
SEED = 1234
VOCAB_SIZE = 1024
CONTEXT = 128
HELD_OUT_FRACTION = 0.05


class TinyLMError(AifkitError):
    """The shipped model is missing or its files do not match their checksums."""


def model_config(vocab_size: int = VOCAB_SIZE) -> dict[str, Any]:
    """Keyword arguments of the shipped model's ``LlamaConfig`` (about 1M parameters)."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": 128,
        "intermediate_size": 352,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": CONTEXT * 2,
        "tie_word_embeddings": True,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 1,
    }


def split_corpus() -> tuple[str, str]:
    """(training text, held-out text): the last 5% of the corpus is never trained on."""
    text = corpus.text()
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - HELD_OUT_FRACTION)))
    return text[:cut], text[cut:]


def _read_manifest(directory: Path) -> dict[str, str]:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise TinyLMError(f"{path}: missing; rebuild with python -m aifkit.course.tiny_lm --build")
    return datasets.read_sums(path)


def write_manifest(directory: Path) -> dict[str, str]:
    """Write ``SHA256SUMS`` for the shipped files in ``directory``; return it."""
    entries = {name: datasets.sha256(directory / name) for name in SHIPPED_FILES}
    datasets.write_sums(directory / MANIFEST_NAME, entries)
    return entries


def verify(directory: Path = MODEL_DIR) -> None:
    """Raise :class:`TinyLMError` unless every shipped file matches its checksum."""
    expected = _read_manifest(directory)
    for name in SHIPPED_FILES:
        path = directory / name
        if name not in expected:
            raise TinyLMError(f"{path}: not listed in {MANIFEST_NAME}")
        if not path.is_file():
            raise TinyLMError(f"{path}: listed in {MANIFEST_NAME} but missing: reinstall aifkit")
        if datasets.sha256(path) != expected[name]:
            raise TinyLMError(f"{path}: checksum mismatch, the file is corrupted: reinstall aifkit")


def load_tokenizer(directory: Path = MODEL_DIR) -> PreTrainedTokenizerFast:
    """The model's tokenizer as a transformers ``PreTrainedTokenizerFast`` (no checksum check)."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(directory / "tokenizer.json"),
        bos_token=EOS,
        eos_token=EOS,
        pad_token=PAD,
    )


def load(directory: Path = MODEL_DIR) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """(model, tokenizer) of the shipped tiny LM: checksums first, local files only, eval mode."""
    from transformers import LlamaForCausalLM
    from transformers.utils import logging

    verify(directory)
    logging.disable_progress_bar()  # a 4 MB model: a progress bar in every notebook is noise
    model = LlamaForCausalLM.from_pretrained(str(directory), local_files_only=True)
    model.eval()
    return model, load_tokenizer(directory)


def perplexity(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, text: str, context: int = CONTEXT
) -> float:
    """Perplexity of ``model`` on ``text``, over non-overlapping windows of ``context`` tokens."""
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"][0]
    windows = ids[: len(ids) // context * context].view(-1, context)
    with torch.no_grad():
        loss = model(input_ids=windows, labels=windows).loss
    return math.exp(float(loss))


def train_tokenizer(text: str, vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``text`` (ids 0/1: EOS, PAD)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(text.split("\n\n"), trainer=trainer)
    return tokenizer


def _batches(ids: torch.Tensor, steps: int, batch: int, generator: torch.Generator) -> Any:
    import torch

    for _ in range(steps):
        starts = torch.randint(0, len(ids) - CONTEXT - 1, (batch,), generator=generator)
        yield torch.stack([ids[s : s + CONTEXT] for s in starts.tolist()])


def build(out_dir: Path = MODEL_DIR, steps: int = 800, batch: int = 8) -> dict[str, float]:
    """Pretrain the tiny LM on the corpus and write the shipped files; return its measurements.

    Runs on one CPU thread: the same arithmetic on every machine, and no oversubscription on a
    shared node (two threads on a busy 2-core machine were measured 7x slower than one).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build(out_dir, steps, batch)
    finally:
        torch.set_num_threads(threads)


def _build(out_dir: Path, steps: int, batch: int) -> dict[str, float]:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    random.seed(SEED)
    torch.manual_seed(SEED)
    started = time.perf_counter()
    train_text, held_out = split_corpus()
    raw_tokenizer = train_tokenizer(train_text)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_tokenizer.save(str(out_dir / "tokenizer.json"))
    tokenizer = load_tokenizer(out_dir)
    docs = [
        tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id] for doc in train_text.split("\n\n")
    ]
    ids = torch.tensor([token for doc in docs for token in doc])

    model = LlamaForCausalLM(LlamaConfig(**model_config(len(tokenizer))))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    loss = torch.tensor(float("nan"))
    for step, window in enumerate(_batches(ids, steps, batch, generator)):
        loss = model(input_ids=window, labels=window).loss
        if step % 100 == 0:
            print(
                f"step {step}/{steps}: loss {float(loss.detach()):.3f}", file=sys.stderr, flush=True
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=0, eos_token_id=0, pad_token_id=1, max_new_tokens=40
    )
    model.save_pretrained(str(out_dir))
    write_manifest(out_dir)
    return {
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "train_tokens": float(len(ids)),
        "final_train_loss": float(loss.detach()),
        "held_out_perplexity": perplexity(model, tokenizer, held_out),
        "uniform_perplexity": float(len(tokenizer)),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--build [--steps N] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m aifkit.course.tiny_lm", description=__doc__)
    parser.add_argument("--build", action="store_true", help="pretrain and write the files")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args(argv)
    if not args.build:
        parser.print_help()
        return
    print(json.dumps(build(args.out, steps=args.steps), indent=2))


if __name__ == "__main__":
    main()
