"""Run upstream MindSpeed-LLM example scripts at a tiny size on MindSpore CPU, as families.yaml says.

Each run in families.yaml names one upstream script under MindSpeed-LLM's `examples/mindspore/`;
this reads the command line that script would launch (bash expands it; nothing is launched, see
upstream_flags.py), applies the run's override sets and edits, fills the placeholders and runs the
entry point (`pretrain_gpt.py`, `posttrain_gpt.py`, `preprocess_data.py`,
`mindspeed_llm/mindspore/convert_ckpt.py`) in one process in the converted workspace. Runs that
need another run's data or checkpoint run it first (once per WORK).

    python examples/families/run_family.py list                   # the runs, their scripts, what they cover
    python examples/families/run_family.py show qwen3             # the final command line, nothing run
    python examples/families/run_family.py run qwen3 mixtral      # run them (and what they need)
    python examples/families/run_family.py table --run            # run every family, print the table
    python examples/families/run_family.py table --kind finetune  # the fine-tuning table from WORK's results

Run after `source auto_convert_llm.sh` (or `source <workspace>/set_env.sh`). WORK (default
./families_run, or --work) holds the tokenizer, each run's folder (log, data, checkpoint) and its
result.json. A run's status is `runs` when it exits 0 and every logged loss is finite.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for extra in (HERE, REPO, REPO / "examples" / "deepseek3_tiny"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import build_tokenizer  # noqa: E402  (examples/deepseek3_tiny: the offline tokenizer and corpus)
import losses as iteration_log  # noqa: E402  (examples/deepseek3_tiny: Megatron's iteration lines)
from families import PLACEHOLDER, FamilyError, FamilyFile, Run, load  # noqa: E402
from upstream_flags import Flags, ScriptError, launch_argv  # noqa: E402

FIXTURES = HERE / "fixtures"
# The special tokens of the qwen3 chat template (MindSpeed-LLM's configs/finetune/templates.json:
# <|im_start|>/<|im_end|> in its slots, <|im_end|> its stop word and new EOS, <think></think> its
# thought words). Qwen's own tokenizers have them; the instruction preprocessing adds the stop word
# to a tokenizer that lacks it, giving ids past the model's vocabulary. {chat_tokenizer} is the
# offline tokenizer with these added.
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
RUN_TIMEOUT = 1800


@dataclass
class Result:
    name: str
    status: str              # "runs" or "fails: <cause>"
    returncode: int
    seconds: float
    losses: list[float]
    grad_norms: list[float]
    command: list[str] = field(default_factory=list)   # a saved result counts only for the same command

    @property
    def ok(self) -> bool:
        return self.status == "runs"


class Runner:
    """Runs of one family file in one workspace, with their outputs under `work`."""

    def __init__(self, family_file: FamilyFile, workspace: Path, work: Path, python: str = sys.executable,
                 train_iters: int | None = None):
        self.family_file = family_file
        self.llm = workspace / "MindSpeed-LLM"
        if not (self.llm / "pretrain_gpt.py").is_file():
            raise FamilyError(f"{self.llm}/pretrain_gpt.py not found: is {workspace} a converted llm workspace "
                              "(source auto_convert_llm.sh)?")
        self.work = work.resolve()
        self.python = python
        self.train_iters = train_iters
        self._commands: dict[str, tuple[str, list[str]]] = {}

    def folder(self, name: str) -> Path:
        return self.work / "runs" / name

    def _fill(self, value: str, run: Run) -> str:
        def one(m) -> str:
            key, _, ref = m.group(1).partition(":")
            return str({"tokenizer": self.work / "tokenizer", "chat_tokenizer": self.work / "chat_tokenizer",
                        "corpus": self.work / "corpus.jsonl",
                        "fixtures": FIXTURES, "out": self.folder(run.name),
                        "data": self.folder(ref) / "data", "ckpt": self.folder(ref) / "ckpt"}[key])
        return PLACEHOLDER.sub(one, value)

    def command(self, name: str) -> tuple[str, list[str]]:
        """(entry point, final arguments) of run `name`."""
        if name in self._commands:
            return self._commands[name]
        run = self.family_file.runs[name]
        entry, argv = launch_argv(self.llm / run.script)
        flags = self.family_file.edit(run, Flags.parse(argv))
        if self.train_iters is not None and "--train-iters" in flags:
            flags.set("--train-iters", [str(self.train_iters)])
            if "--save-interval" in flags:
                flags.set("--save-interval", [str(self.train_iters)])
        self._commands[name] = (entry, [self._fill(word, run) for word in flags.argv()])
        return self._commands[name]

    def current(self, result: Result) -> bool:
        """Whether `result` was made by the command its run has now."""
        entry, argv = self.command(result.name)
        return result.command == [entry, *argv]

    def result(self, name: str) -> Result | None:
        path = self.folder(name) / "result.json"
        return Result(**json.loads(path.read_text())) if path.is_file() else None

    def run(self, name: str, *, again: bool = False, done: set[str] | None = None) -> Result:
        """Run `name` (after the runs it needs, each once); its Result, also saved as result.json."""
        done = set() if done is None else done
        run = self.family_file.runs[name]
        for ref in self.family_file.needs(run):
            previous = self.result(ref) if ref in done or not again else None
            if ref in done and previous is not None:
                dep = previous
            elif previous is not None and previous.ok and self.current(previous):
                dep = previous
            else:
                dep = self.run(ref, again=again, done=done)
            done.add(ref)
            if not dep.ok:
                return self._save(Result(name, f"fails: needs run {ref}, which {dep.status}", -1, 0.0, [], [], []))
        self.prepare_tokenizers()
        entry, argv = self.command(name)
        out = self.folder(name)
        out.mkdir(parents=True, exist_ok=True)
        for stale in ("ckpt", "log.txt", "result.json"):
            target = out / stale
            if target.is_dir():
                subprocess.run(["rm", "-rf", str(target)], check=True)
            elif target.exists():
                target.unlink()
        log = out / "log.txt"
        env = dict(os.environ, CUDA_DEVICE_MAX_CONNECTIONS="1", GLOG_v=os.environ.get("GLOG_v", "3"),
                   MASTER_ADDR="localhost", MASTER_PORT=os.environ.get("MASTER_PORT", "6000"), RANK="0",
                   LOCAL_RANK="0", WORLD_SIZE="1")
        started = time.monotonic()
        with log.open("w") as f:
            f.write(f"# {run.script}\n# cd {self.llm} && {self.python} {entry} {' '.join(argv)}\n")
            f.flush()
            try:
                proc = subprocess.run([self.python, entry, *argv], cwd=self.llm, env=env, stdout=f,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = -9
        seconds = time.monotonic() - started
        rows = iteration_log.parse(log)
        lm = [r["lm"] for r in rows]
        grads = [r["grad"] for r in rows if r["grad"] is not None]
        status = self._status(run, code, lm, log)
        return self._save(Result(name, status, code, round(seconds, 1), lm, grads, [entry, *argv]))

    def _status(self, run: Run, code: int, lm: list[float], log: Path) -> str:
        if code == -9:
            return f"fails: timed out after {RUN_TIMEOUT} s"
        if code != 0 or "Traceback (most recent call last)" in log.read_text(errors="replace"):
            # convert_ckpt.py's saver is a child process: its exception leaves the exit status 0
            return f"fails: {cause(log)}"
        if run.kind in ("family", "finetune"):
            if not lm:
                return "fails: exited 0 without an iteration line"
            if not all(math.isfinite(v) for v in lm):
                return f"fails: non-finite loss ({lm})"
        return "runs"

    def _save(self, result: Result) -> Result:
        folder = self.folder(result.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
        return result

    def prepare_tokenizers(self) -> None:
        """Build WORK/tokenizer and WORK/chat_tokenizer unless present (before runs start in parallel)."""
        if not (self.work / "tokenizer" / "tokenizer.json").is_file():
            build_tokenizer.build(self.work, 512)
        chat = self.work / "chat_tokenizer"
        if not (chat / "tokenizer.json").is_file():
            from tokenizers import Tokenizer
            tokenizer = Tokenizer.from_file(str(self.work / "tokenizer" / "tokenizer.json"))
            tokenizer.add_special_tokens(list(CHAT_TOKENS))
            chat.mkdir(parents=True, exist_ok=True)
            (chat / "tokenizer_config.json").write_bytes((self.work / "tokenizer" / "tokenizer_config.json").read_bytes())
            tokenizer.save(str(chat / "tokenizer.json"))


def cause(log: Path) -> str:
    """The last exception line of a failed run's log (or its last line), shortened to one line."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "Exception" in line) and not line.startswith(("File ", "raise ", "#")):
            return " ".join(line.split())[:240]
    return (lines[-1][:240] if lines else "empty log")


def table(family_file: FamilyFile, runner: Runner, kind: str) -> list[str]:
    """The Markdown table of the runs of `kind` from their saved results."""
    rows = ["| run | upstream script | covers | what was changed | status | lm loss first → last | s |",
            "| --- | --- | --- | --- | --- | --- | ---: |"]
    for name, run in family_file.runs.items():
        if run.kind != kind:
            continue
        r = runner.result(name)
        if r is not None and not runner.current(r):
            r, status = None, "not run with the flags families.yaml gives now"
        else:
            status = r.status if r else "not run"
        trend = f"{r.losses[0]:.4f} → {r.losses[-1]:.4f} ({len(r.losses)} steps)" if r and r.losses else "-"
        seconds = f"{r.seconds:.0f}" if r else "-"
        rows.append(f"| {name} | `{run.script.removeprefix('examples/mindspore/')}` | {', '.join(run.covers)} | "
                    f"{run.changed} | {status.replace('|', '/')} | {trend} | {seconds} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=None, help="family file (default: families.yaml here)")
    parser.add_argument("--work", type=Path, default=Path("families_run"))
    parser.add_argument("--workspace", type=Path, default=os.environ.get("MS_CONVERT_WORKSPACE"))
    parser.add_argument("--train-iters", type=int, default=None, help="override every run's --train-iters")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    show = sub.add_parser("show")
    show.add_argument("name")
    run_p = sub.add_parser("run")
    run_p.add_argument("names", nargs="+")
    run_p.add_argument("--again", action="store_true", help="also re-run the runs they need")
    tab = sub.add_parser("table")
    tab.add_argument("--kind", default="family", choices=["family", "finetune", "data", "merge"])
    tab.add_argument("--run", action="store_true", help="run the runs without a result first")
    args = parser.parse_args(argv)
    try:
        family_file = load(args.file) if args.file else load()
        if args.cmd == "list":
            for name, run in family_file.runs.items():
                print(f"{name}\t{run.kind}\t{run.script}\t{', '.join(run.covers)}")
            return 0
        if args.workspace is None:
            print("run_family.py: run 'source auto_convert_llm.sh' (or source <workspace>/set_env.sh) first, "
                  "or pass --workspace", file=sys.stderr)
            return 2
        runner = Runner(family_file, Path(args.workspace), args.work, train_iters=args.train_iters)
        if args.cmd == "show":
            entry, words = runner.command(args.name)
            print(f"cd {runner.llm} && {runner.python} {entry} " + " ".join(words))
            return 0
        if args.cmd == "run":
            unknown = [n for n in args.names if n not in family_file.runs]
            if unknown:
                print(f"run_family.py: no run {', '.join(unknown)} in {family_file.path} "
                      f"(runs: {', '.join(family_file.runs)})", file=sys.stderr)
                return 2
            status = 0
            done: set[str] = set()
            for name in args.names:
                r = runner.run(name, again=args.again, done=done)
                done.add(name)
                trend = f" {r.losses[0]:.4f} -> {r.losses[-1]:.4f}" if r.losses else ""
                print(f"{name}: {r.status}{trend} ({r.seconds:.0f} s; log {runner.folder(name) / 'log.txt'})")
                status |= 0 if r.ok else 1
            return status
        if args.run:
            done = set()
            for name, run in family_file.runs.items():
                previous = runner.result(name)
                if run.kind == args.kind and (previous is None or not runner.current(previous)):
                    runner.run(name, done=done)
                    done.add(name)
        print("\n".join(table(family_file, runner, args.kind)))
        return 0
    except (FamilyError, ScriptError) as exc:
        print(f"run_family.py: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
