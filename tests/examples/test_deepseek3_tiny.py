"""examples/deepseek3_tiny: the parts that run without MindSpeed-LLM (which CI cannot fetch).

The training run itself (MindSpeed-LLM's pretrain_gpt.py in a converted workspace) is recorded in
docs/deepseek3_tiny.md; here: the offline tokenizer the example builds, and the launcher's
refusal to run outside a workspace.
"""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deepseek3_tiny"

pytest.importorskip("tokenizers")


def _build(out: Path) -> None:
    subprocess.run([sys.executable, str(EXAMPLE / "build_tokenizer.py"), str(out)], check=True,
                   capture_output=True, text=True)


def test_tokenizer_is_deterministic_and_round_trips_the_corpus(tmp_path):
    from tokenizers import Tokenizer

    _build(tmp_path / "a")
    _build(tmp_path / "b")
    for name in ("tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "corpus.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    tok = Tokenizer.from_file(str(tmp_path / "a/tokenizer/tokenizer.json"))
    assert tok.get_vocab_size() == 512
    config = json.loads((tmp_path / "a/tokenizer/tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok.token_to_id(config["eos_token"]) is not None

    corpus = [line for line in (EXAMPLE / "corpus.txt").read_text().splitlines() if line.strip()]
    docs = [json.loads(line)["text"] for line in (tmp_path / "a/corpus.jsonl").read_text().splitlines()]
    assert docs == [line.strip() for line in corpus]
    for text in docs:
        ids = tok.encode(text).ids
        assert tok.decode(ids) == text
        assert len(ids) < len(text) / 2   # merges learned: fewer tokens than half the bytes


def test_launcher_outside_a_workspace_says_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MS_CONVERT_WORKSPACE"}
    proc = subprocess.run(["bash", str(EXAMPLE / "pretrain_deepseek3_tiny.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "source auto_convert_llm.sh" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "deepseek3_tiny_run").exists()


LOG_LINE = (" [2026-11-24 05:18:32] iteration        {step}/      25 | consumed samples:            4 | "
            "elapsed time per iteration (ms): 11835.6 | learning rate: 1.500000E-03 | global batch size:     4 | "
            "lm loss: {lm} | mtp_1 loss: 6.247668E+00 | loss scale: 1.0 | grad norm: 1.264 | num zeros: 0 |")


def _losses(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE / "losses.py"), *args], capture_output=True, text=True)


def test_losses_table_reads_megatron_iteration_lines_and_flags_bad_runs(tmp_path):
    good = tmp_path / "train.log"
    good.write_text("\n".join(["building model ...", LOG_LINE.format(step=1, lm="6.274363E+00"),
                               "[WARNING] noise", LOG_LINE.format(step=2, lm="6.095366E+00")]) + "\n")
    out = _losses(str(good), "--markdown")
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert rows == ["| 1 | train.log | 6.2744 | 6.2477 | 1.264 | 1.500e-03 | 11836 |",
                    "| 2 | train.log | 6.0954 | 6.2477 | 1.264 | 1.500e-03 | 11836 |"]

    diverged = tmp_path / "nan.log"
    diverged.write_text(LOG_LINE.format(step=3, lm="nan") + "\n")
    assert _losses(str(diverged)).returncode == 1
    empty = tmp_path / "empty.log"
    empty.write_text("Traceback (most recent call last):\n")
    out = _losses(str(empty))
    assert out.returncode == 1 and "no iteration lines" in out.stderr


def test_resume_without_a_checkpoint_says_so_and_starts_nothing(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "MindSpeed-LLM").mkdir(parents=True)
    (workspace / "MindSpeed-LLM" / "pretrain_gpt.py").write_text("raise SystemExit('must not run')\n")
    env = {**os.environ, "MS_CONVERT_WORKSPACE": str(workspace), "RESUME": "1", "WORK": str(tmp_path / "run")}
    proc = subprocess.run(["bash", str(EXAMPLE / "pretrain_deepseek3_tiny.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no checkpoint: run without RESUME first" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


RECORDED = EXAMPLE / "recorded_losses.tsv"
DOC = EXAMPLE.parents[1] / "docs" / "deepseek3_tiny.md"


def test_the_doc_shows_the_recorded_table_the_e2e_test_checks():
    """docs/deepseek3_tiny.md's table is recorded_losses.tsv (what tests/e2e compares a run with)."""
    recorded = [line.split("\t") for line in RECORDED.read_text().splitlines() if line and not line.startswith("#")]
    text = DOC.read_text()
    the_run = text[text.index("## The run"):]
    the_run = the_run[:the_run.index("\n### ")]   # the variants' tables follow, under their own headings
    doc = [[cell.strip() for cell in line.strip().strip("|").split("|")]
           for line in the_run.splitlines() if re.match(r"\| \d+ \| ", line)]
    assert len(recorded) == 25 and [int(r[0]) for r in recorded] == list(range(1, 26))
    assert doc == recorded


def test_expect_accepts_the_recorded_run_and_names_each_step_that_differs(tmp_path):
    rows = [line.split("\t") for line in RECORDED.read_text().splitlines() if line and not line.startswith("#")]

    def log_line(r: list[str], lm: str | None = None) -> str:
        step, _, lm0, mtp, grad, lr, ms = r
        return (f" [2026-11-24 05:18:32] iteration {int(step):8d}/      25 | consumed samples: 4 | "
                f"elapsed time per iteration (ms): {ms} | learning rate: {float(lr):E} | global batch size:     4 | "
                f"lm loss: {lm or lm0} | mtp_1 loss: {mtp} | loss scale: 1.0 | grad norm: {grad} | num zeros: 0 |")

    train, resume = tmp_path / "train.log", tmp_path / "resume.log"
    train.write_text("\n".join(log_line(r) for r in rows[:20]) + "\n")
    resume.write_text("\n".join(log_line(r) for r in rows[20:]) + "\n")
    same = _losses(str(train), str(resume), "--expect", str(RECORDED))
    assert same.returncode == 0, same.stderr
    assert "all 25 steps agree with recorded_losses.tsv" in same.stderr
    assert [line.split("\t")[:6] for line in same.stdout.splitlines()] == [r[:6] for r in rows]

    # within the drift (2e-3 off) passes; 1e-2 off at step 7, and a resume that is missing, do not
    drifted = [log_line(r, lm=f"{float(r[2]) + 0.002:.6E}") for r in rows[:20]]
    train.write_text("\n".join(drifted) + "\n")
    assert _losses(str(train), str(resume), "--expect", str(RECORDED)).returncode == 0
    drifted[6] = log_line(rows[6], lm=f"{float(rows[6][2]) + 0.01:.6E}")
    train.write_text("\n".join(drifted) + "\n")
    bad = _losses(str(train), "--expect", str(RECORDED))
    assert bad.returncode == 1
    problems = bad.stderr.strip().splitlines()
    assert problems[0] == f"recorded_losses.tsv: steps {list(range(1, 21))} logged, the record has steps {list(range(1, 26))}"
    assert problems[1].startswith(f"recorded_losses.tsv: step 7: lm loss {float(rows[6][2]) + 0.01:.4f} "
                                  f"vs recorded {rows[6][2]} (tolerance")
    assert len(problems) == 2
    assert _losses(str(train), "--expect", str(tmp_path / "none.tsv")).returncode == 2
