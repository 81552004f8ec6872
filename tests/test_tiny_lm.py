"""The shipped tiny LM: files match their manifest, it loads offline and fast, it has learned
the corpus, corruption is refused, and the build script that made it runs and makes loadable files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from aifkit.course import tiny_lm

MAX_SHIPPED_BYTES = 20 * 2**20


def test_shipped_files_match_the_manifest_and_stay_small() -> None:
    """Does SHA256SUMS list exactly the shipped files, all intact and under 20 MB together?"""
    tiny_lm.verify()
    listed = tiny_lm._read_manifest(tiny_lm.MODEL_DIR)
    assert sorted(listed) == sorted(tiny_lm.SHIPPED_FILES)
    total = sum((tiny_lm.MODEL_DIR / name).stat().st_size for name in listed)
    assert total < MAX_SHIPPED_BYTES, f"shipped model is {total / 2**20:.1f} MB"
    assert (tiny_lm.MODEL_DIR / "README.md").is_file()


@pytest.mark.slow
def test_load_is_fast_and_the_model_has_learned_the_corpus() -> None:
    """Does load() give a model far better than uniform on text it never trained on?"""
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: F401 (import is not load)

    started = time.perf_counter()
    model, tokenizer = tiny_lm.load()
    load_s = time.perf_counter() - started
    assert load_s < 10, f"load() took {load_s:.1f} s"
    assert not model.training
    assert tokenizer.eos_token == tiny_lm.EOS and tokenizer.pad_token == tiny_lm.PAD
    assert 500_000 < model.num_parameters() < 3_000_000
    _, held_out = tiny_lm.split_corpus()
    ppl = tiny_lm.perplexity(model, tokenizer, held_out[:6000])
    assert ppl < len(tokenizer) / 8, f"held-out perplexity {ppl:.0f} vs uniform {len(tokenizer)}"


def test_a_corrupted_file_is_refused_before_loading(tmp_path: Path) -> None:
    """Is a model whose weights changed by one byte an error that names the file?"""
    copy = tmp_path / "tiny-lm"
    shutil.copytree(tiny_lm.MODEL_DIR, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(tiny_lm.TinyLMError, match=r"model\.safetensors: checksum mismatch"):
        tiny_lm.load(copy)
    (copy / tiny_lm.MANIFEST_NAME).unlink()
    with pytest.raises(tiny_lm.TinyLMError, match="rebuild with"):
        tiny_lm.verify(copy)


@pytest.mark.slow
def test_the_build_script_makes_loadable_files(tmp_path: Path) -> None:
    """Does a few-step build write every shipped file, a valid manifest and a loadable model?"""
    out = tmp_path / "built"
    figures = tiny_lm.build(out, steps=3, batch=2)
    assert figures["parameters"] > 500_000 and figures["train_tokens"] > 50_000
    assert figures["held_out_perplexity"] > 1
    tiny_lm.verify(out)
    model, tokenizer = tiny_lm.load(out)
    ids = tokenizer("Return a list of", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
