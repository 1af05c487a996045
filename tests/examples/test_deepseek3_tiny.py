"""examples/deepseek3_tiny: the offline tokenizer the example builds, the launcher's refusals, the
loss-table reader, the recorded table of docs/deepseek3_tiny.md, and the launch in upstream's
multi-card layout scaled to 4 CPU processes (NPROC=4: PP 2, EP 2, DP 2, distributed optimizer,
full recomputation, MTP) on the real llm workspace (tests/e2e's, built from the mirror of the
pinned upstream repositories): a few steps, a checkpoint, and a resume from it.

The one-process 20-step run and its resume are tests/e2e/test_llm_workspace.py's; both runs are
recorded in docs/deepseek3_tiny.md.
"""
from __future__ import annotations

import json
import math
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import LlmWorkspace, bash
from tests.examples.launchers import assert_refused_outside_a_workspace

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
    assert_refused_outside_a_workspace(EXAMPLE / "pretrain_deepseek3_tiny.sh", "source auto_convert_llm.sh", "deepseek3_tiny_run", tmp_path)


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


def test_nproc_must_be_one_or_even(tmp_path):
    workspace = tmp_path / "ws"
    (workspace / "MindSpeed-LLM").mkdir(parents=True)
    (workspace / "MindSpeed-LLM" / "pretrain_gpt.py").write_text("raise SystemExit('must not run')\n")
    for nproc in ("3", "four", "0"):
        env = {**os.environ, "MS_CONVERT_WORKSPACE": str(workspace), "NPROC": nproc, "WORK": str(tmp_path / "run")}
        proc = subprocess.run(["bash", str(EXAMPLE / "pretrain_deepseek3_tiny.sh")], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, nproc
        assert f"NPROC={nproc}: give 1 or an even number of processes" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "run").exists()


# NPROC=4 in CI: steps 1-4 in one sitting with a checkpoint at step 2 (and 4), then a resume that
# loads iteration 2 (the tracker file pointed back at it) and trains steps 3-4 again. MindSpore's CPU run of this layout repeats itself
# bit for bit (two 3-step runs, docs/deepseek3_tiny.md), so the resumed steps must log the
# uninterrupted run's losses to the printed digits; RESUME_TOL only absorbs the last printed digit.
NPROC_STEPS, NPROC_SAVED = 4, 2
RESUME_TOL = 2e-6   # relative, lm and MTP loss (printed with 7 significant digits)


def _layout(log: str) -> dict[str, str]:
    """Megatron's argument dump (`  name ........ value`) for the layout's arguments."""
    names = ("world_size", "pipeline_model_parallel_size", "expert_model_parallel_size", "data_parallel_size",
             "use_distributed_optimizer", "recompute_granularity", "recompute_method", "recompute_num_layers",
             "mtp_num_layers", "moe_token_dispatcher_type", "ai_framework")
    found = {}
    for name in names:
        m = re.search(rf"^  {name} \.+ (\S+)$", log, re.M)
        found[name] = m.group(1) if m else None
    return found


@pytest.mark.slow
@pytest.mark.pypi
@pytest.mark.mindspore
def test_four_processes_in_upstreams_layout_train_save_and_resume(llm_workspace: LlmWorkspace, tmp_path):
    sys.path.insert(0, str(EXAMPLE))
    try:
        import losses
    finally:
        sys.path.remove(str(EXAMPLE))
    work = tmp_path / "run"
    env = {"NPROC": "4", "WORK": str(work), "TRAIN_ITERS": str(NPROC_STEPS), "RESUME_ITERS": "0",
           "SAVE_INTERVAL": str(NPROC_SAVED)}
    command = f"source {llm_workspace.path / 'set_env.sh'} && bash {EXAMPLE / 'pretrain_deepseek3_tiny.sh'}"
    train = bash(command, cwd=tmp_path, timeout=1200, **env)
    assert train.returncode == 0, (train.stdout + train.stderr)[-4000:]
    assert _layout(train.stdout) == {
        "world_size": "4", "pipeline_model_parallel_size": "2", "expert_model_parallel_size": "2",
        "data_parallel_size": "2", "use_distributed_optimizer": "True", "recompute_granularity": "full",
        "recompute_method": "uniform", "recompute_num_layers": "1", "mtp_num_layers": "1",
        "moe_token_dispatcher_type": "alltoall_seq", "ai_framework": "mindspore"}
    rows = losses.parse(work / "logs" / "train.log")
    assert [r["step"] for r in rows] == list(range(1, NPROC_STEPS + 1))
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("lm", "mtp", "grad")), r
    assert rows[-1]["lm"] < rows[0]["lm"] - 0.2 and rows[-1]["mtp"] < rows[0]["mtp"] - 0.1, rows
    # one checkpoint folder per pipeline stage x expert rank, at both saved iterations
    for iteration in (NPROC_SAVED, NPROC_STEPS):
        shards = sorted(p.name for p in (work / "ckpt" / f"iter_{iteration:07d}").iterdir())
        assert shards == ["mp_rank_00_000_000", "mp_rank_00_000_001", "mp_rank_00_001_000", "mp_rank_00_001_001"]

    # Megatron's tracker names the checkpoint a resume loads (model, optimizer shards, RNG, data position)
    (work / "ckpt" / "latest_checkpointed_iteration.txt").write_text(str(NPROC_SAVED))
    resume = bash(command, cwd=tmp_path, timeout=1200, RESUME="1", **env)
    assert resume.returncode == 0, (resume.stdout + resume.stderr)[-4000:]
    assert re.search(rf"successfully loaded checkpoint from {re.escape(str(work / 'ckpt'))} .* at iteration "
                     rf"{NPROC_SAVED}\b", resume.stdout)
    resumed = losses.parse(work / "logs" / "resume.log")
    assert [r["step"] for r in resumed] == list(range(NPROC_SAVED + 1, NPROC_STEPS + 1))
    for again, first in zip(resumed, rows[NPROC_SAVED:], strict=True):
        for key in ("lm", "mtp"):
            assert again[key] == pytest.approx(first[key], rel=RESUME_TOL), (key, again, first)
        assert again["lr"] == first["lr"]
