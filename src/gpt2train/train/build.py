"""From a ResolvedConfig to a Run: the model on its device with its fast paths, the data, the optimizer and
the guards, restored from the checkpoint when resuming. The order is the one memory and speed need: the fast
paths before the -b auto probe (which measures them) and before torch.compile; compile before the DDP wrap;
the optimizer last, over the parameters as they will train."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from gpt2train import rundir
from gpt2train.config import Environment, ResolvedConfig, TrainConfig, looks_like_preset, preset
from gpt2train.data.loader import TrainLoader, ValLoader, check_shards
from gpt2train.data.prefetch import Prefetcher
from gpt2train.errors import UserError
from gpt2train.hardware import peak_flops
from gpt2train.train import checkpoint as ckpt
from gpt2train.train import distributed, memory, preflight, report
from gpt2train.train.accelerate import FastPaths, accelerate, weight_copy_layers
from gpt2train.train.faults import Faults
from gpt2train.train.guards import OutlierDetector
from gpt2train.train.lock import RunDir
from gpt2train.train.monitor import ScalarSink
from gpt2train.train.optim import build_optimizer
from gpt2train.train.runlog import RunLog

CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that capture CUDA graphs


@dataclass
class LoopState:
    """What the loop changes as it goes (a checkpoint restores ``step``; a rollback the skip bookkeeping)."""

    step: int = 0
    updates: int = 0  # updates applied in this process: a run that applied none must not end in success
    skips_in_a_row: int = 0
    last_skip: str = ""
    skipped: list = field(default_factory=list)  # (step, reason) of the skips in a row, for a rollback
    rollbacks: int = 0
    drop_before: dict = field(default_factory=dict)  # step -> step-batches to drop before it (after a rollback)
    last_val: float | None = None


@dataclass
class Run:
    """Everything a training run holds once built."""

    device: torch.device
    rank: int
    world_size: int
    console: report.Console
    raw_model: torch.nn.Module  # the model itself: checkpoints, samples, HellaSwag
    model: torch.nn.Module  # what a step calls: the compiled model and/or the DDP wrapper
    optimizer: torch.optim.Optimizer
    zero: object | None  # the ZeRO-1 optimizer (-z 1 with several processes and AdamW), also ``optimizer``
    train_loader: TrainLoader
    train_batches: Prefetcher  # the train loader's step-batches, read ahead
    val_loader: ValLoader
    loss_detector: OutlierDetector
    grad_detector: OutlierDetector
    faults: Faults
    runlog: RunLog
    B: int
    T: int
    grad_accum: int
    total_batch: int
    max_steps: int
    autocast_dtype: torch.dtype | None
    cuda_graphs: bool  # compiled with CUDA graphs: each forward marks a new graph step
    weight_copy_layers: list  # --fp8-cache-weights: the FP8 linears whose weights are cast once a step
    peak_flops: float | None
    planned_max_batch: int | None  # the planner's largest B for this card and these settings (None off CUDA)
    resume_step: int | None
    determinism: dict
    state: LoopState
    # made last, after a resume has trimmed the logs they start from
    hellaswag: list | None = None  # the HellaSwag examples (-h 1)
    scalars: ScalarSink | None = None


def claim(run_dir: RunDir, info: distributed.DistInfo) -> None:
    """Make and lock -o (the lock: rank 0 only). Collective under several processes, before any other one,
    so that when rank 0 finds the directory taken every rank stops with its line instead of waiting on it."""
    failure = None
    try:
        run_dir.open(warn=report.Console(info.is_main))
    except UserError as e:
        failure = e
    failed = distributed.first_failure(None if failure is None else str(failure), info.device)
    if failure is not None:
        raise failure
    if failed is not None:
        raise UserError(failed[1])


def environment(cfg: TrainConfig, info: distributed.DistInfo, console) -> tuple[Environment, dict | None]:
    """(what resolve() needs to know of this process and -o, the weights the model starts from: the resumed
    checkpoint's, -e FILE's, or None for a fresh init)."""
    from gpt2train.formats.load import load_pretrained
    from gpt2train.kernels.fp8_linear import fp8_supported

    device = info.device
    gpu_memory = memory.usable_gpu_memory(device) if device.type == "cuda" else None
    env = dict(device=device, rank=info.rank, world_size=info.world_size, gpu_memory=gpu_memory,
               fp8_supported=fp8_supported(device),
               gpu_capability=torch.cuda.get_device_capability(device) if device.type == "cuda" else None)  # fmt: skip
    step = rundir.resume_step(cfg.output_dir, warn=console) if cfg.resume == 1 and cfg.output_dir else None
    if step is not None:
        path = ckpt.state_file_for(cfg.output_dir, step, info.rank, info.world_size, cfg.zero_stage)
        saved = ckpt.read_state_meta(path)["config"]
        # the checkpoint's own architecture (an llm.c .bin, or a modern model's safetensors)
        mcfg, weights = load_pretrained(rundir.model_path(cfg.output_dir, step))
        return Environment(**env, resume_step=step, resume_config=saved, resume_model=mcfg), weights
    if preset(cfg.model) is None and not looks_like_preset(cfg.model) and os.path.exists(cfg.model):
        mcfg, weights = load_pretrained(cfg.model)
        return Environment(**env, pretrained_model=mcfg), weights
    return Environment(**env), None


def _model(rc: ResolvedConfig, env: Environment, weights: dict | None) -> tuple[torch.nn.Module, Callable[[], None]]:
    """The model on its device, at its parameter dtype: a fresh init, or ``weights``; and a function that returns
    once its weights hold their values. A fresh init draws them in a background thread (kernels and copies that
    release the GIL), so the process can import the compiler meanwhile; nothing may read them before."""
    from gpt2train.model import GPT, empty_model

    dtype = torch.bfloat16 if not rc.master_weights or rc.bf16_params else torch.float32
    if env.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(rc.tf32)
        torch.backends.cudnn.allow_tf32 = bool(rc.tf32)
        _select_attention_backend(rc.attention)
    if weights is None:  # built where it runs, at its dtype (the values of the fp32 CPU build, cast)
        model = empty_model(rc.model_config, env.device, dtype)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="init_weights")
        drawing = pool.submit(model.init_weights, rc.seed)
        pool.shutdown(wait=False)  # the thread ends with its one task

        def weights_drawn() -> None:
            drawing.result()  # (re-raises what the draws raised)

        return model, weights_drawn
    model = GPT(rc.model_config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise UserError(f"model weights do not fit the model shape: {str(e).splitlines()[0]}") from None
    return model.to(dtype).to(env.device), lambda: None


def import_compiler(device: torch.device) -> None:
    """Import what the first step's compilation would import (Dynamo, Inductor and, on CUDA, its Triton code
    generation) now, while the weights are drawn in the background."""
    import torch._dynamo  # noqa: F401
    import torch._inductor.compile_fx  # noqa: F401

    if device.type == "cuda":
        import torch._inductor.codegen.triton  # noqa: F401


def _select_attention_backend(name: str) -> None:
    """Restrict SDPA to one fused backend (math stays as the fallback for shapes it cannot take)."""
    if name == "auto":
        return
    flags = {"flash": torch.backends.cuda.enable_flash_sdp, "cudnn": torch.backends.cuda.enable_cudnn_sdp,
             "efficient": torch.backends.cuda.enable_mem_efficient_sdp}  # fmt: skip
    for backend, enable in flags.items():
        enable(backend == name)


def start_compile_workers() -> None:
    """Start Inductor's compile workers now, while the model and data are made: a pool not yet up when the first
    step compiles leaves every kernel of that compilation to this process, one after another (torch starts it only
    at the first compilation, and on a machine just booted its workers take seconds to import torch; bench startup's
    cold start, BENCHMARKS.md "Start-up")."""
    try:
        from torch._inductor.async_compile import maybe_warm_pool
    except ImportError:  # a torch without it starts its pool at the first compilation, as before
        return
    maybe_warm_pool()


def fast_paths(rc: ResolvedConfig) -> FastPaths:
    return FastPaths(recompute=rc.recompute, recompute_whole=rc.recompute_whole, gelu_fusion=rc.gelu_fusion,
                     fp8=rc.fp8, fp8_impl=rc.fp8_impl, fp8_bf16=tuple(filter(None, rc.fp8_bf16.split(","))),
                     fp8_cast_kernel=int(rc.fp8_cast_kernel),
                     fp8_delayed=rc.fp8_scaling == "delayed", fp8_grad=rc.fp8_grad,
                     fp8_cache_weights=bool(rc.fp8_cache_weights), fp8_gelu_cast=bool(rc.fp8_gelu_cast),
                     fp8_qkv_cast=bool(rc.fp8_qkv_cast), fp8_norm_cast=bool(rc.fp8_norm_cast),
                     accumulate_grads=bool(rc.accumulate_in_matmul),
                     fused_classifier=bool(rc.fused_classifier), classifier_chunk=rc.classifier_chunk,
                     fp8_classifier=rc.fp8_classifier,
                     compile=bool(rc.compile), compile_scope=rc.compile_scope,
                     compile_mode=rc.compile_mode)  # fmt: skip


def _auto_batch_size(rc: ResolvedConfig, env: Environment, model, autocast_dtype, console) -> int:
    """-b auto: the largest B that fits (probing real steps on CUDA), keeping -d."""
    from gpt2train.train.batch_size import auto_batch_size

    start, reserve = None, 0
    if env.device.type == "cuda":  # the planner's figure for the free memory starts the search
        settings = memory.settings(rc, env.world_size)
        # the card's free memory, within what this process may still allocate under a cap
        free = min(torch.cuda.mem_get_info(env.device)[0], env.gpu_memory - torch.cuda.memory_reserved(env.device))
        start = memory.planned_max_batch(rc.model_config, rc.seq_len, settings, free) or 1
        reserve = memory.optimizer_state_bytes(rc.model_config, rc.seq_len, settings)
    B = auto_batch_size(model, rc.total_batch_size, rc.seq_len, env.world_size, env.device, autocast_dtype, start,
                        reserve_bytes=reserve)  # fmt: skip
    console(f"-b auto: micro-batch B={B} (planner's estimate {start})" if start else f"-b auto: B={B}")
    return B


def _optimizer(rc: ResolvedConfig, env: Environment, raw_model, step_model):
    """(the module a step calls, the optimizer, the ZeRO-1 optimizer or None)."""
    several = env.world_size > 1
    muon = rc.optimizer == "muon"
    # Muon under -z 1 keeps DDP's all-reduce and shards by whole parameters instead (muon.py assign_owners)
    if several and rc.zero_stage >= 1 and not muon:
        from gpt2train.train.zero import ZeroAdamW

        # no DDP: ZeroAdamW reduce-scatters the gradients itself, overlapped with the backward pass
        reduce_dtype = torch.bfloat16 if rc.grad_reduce_dtype == "bf16" else torch.float32
        zero = ZeroAdamW(raw_model, rc.lr, rc.weight_decay, (rc.beta1, rc.beta2), rc.eps, reduce_dtype=reduce_dtype,
                         seed=rc.seed, bf16_master=bool(rc.bf16_params))  # fmt: skip
        return step_model, zero, zero
    if several:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # gradients live in DDP's buckets (no second copy); the all-reduce overlaps the backward pass
        step_model = DDP(step_model, device_ids=[env.device.index] if env.device.type == "cuda" else None,
                         gradient_as_bucket_view=True)  # fmt: skip
        if rc.grad_reduce_dtype == "bf16":
            from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import bf16_compress_hook

            from gpt2train.train.zero import bf16_average_hook

            step_model.register_comm_hook(None, bf16_compress_hook if env.device.type == "cuda"
                                          else bf16_average_hook)  # fmt: skip
    if muon:
        from gpt2train.train.muon import build_muon_optimizer

        return step_model, build_muon_optimizer(raw_model, rc, rc.zero_stage >= 1 and several), None
    optimizer = build_optimizer(raw_model, rc.lr, rc.weight_decay, (rc.beta1, rc.beta2), rc.eps, env.device.type,
                                seed=rc.seed, bf16_master=bool(rc.bf16_params), flat=not several)  # fmt: skip
    return step_model, optimizer, None


def _load_hellaswag(rc: ResolvedConfig, console):
    if not rc.hellaswag:
        return None
    from gpt2train.paths import default_hellaswag_path

    path = rc.hellaswag_file or str(default_hellaswag_path())
    if not os.path.exists(path):
        console(f"HellaSwag eval not found at {path}, skipping its evaluation")
        console("Run `gpt2train prepare hellaswag` (or pass --hellaswag-file FILE) to use it with -h 1.")
        return None
    from gpt2train.data.hellaswag import load_examples

    return load_examples(path)


def build(rc: ResolvedConfig, env: Environment, weights: dict | None, console: report.Console,
          determinism: dict | None = None) -> Run:  # fmt: skip
    """The Run of ``rc``: ``weights`` (environment()'s) are the model's start, ``determinism`` the mode's record."""
    device, is_main = env.device, env.rank == 0
    mcfg = rc.model_config
    if device.type == "cuda" and rc.compile:  # up by the first step (the pool compiles Triton kernels: CUDA's)
        start_compile_workers()
    # before a minute goes into building the model: every shard's header and length and the val shards' token
    # ids (the train loader checks each train shard's ids as it opens it: a start on 100 shards reads no 20 GB)
    check_shards(rc.val_data, "-j", mcfg.vocab_size)
    if not rc.overfit_single_batch:
        check_shards(rc.train_data, "-i", None)
    raw_model, weights_drawn = _model(rc, env, weights)
    if rc.compile:
        import_compiler(device)  # 1-2 s of imports beside the draws of a fresh init
    weights_drawn()
    autocast_dtype = torch.bfloat16 if rc.dtype == "bf16" else None
    for note in rc.notes:
        console(note)
    paths = fast_paths(rc)
    if rc.batch_size:
        B, step_model = rc.batch_size, accelerate(raw_model, paths)  # (compiling is lazy: at the first step)
        if warning := report.run_batch_fit_warning(rc, env, B):  # before a minute of compiling ends in OOM
            console(warning)
    else:  # -b auto probes the fast paths' memory uncompiled, then compiles
        accelerate(raw_model, dataclasses.replace(paths, compile=False))
        B = _auto_batch_size(rc, env, raw_model, autocast_dtype, console)
        step_model = accelerate(raw_model, paths)
    T = rc.seq_len
    total_batch = rc.total_batch_size if rc.total_batch_size > 0 else B * T * env.world_size
    state, runlog = LoopState(), RunLog(rc.output_dir, active=is_main)

    def epoch_end(epoch: int) -> None:
        console(f"train data: epoch {epoch} finished, starting epoch {epoch + 1}")
        runlog.event(state.step, "epoch_end", epoch=epoch)

    train_loader = TrainLoader(
        rc.val_data if rc.overfit_single_batch else rc.train_data, B, T, total_batch, env.rank, env.world_size,
        rc.seed, shuffle=rc.shuffle and not rc.overfit_single_batch, flag="-j" if rc.overfit_single_batch else "-i",
        on_epoch_end=epoch_end, vocab_size=mcfg.vocab_size,
    )  # fmt: skip
    train_batches = Prefetcher(train_loader, pin_memory=device.type == "cuda")
    val_loader = ValLoader(rc.val_data, B, T, rc.val_max_steps, warn=console, vocab_size=mcfg.vocab_size)
    max_steps = rc.max_steps if rc.max_steps > 0 else train_loader.num_tokens // total_batch
    if max_steps <= 0:
        raise UserError(f"-i {rc.train_data!r} holds less than one step of {total_batch} tokens")
    preflight.check_output_space(rc.output_dir, mcfg.num_parameters(), rc.model_file_dtype, rc.master_weights,
                                 rc.checkpoint_every, rc.bf16_params)  # fmt: skip
    step_model, optimizer, zero = _optimizer(rc, env, raw_model, step_model)
    run = Run(
        device=device, rank=env.rank, world_size=env.world_size, console=console,
        raw_model=raw_model, model=step_model, optimizer=optimizer, zero=zero,
        train_loader=train_loader, train_batches=train_batches, val_loader=val_loader,
        loss_detector=OutlierDetector(rc.outlier_window), grad_detector=OutlierDetector(rc.outlier_window),
        faults=Faults(env.rank), runlog=runlog,
        B=B, T=T, grad_accum=train_loader.grad_accum, total_batch=total_batch, max_steps=max_steps,
        autocast_dtype=autocast_dtype, cuda_graphs=bool(rc.compile) and rc.compile_mode in CUDA_GRAPH_MODES,
        weight_copy_layers=weight_copy_layers(raw_model),
        peak_flops=peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None,
        planned_max_batch=memory.planned_max_batch(mcfg, T, memory.settings(rc, env.world_size), env.gpu_memory),
        resume_step=env.resume_step, determinism=determinism or {"enabled": False}, state=state,
    )  # fmt: skip
    if env.resume_step is not None:
        ckpt.restore(run, rc, env.resume_step)
        runlog.trim_after(env.resume_step)
    else:
        runlog.start_fresh()
    run.hellaswag = _load_hellaswag(rc, console)
    run.scalars = ScalarSink(rc.output_dir, is_main, rc.tensorboard, rc.wandb, rc.to_dict(), console,
                             resume_step=env.resume_step)  # fmt: skip
    return run
