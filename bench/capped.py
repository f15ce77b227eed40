"""Run a gpt2train command with PyTorch's CUDA allocator capped, so a larger card runs out of memory where a
smaller one would: `python bench/capped.py --mib 80300 -- train -e d48 -b 24 ...`.

80,300 MiB is what the allocator can hold on an 80 GB H100 (79.18 GiB total, less about 0.7 GiB that the
CUDA context takes outside the allocator, as the H100's out-of-memory reports showed). The cap is checked before
the run: a tensor just over it must fail to allocate.
"""

import argparse
import os

# as `gpt2train train` sets it, but before torch starts its allocator here
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")

import torch  # noqa: E402

from gpt2train.cli import main  # noqa: E402


def cap_allocator(mib: int) -> None:
    """Cap this process's CUDA allocator at ``mib`` MiB and prove the cap holds."""
    total = torch.cuda.get_device_properties(0).total_memory
    if mib * 2**20 >= total:
        raise SystemExit(f"--mib {mib}: the card holds only {total // 2**20} MiB")
    torch.cuda.set_per_process_memory_fraction(mib * 2**20 / total, 0)
    try:
        torch.empty((mib + 64) * 2**20, dtype=torch.uint8, device="cuda")
    except torch.OutOfMemoryError:
        print(f"allocator capped at {mib:,} MiB of {total // 2**20:,} MiB on {torch.cuda.get_device_name(0)}")
    else:
        raise SystemExit(f"--mib {mib}: the cap did not hold (a larger tensor was allocated)")
    torch.cuda.empty_cache()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, required=True, help="the allocator's cap in MiB")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then a gpt2train command line")
    args = parser.parse_args()
    cap_allocator(args.mib)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    raise SystemExit(main(command))
