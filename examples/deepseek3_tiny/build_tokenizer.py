"""Build an offline Hugging Face tokenizer for the tiny DeepSeek-V3 example from the shipped corpus.

DeepSeek-V3's own tokenizer (129,280 tokens) cannot be downloaded here and would dwarf a tiny model,
so the example trains a byte-level BPE tokenizer on `corpus.txt` with the `tokenizers` package and
saves it in the layout `AutoTokenizer.from_pretrained` reads (tokenizer.json + tokenizer_config.json),
which is what MindSpeed-LLM's `--tokenizer-type PretrainedFromHF` loads. It also writes the corpus
as JSON lines, the input format of MindSpeed-LLM's `preprocess_data.py`.

Usage: python build_tokenizer.py OUT_DIR [--vocab-size N]
Writes OUT_DIR/tokenizer/ and OUT_DIR/corpus.jsonl. Deterministic: the same corpus gives the same files.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.txt"
EOS = "<|end_of_text|>"
BOS = "<|begin_of_text|>"
PAD = "<|pad|>"


def build(out_dir: Path, vocab_size: int) -> Path:
    """Train the tokenizer and write it plus the JSON-lines corpus under `out_dir`."""
    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer=trainer)

    tok_dir = out_dir / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(tok_dir / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": PAD,
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
    }
    (tok_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps({"text": line}) + "\n")
    return tok_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=512)
    args = parser.parse_args(argv)
    tok_dir = build(args.out_dir, args.vocab_size)
    print(f"tokenizer: {tok_dir} ({Tokenizer.from_file(str(tok_dir / 'tokenizer.json')).get_vocab_size()} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
