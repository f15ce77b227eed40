"""What the planner (plan.py) expects of a run's GPU memory: the run's settings as it takes them, the largest
micro-batch that fits, the blocks to recompute whole for a given one, and what the optimizer state will take.
Off CUDA (``memory_bytes`` None) there is no card to plan for, and the answers are None."""

from __future__ import annotations

import torch

from gpt2train.config import ModelConfig, fp8_bf16_parts


def usable_gpu_memory(device: torch.device) -> int:
    """Bytes this process may allocate on its card: the card's total, or less where the allocator is capped
    (``torch.cuda.set_per_process_memory_fraction``, as ``python -m bench capped`` caps an H200 to an H100's
    80,300 MiB): the planner's answers (--recompute-whole -1, -b auto's start, the fit warning) are then for the
    cap the run has, not for the card it happens to be on."""
    total = torch.cuda.get_device_properties(device).total_memory
    fraction_of = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # torch >= 2.8
    fraction = fraction_of(device) if fraction_of is not None else 1.0
    return int(total * min(1.0, fraction))


def settings(cfg, world_size: int, **decided) -> dict:
    """The memory settings of ``cfg`` (a TrainConfig or ResolvedConfig) as ``plan.estimate_memory`` takes them;
    ``decided`` overrides fields that are decided but not yet in ``cfg`` (resolve's bf16_params and fp8_classifier,
    and ``fp8``, --fp8 as decided)."""
    fp8 = decided.pop("fp8", cfg.fp8)
    fields = dict(zero_stage=cfg.zero_stage, recompute=cfg.recompute, master_weights=cfg.master_weights,
                  bf16_params=cfg.bf16_params, recompute_whole=cfg.recompute_whole,
                  fp8_linears=fp8_linears(cfg, fp8),
                  fp8_classifier=max(cfg.fp8_classifier, 0), fp8_cache_weights=cfg.fp8_cache_weights)  # fmt: skip
    return dict(world_size=world_size, **{**fields, **decided})


def fp8_linears(cfg, fp8: int) -> str:
    """Which of the blocks' linears --fp8 (``fp8``, as decided) swaps for FP8 ones, as the planner models it
    (plan.FP8_LINEAR_MODES): none, all (ours in every linear; --fp8-bf16 weight-grads keeps the same copies) or some
    (--fp8-bf16 keeps some linears in bf16, or torchao's)."""
    if fp8 <= 0:
        return "none"
    kept_in_bf16 = set(fp8_bf16_parts(cfg.fp8_bf16)) - {"weight-grads"}
    return "all" if cfg.fp8_impl == "ours" and not kept_in_bf16 else "some"


def planned_max_batch(mcfg: ModelConfig, seq_len: int, memory_settings: dict, memory_bytes: int | None) -> int | None:
    """The planner's largest micro-batch for ``memory_bytes`` and these settings."""
    if not memory_bytes:
        return None
    from gpt2train.plan import max_batch_size

    return max_batch_size(mcfg, memory_bytes, seq_len, **memory_settings) or None


def planned_by_recompute(mcfg: ModelConfig, seq_len: int, memory_settings: dict, memory_bytes: int) -> dict:
    """The planner's largest micro-batch at each -r level, the other settings kept."""
    from gpt2train.plan import max_batch_by_recompute

    return max_batch_by_recompute(mcfg, memory_bytes, seq_len, **memory_settings)


def whole_blocks_needed(mcfg: ModelConfig, seq_len: int, memory_settings: dict, memory_bytes: int | None,
                        batch: int) -> int | None:  # fmt: skip
    """The planner's fewest blocks to recompute whole (--recompute-whole) for ``batch`` to fit at this -r; None off
    CUDA, at -r 3 or when no count fits it."""
    if not memory_bytes or memory_settings["recompute"] >= 3:
        return None
    from gpt2train.plan import whole_blocks_needed as planner_whole_blocks

    return planner_whole_blocks(mcfg, memory_bytes, batch, seq_len, **memory_settings)


def optimizer_state_bytes(mcfg: ModelConfig, seq_len: int, memory_settings: dict) -> int:
    """What the first update will allocate on this rank (the moments, and the master copy under --bf16-params 1),
    as the planner counts it."""
    from gpt2train.plan import estimate_memory

    parts = estimate_memory(mcfg, 1, seq_len, **memory_settings)
    return parts["optimizer"] + parts["master_weights"]
