"""python -m bench TOOL [ARGS...]: run one of gpt2train's measuring tools; `python -m bench` lists them and
`python -m bench TOOL --help` shows a tool's options. Run from the repository root: the tools measure this
tree's src/ (put first on the path here and for the runs they start) and read the corpus shards from
.carry/corpus by default. bench/README.md says what each measures and how to run it on a GPU machine.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

# tool name -> (module under bench/, what it measures; where it runs)
TOOLS = {
    "throughput": ("throughput", "ms/step, tok/s, MFU, memory, time to first step of d12/d48 beside llm.c (GPU)"),
    "startup": ("startup", "time to first step, cold (no compiled kernels, page cache dropped) and warm, split (GPU)"),
    "profile": ("profile_step", "where one real training step's GPU time goes, by kernel category (GPU)"),
    "memory-table": ("memory_table", "peak memory and tok/s by micro-batch, -r and -w; allocator capped or not (GPU)"),
    "capped": ("capped", "a gpt2train command on a capped allocator, e.g. an 80 GB H100's 80,300 MiB (GPU)"),
    "recompute-memory": ("recompute_memory", "activation bytes each -r level keeps per layer and token (GPU)"),
    "scaling": ("scaling", "tok/s on 1, 2, 4... GPUs of one host: speed-up and efficiency (GPUs)"),
    "loss-check": ("loss_check", "the 200-step d12 val loss that a speed lever must hold, mean of N runs (GPU)"),
    "time-to-loss": ("time_to_loss", "steps and seconds each recipe lever needs to reach classic's val loss (GPU)"),
    "determinism": ("determinism_gpu", "are GPU runs and resumes bit-identical; what --deterministic 1 costs (GPU)"),
    "kernels": ("kernels_gpu_check", "each fast-path kernel against its reference: error, time, memory (GPU/CPU)"),
    "eval-speed": ("eval_speed", "HellaSwag seconds, generation tok/s with and without the KV cache (GPU/CPU)"),
    "tokenize": ("tokenize_throughput", "tokenizer throughput: the prepare engine against a plain pool (CPU)"),
    "faults": ("fault_trials", "kill tiny runs at random moments, resume them, count lost data (CPU)"),
}


def usage() -> str:
    width = max(map(len, TOOLS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in TOOLS.items()]
    return "usage: python -m bench TOOL [ARGS...]   (TOOL --help for its options)\n\ntools:\n" + "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, args = argv[0], argv[1:]
    if name not in TOOLS:
        print(f"error: unknown bench tool {name!r}; known: {', '.join(TOOLS)} (python -m bench lists them)",
              file=sys.stderr)  # fmt: skip
        return 2
    root = Path(__file__).resolve().parents[1]
    paths = [str(root), str(root / "src")]
    sys.path[:0] = [p for p in paths if p not in sys.path]
    # the runs a tool starts (python -m gpt2train ...) import the same tree
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    module = f"bench.{TOOLS[name][0]}"
    sys.argv = [f"python -m bench {name}", *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
