"""The training loop, in the order llm.c's train_gpt2.cu runs it.

for step in 0..max_steps:
    val loss every -v steps (and at 0 and the end); HellaSwag with it when -h 1
    a sample every -s steps (and at the end); a checkpoint every -n steps (and at the end)
    if last step: stop
    forward/backward over grad_accum micro-batches (the gradient all-reduce only on the last)
    clip to grad_clip, skip the update on NaN/Inf or on a loss/grad z-score above -sl/-sg
    AdamW step at the scheduled lr; log `s:N trl:...` to main.log
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time

import torch

from gpt2train import recipe
from gpt2train.config import ModelConfig, TrainConfig, looks_like_preset, preset
from gpt2train.data.loader import ShardUnreadable, TrainLoader, ValLoader, check_shards
from gpt2train.data.prefetch import Prefetcher
from gpt2train.errors import UserError
from gpt2train.hardware import peak_flops
from gpt2train.kernels.fp8_linear import fp8_supported
from gpt2train.model import GPT, build_model
from gpt2train.train import checkpoint as ckpt
from gpt2train.train import determinism, distributed, preflight
from gpt2train.train.accelerate import FastPaths, accelerate
from gpt2train.train.faults import Faults
from gpt2train.train.guards import OutlierDetector, clip_grad_norm_fp32_
from gpt2train.train.lock import RunDir
from gpt2train.train.optim import build_optimizer, set_lr
from gpt2train.train.runlog import RunLog, format_duration
from gpt2train.train.schedule import learning_rate
from gpt2train.train.signals import CheckpointRequest

# settings that change the numbers of a resumed run (so it would no longer equal an uninterrupted one)
_EXACTNESS_KEYS = ("lr", "warmup_steps", "final_lr_frac", "weight_decay", "lr_schedule", "max_steps",
                   "total_batch_size", "seq_len", "batch_size", "seed", "beta1", "beta2", "eps", "grad_clip",
                   "master_weights", "bf16_params", "dtype", "shuffle", "optimizer", "recipe", "muon_lr",
                   "muon_momentum", "head_lr", "embed_lr", "deterministic")  # fmt: skip


class Console:
    """Rank 0 prints; everyone else stays quiet."""

    def __init__(self, active: bool):
        self.active = active

    def __call__(self, *args, **kwargs) -> None:
        if self.active:
            print(*args, **kwargs, flush=True)


def resolve_model(cfg: TrainConfig, resume_step: int | None) -> tuple[ModelConfig, dict | None, str]:
    """(shape, weights or None for a fresh init, a word on where they come from)."""
    if resume_step is not None:
        from gpt2train.formats.load import load_pretrained

        # the checkpoint's own architecture (an llm.c .bin, or a modern model's safetensors)
        mcfg, sd = load_pretrained(ckpt.model_path(cfg.output_dir, resume_step))
        return mcfg, sd, f"checkpoint at step {resume_step}"
    mcfg = preset(cfg.model)
    if mcfg is None:
        if looks_like_preset(cfg.model) or not os.path.exists(cfg.model):
            raise UserError(
                f"-e {cfg.model!r}: not a model preset (d6..d84, gpt2:dN, gpt3:cN) nor an existing model file or directory"
            )
        from gpt2train.formats.load import load_pretrained

        mcfg, sd = load_pretrained(cfg.model)
        if recipe.architecture(cfg) and mcfg.classic:
            raise UserError(f"-e {cfg.model}: architecture levers ({', '.join(recipe.architecture(cfg))}) "
                            "need a model trained with them or a fresh one (a preset)")  # fmt: skip
        return _apply_overrides(mcfg, cfg, pretrained=True), sd, f"pretrained {cfg.model}"
    mcfg = recipe.apply_architecture(_apply_overrides(mcfg, cfg, pretrained=False), cfg)
    return mcfg, None, "random"


def _apply_overrides(mcfg: ModelConfig, cfg: TrainConfig, pretrained: bool) -> ModelConfig:
    overrides = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "vocab_size", "max_seq_len")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return mcfg
    if pretrained:
        raise UserError(
            "--n-layer/--n-head/--n-embd/--vocab-size/--max-seq-len cannot change a pretrained model's shape"
        )
    fields = mcfg.to_dict()
    fields.update(overrides)
    if "vocab_size" in overrides:
        fields["padded_vocab_size"] = 0
    return ModelConfig(**fields)


def auto_accumulate_in_matmul(cfg: TrainConfig, fast: bool, several_processes: bool) -> int:
    """``--accumulate-in-matmul -1``: on (1) where ``.grad`` is one flat bf16 buffer that persists over the
    micro-steps (build_optimizer's flat layout in one process, AdamW, the fast path); elsewhere a layer would
    see no usable ``.grad`` and let autograd sum anyway (grad_accum.py). Off with -r 3, where no block would use
    it (train/accelerate.py leaves it off in blocks recomputed whole)."""
    bf16_model = bool(cfg.bf16_params) or not cfg.master_weights
    return int(fast and not several_processes and bf16_model and cfg.recompute < 3
               and recipe.levers(cfg)["optimizer"] == "adamw")  # fmt: skip


def process_age() -> float:
    """Seconds since this process started (Linux's /proc; 0.0 where that cannot be read)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def batch_fit_warning(
    batch: int,
    recompute: int,
    planned: dict[int, int | None],
    whole: int | None = None,
    whole_now: int = 0,
    limit: int | None = None,
) -> str | None:
    """A warning when ``-b`` is above ``limit``, the planner's largest B at the run's settings (default
    ``planned[recompute]``; ``planned``: its largest B at each -r level), naming what fits it by the same
    estimate: ``--recompute-whole whole`` (the fewest blocks recomputed whole; None: no count does) and the lowest
    -r; None when it fits or is not known (off CUDA). ``whole_now``: the run's own --recompute-whole."""
    limit = planned.get(recompute) if limit is None else limit
    if not limit or batch <= limit:
        return None
    fixes = [f"--recompute-whole {whole}"] if whole and whole > whole_now and recompute < 3 else []
    fixes += [f"-r {r}" for r, b in sorted(planned.items()) if r > recompute and b and b >= batch][:1]
    hint = (
        f"it fits with {' or '.join(fixes)} by the same estimate" if fixes else "nothing fits it: lower -b or use -w 0"
    )
    at = f"-r {recompute}" + (f" --recompute-whole {whole_now}" if whole_now else "")
    return (f"warning: -b {batch} is above the largest B that gpt2train plan expects to fit on this card at "
            f"{at} ({limit}); {hint} (the estimate is within a few percent; going on)")  # fmt: skip


def _select_attention_backend(name: str) -> None:
    """Restrict SDPA to one fused backend (math stays as the fallback for shapes it cannot take)."""
    if name == "auto":
        return
    flags = {"flash": torch.backends.cuda.enable_flash_sdp, "cudnn": torch.backends.cuda.enable_cudnn_sdp,
             "efficient": torch.backends.cuda.enable_mem_efficient_sdp}  # fmt: skip
    if name not in (*flags, "math"):
        raise UserError(f"--attention {name!r}: use auto, flash, cudnn, efficient or math")
    for backend, enable in flags.items():
        enable(backend == name)


class _StopRequest:
    """SIGTERM/SIGINT (preemption, Ctrl-C): finish the step, write a checkpoint, exit 0."""

    def __init__(self):
        self.signal_name: str | None = None
        self.when = 0.0
        self._previous = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass

    def _handle(self, signum, frame) -> None:
        if self.signal_name is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.when = time.perf_counter()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(cfg: TrainConfig) -> int:
    """Run ``gpt2train train``; returns the process exit code."""
    determinism.prepare_environment(cfg.deterministic, cfg.device)  # before any CUDA work
    info = distributed.setup(cfg.device)
    run_dir = RunDir(cfg.output_dir, lock=info.is_main)
    failed = True
    try:
        _claim(run_dir, info)
        with determinism.mode(bool(cfg.deterministic), cfg.attention) as det:
            trainer = Trainer(cfg, info, det)
            try:
                code = trainer.run()
            except torch.OutOfMemoryError:
                raise trainer.out_of_memory() from None
        failed = False
        return code
    finally:
        run_dir.close(failed)  # a run that failed before writing anything leaves no empty -o behind
        distributed.teardown()


def _claim(run_dir: RunDir, info: distributed.DistInfo) -> None:
    """Make and lock -o (the lock: rank 0 only). Collective under several processes, before any other one,
    so that when rank 0 finds the directory taken every rank stops with its line instead of waiting on it."""
    failure = None
    try:
        run_dir.open(warn=Console(info.is_main))
    except UserError as e:
        failure = e
    failed = distributed.first_failure(None if failure is None else str(failure), info.device)
    if failure is not None:
        raise failure
    if failed is not None:
        raise UserError(failed[1])


class Trainer:
    def __init__(self, cfg: TrainConfig, info: distributed.DistInfo, determinism_info: dict | None = None):
        self.cfg, self.info = cfg, info
        self.determinism = determinism_info or {"enabled": False}
        self.print = Console(info.is_main)
        self.device = info.device
        self.fast = self.device.type == "cuda" and not cfg.plain
        self.t_launch = time.perf_counter() - process_age()  # "time to first step" counts Python's start-up too

    # -- set-up -----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg, info = self.cfg, self.info
        if cfg.batch_size < 0 or cfg.seq_len <= 0:
            raise UserError(f"-b {cfg.batch_size} -t {cfg.seq_len}: batch size and sequence length must be positive")
        if cfg.zero_stage not in (0, 1):
            raise UserError(f"-z {cfg.zero_stage}: supported ZeRO stages are 0 and 1")
        if cfg.compile_mode not in ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
            raise UserError(f"--compile-mode {cfg.compile_mode!r}: use default, max-autotune-no-cudagraphs, "
                            "max-autotune or reduce-overhead")  # fmt: skip
        if cfg.grad_reduce_dtype not in ("fp32", "bf16"):
            raise UserError(f"--grad-reduce-dtype {cfg.grad_reduce_dtype!r}: use fp32 or bf16")
        if cfg.bf16_params not in (-1, 0, 1):
            raise UserError(f"--bf16-params {cfg.bf16_params}: use 0, 1 or -1 (auto)")
        if cfg.bf16_params == 1 and not cfg.master_weights:
            raise UserError("-w 0 --bf16-params 1: contradictory (-w 0 keeps no fp32 master copy; --bf16-params 1 "
                            "keeps it in the optimizer): drop one")  # fmt: skip
        if cfg.bf16_params == 1 and recipe.levers(cfg)["optimizer"] == "muon":
            raise UserError("--optimizer muon --bf16-params 1: Muon updates fp32 parameters; drop --bf16-params")
        if cfg.gelu_fusion not in (-1, 0, 1, 2):
            raise UserError(f"-ge {cfg.gelu_fusion}: use 0 (off), 1 (forward), 2 (forward and backward) or -1 (auto)")
        if cfg.fp8 not in (0, 1, 2):
            raise UserError(f"--fp8 {cfg.fp8}: use 0 (bf16 matmuls), 1 (FP8) or 2 (FP8, the gradients' matmuls "
                            "in fast accumulation too)")  # fmt: skip
        if cfg.fp8 and cfg.plain:
            raise UserError("--fp8 1 --plain: FP8 matmuls are a fast path; drop one")
        if cfg.fp8 and not fp8_supported(self.device):
            raise UserError(f"--fp8 1: {self.device} has no FP8 matmuls (needs CUDA capability 8.9+, e.g. an H100); "
                            "drop --fp8")  # fmt: skip
        if cfg.accumulate_in_matmul not in (-1, 0, 1):
            raise UserError(f"--accumulate-in-matmul {cfg.accumulate_in_matmul}: use 0, 1 or -1 (auto)")
        if cfg.accumulate_in_matmul == 1 and info.enabled:
            raise UserError("--accumulate-in-matmul 1 runs in one process only (DDP and ZeRO-1 take each gradient "
                            "from autograd as it is made): drop it")  # fmt: skip
        if cfg.recompute not in (0, 1, 2, 3):
            raise UserError(f"-r {cfg.recompute}: use 0 (none), 1 (GELU), 2 (GELU and LayerNorm) or 3 (each block's "
                            "sublayers whole: the least memory)")  # fmt: skip
        if cfg.recompute_whole < -1:
            raise UserError(f"--recompute-whole {cfg.recompute_whole}: the number of blocks recomputed whole (0 or "
                            "more), or -1 for the fewest that -b needs")  # fmt: skip
        if cfg.recompute_whole == -1 and not cfg.batch_size:
            raise UserError("--recompute-whole -1 picks the blocks for a given -b: give -b B, or a count N with "
                            "-b auto")  # fmt: skip
        if cfg.on_max_skips not in ("stop", "rollback"):
            raise UserError(f"--on-max-skips {cfg.on_max_skips!r}: use stop or rollback")
        if cfg.on_max_skips == "rollback" and not (cfg.max_skips > 0 and cfg.output_dir and cfg.checkpoint_every > 0):
            raise UserError(
                "--on-max-skips rollback needs --max-skips K, -o DIR and -n N (checkpoints to roll back to)"
            )
        if not cfg.output_dir and (cfg.resume or cfg.checkpoint_every):
            raise UserError("-y/-n need an output directory: add -o DIR")

        self.resume_step = None
        if cfg.resume == 1 and cfg.output_dir:
            self.resume_step = ckpt.resume_step(cfg.output_dir, warn=self.print)

        self.model_cfg, weights, self.init_source = resolve_model(cfg, self.resume_step)
        # before a minute goes into building the model: every shard's header and length and the val shards' token
        # ids (the train loader checks each train shard's ids as it opens it: a start on 100 shards reads no 20 GB)
        check_shards(cfg.val_data, "-j", self.model_cfg.vocab_size)
        if not cfg.overfit_single_batch:
            check_shards(cfg.train_data, "-i", None)
        if cfg.seq_len > self.model_cfg.max_seq_len:
            raise UserError(f"-t {cfg.seq_len} exceeds the model's max sequence length {self.model_cfg.max_seq_len}")

        # model, precision, fast paths
        model = build_model(self.model_cfg, cfg.seed) if weights is None else self._from_weights(weights)
        self.autocast_dtype = self._compute_dtype()
        if cfg.bf16_params == -1:  # resolved once here; config.json and the checkpoints record the outcome
            cfg.bf16_params = self._auto_bf16_params()
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
            torch.backends.cudnn.allow_tf32 = bool(cfg.tf32)
            _select_attention_backend(cfg.attention)
        if not cfg.master_weights or cfg.bf16_params:
            if self.autocast_dtype is None:
                what = ("--bf16-params 1 (bf16 parameters, the fp32 master copy in the optimizer)" if cfg.bf16_params
                        else "-w 0 (bf16 weights without an fp32 master copy)")  # fmt: skip
                fix = "add --dtype bf16" if cfg.dtype == "auto" else "drop --dtype fp32"
                raise UserError(f"{what} needs bf16: {fix}")
            model = model.to(torch.bfloat16)
        self.raw_model: GPT = model.to(self.device)
        if cfg.recompute_whole == -1:  # the planner's fewest blocks for -b on this card; config.json records it
            cfg.recompute_whole = self._whole_blocks_needed(cfg.batch_size) or 0
            if cfg.recompute_whole:
                self.print(f"--recompute-whole -1: the first {cfg.recompute_whole} of {self.model_cfg.n_layer} blocks "
                           f"recomputed whole, so that -b {cfg.batch_size} fits (gpt2train plan's estimate)")  # fmt: skip
        self._configure_fast_paths()
        self.T = cfg.seq_len
        self.B = cfg.batch_size or self._auto_batch_size()
        # before a minute of compiling ends in out of memory; not with --fp8, whose one-byte saved inputs the
        # planner does not model (its bf16 estimate is 14 GB high at d48 B=16)
        if cfg.batch_size and self.device.type == "cuda" and not cfg.fp8:
            from gpt2train.plan import max_batch_by_recompute

            total = torch.cuda.get_device_properties(self.device).total_memory
            planned = max_batch_by_recompute(self.model_cfg, total, cfg.seq_len, **self._memory_settings())
            limit = self._planned_max_batch()
            whole = self._whole_blocks_needed(self.B) if limit is not None and self.B > limit else None
            if warning := batch_fit_warning(self.B, cfg.recompute, planned, whole, cfg.recompute_whole, limit):
                self.print(warning)
        tokens_per_fwdbwd = self.B * self.T * info.world_size
        self.total_batch = cfg.total_batch_size if cfg.total_batch_size > 0 else tokens_per_fwdbwd
        train_pattern = cfg.val_data if cfg.overfit_single_batch else cfg.train_data
        self.train_loader = TrainLoader(
            train_pattern, self.B, self.T, self.total_batch, info.rank, info.world_size, cfg.seed,
            shuffle=cfg.shuffle and not cfg.overfit_single_batch,
            flag="-j" if cfg.overfit_single_batch else "-i", on_epoch_end=self._epoch_end,
            vocab_size=self.model_cfg.vocab_size,
        )  # fmt: skip
        self.grad_accum = self.train_loader.grad_accum
        self.train_batches = Prefetcher(self.train_loader, pin_memory=self.device.type == "cuda")
        self.val_loader = ValLoader(cfg.val_data, self.B, self.T, cfg.val_max_steps, warn=self.print,
                                    vocab_size=self.model_cfg.vocab_size)  # fmt: skip
        self.max_steps = cfg.max_steps if cfg.max_steps > 0 else self.train_loader.num_tokens // self.total_batch
        if self.max_steps <= 0:
            raise UserError(f"-i {cfg.train_data!r} holds less than one step of {self.total_batch} tokens")
        preflight.check_output_space(cfg.output_dir, self.model_cfg.num_parameters(), cfg.model_file_dtype,
                                     cfg.master_weights, cfg.checkpoint_every, cfg.bf16_params)  # fmt: skip

        # the fast paths again, now compiled (after -b auto's probe, which runs them eagerly)
        self.model = accelerate(self.raw_model, self.fast_paths)
        self.levers = recipe.levers(cfg)
        muon = self.levers["optimizer"] == "muon"
        self.zero = None  # the ZeRO-1 optimizer under -z 1 with several processes (AdamW)
        # Muon under -z 1 keeps DDP's all-reduce and shards by whole parameters instead (muon.py assign_owners)
        if info.enabled and cfg.zero_stage >= 1 and not muon:
            from gpt2train.train.zero import ZeroAdamW

            # no DDP: ZeroAdamW reduce-scatters the gradients itself, overlapped with the backward pass
            reduce_dtype = torch.bfloat16 if cfg.grad_reduce_dtype == "bf16" else torch.float32
            self.optimizer = self.zero = ZeroAdamW(self.raw_model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                                                   cfg.eps, reduce_dtype=reduce_dtype, seed=cfg.seed,
                                                   bf16_master=bool(cfg.bf16_params))  # fmt: skip
        else:
            if info.enabled:
                from torch.nn.parallel import DistributedDataParallel as DDP

                # gradients live in DDP's buckets (no second copy); the all-reduce overlaps the backward pass
                self.model = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                 gradient_as_bucket_view=True)  # fmt: skip
                if cfg.grad_reduce_dtype == "bf16":
                    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import bf16_compress_hook

                    from gpt2train.train.zero import bf16_average_hook

                    self.model.register_comm_hook(None, bf16_compress_hook if self.device.type == "cuda"
                                                  else bf16_average_hook)  # fmt: skip
            if muon:
                from gpt2train.train.muon import build_muon_optimizer

                self.optimizer = build_muon_optimizer(self.raw_model, cfg, self.levers,
                                                      cfg.zero_stage >= 1 and info.enabled)  # fmt: skip
            else:
                self.optimizer = build_optimizer(self.raw_model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                                                 cfg.eps, self.device.type, seed=cfg.seed,
                                                 bf16_master=bool(cfg.bf16_params),
                                                 flat=not info.enabled)  # fmt: skip
        self.loss_detector = OutlierDetector(cfg.outlier_window)
        self.grad_detector = OutlierDetector(cfg.outlier_window)
        self.faults = Faults(info.rank)
        self.skips_in_a_row = 0
        self.updates = 0  # updates applied in this process: a run that applied none must not end in success
        self.last_skip = ""
        self.skipped: list[tuple[int, str]] = []  # (step, reason) of the skips in a row, for a rollback
        self.rollbacks = 0
        self.drop_before: dict[int, int] = {}  # step -> step-batches to drop before it (bad ones, after a rollback)
        self.step = 0
        self.runlog = RunLog(cfg.output_dir, active=info.is_main)
        if self.resume_step is not None:
            self._restore(self.resume_step)
            self.runlog.trim_after(self.resume_step)
        else:
            self.runlog.start_fresh()
        self.hellaswag = self._load_hellaswag()
        from gpt2train.train.monitor import ScalarSink

        self.scalars = ScalarSink(cfg.output_dir, info.is_main, cfg.tensorboard, cfg.wandb, cfg.to_dict(), self.print,
                                  resume_step=self.resume_step)  # fmt: skip
        self.peak = peak_flops(torch.cuda.get_device_name(self.device)) if self.device.type == "cuda" else None

    def _memory_settings(self) -> dict:
        """This run's settings as the planner's memory estimate takes them."""
        cfg = self.cfg
        return dict(world_size=self.info.world_size, zero_stage=cfg.zero_stage, recompute=cfg.recompute,
                    master_weights=cfg.master_weights, bf16_params=cfg.bf16_params,
                    recompute_whole=cfg.recompute_whole)  # fmt: skip

    def _planned_max_batch(self, memory_bytes: int | None = None) -> int | None:
        """The planner's largest micro-batch for this card (or ``memory_bytes``) and these settings."""
        if self.device.type != "cuda":
            return None
        from gpt2train.plan import max_batch_size

        total = memory_bytes or torch.cuda.get_device_properties(self.device).total_memory
        return max_batch_size(self.model_cfg, total, self.cfg.seq_len, **self._memory_settings()) or None

    def _whole_blocks_needed(self, batch: int) -> int | None:
        """The planner's fewest blocks to recompute whole (--recompute-whole) for ``batch`` to fit this card at
        this -r; None off CUDA, at -r 3 or when no count fits it."""
        if self.device.type != "cuda" or self.cfg.recompute >= 3:
            return None
        from gpt2train.plan import whole_blocks_needed

        total = torch.cuda.get_device_properties(self.device).total_memory
        return whole_blocks_needed(self.model_cfg, total, batch, self.cfg.seq_len, **self._memory_settings())

    def _optimizer_state_bytes(self) -> int:
        """What the first update will allocate on this rank (the moments, and the master copy under
        --bf16-params 1), as the planner counts it."""
        from gpt2train.plan import estimate_memory

        parts = estimate_memory(self.model_cfg, 1, self.cfg.seq_len, **self._memory_settings())
        return parts["optimizer"] + parts["master_weights"]

    def _auto_batch_size(self) -> int:
        """-b auto: the largest B that fits (probing real steps on CUDA), keeping -d."""
        from gpt2train.train.batch_size import auto_batch_size

        start, reserve = None, 0
        if self.device.type == "cuda":  # the planner's figure for the free memory starts the search
            start = self._planned_max_batch(torch.cuda.mem_get_info(self.device)[0]) or 1
            reserve = self._optimizer_state_bytes()
        B = auto_batch_size(self.raw_model, self.cfg.total_batch_size, self.cfg.seq_len, self.info.world_size,
                            self.device, self.autocast_dtype, start, reserve_bytes=reserve)  # fmt: skip
        self.print(f"-b auto: micro-batch B={B} (planner's estimate {start})" if start else f"-b auto: B={B}")
        return B

    def _from_weights(self, sd: dict) -> GPT:
        model = GPT(self.model_cfg)
        try:
            model.load_state_dict(sd)
        except RuntimeError as e:
            raise UserError(f"model weights do not fit the model shape: {str(e).splitlines()[0]}") from None
        return model

    def _compute_dtype(self) -> torch.dtype | None:
        dtype = self.cfg.dtype
        if dtype == "auto":
            dtype = "bf16" if self.device.type == "cuda" else "fp32"
        if dtype not in ("bf16", "fp32"):
            raise UserError(f"--dtype {dtype!r}: use auto, bf16 or fp32")
        return torch.bfloat16 if dtype == "bf16" else None

    def _auto_bf16_params(self) -> int:
        """``--bf16-params -1``: a resumed run keeps its checkpoint's layout; a new one takes llm.c's (bf16
        parameters, fp32 master in the optimizer: faster and smaller, BENCHMARKS.md) in one process on the
        fast path with -w 1, bf16 and AdamW. Several processes keep fp32 parameters: DDP and ZeRO-1 hold
        the gradients in buckets that the flat one-launch update does not cover yet."""
        cfg = self.cfg
        if self.resume_step is not None:
            path = ckpt.state_file_for(cfg.output_dir, self.resume_step, self.info.rank, self.info.world_size,
                                       cfg.zero_stage)  # fmt: skip
            return int(ckpt.read_state_meta(path)["config"].get("bf16_params", 0))
        on = (self.fast and not self.info.enabled and cfg.master_weights == 1
              and self.autocast_dtype == torch.bfloat16 and recipe.levers(cfg)["optimizer"] == "adamw")  # fmt: skip
        return int(on)

    def _use_compile(self) -> bool:
        return self.cfg.compile == 1 or (self.cfg.compile == -1 and self.fast)

    def _configure_fast_paths(self) -> None:
        if self.cfg.recompute_whole > self.model_cfg.n_layer:
            raise UserError(f"--recompute-whole {self.cfg.recompute_whole}: the model has {self.model_cfg.n_layer} "
                            "blocks; use at most that many (or -r 3 for all)")  # fmt: skip
        use_fused = self.cfg.fused_classifier == 1 or (self.cfg.fused_classifier == -1 and self.fast)
        # -ge as llm.c's: 1 GELU in c_fc's cuBLASLt epilogue, 2 also in the backward one (the fastest on an H100,
        # BENCHMARKS.md); -1: 2 with the fast path
        gelu_fusion = self.cfg.gelu_fusion if self.cfg.gelu_fusion >= 0 else 2 * int(self.fast)
        accumulate = self.cfg.accumulate_in_matmul
        if accumulate == -1:
            accumulate = auto_accumulate_in_matmul(self.cfg, self.fast, self.info.enabled)
            self.cfg.accumulate_in_matmul = accumulate  # config.json records the outcome
        elif accumulate == 1 and self.cfg.recompute == 3:
            self.print("warning: --accumulate-in-matmul 1 with -r 3: blocks recomputed whole leave the gradient sums "
                       "to autograd (compiled on CUDA, the recompute would keep every matmul's input)")  # fmt: skip
        self.fast_paths = FastPaths(
            recompute=self.cfg.recompute, recompute_whole=self.cfg.recompute_whole, gelu_fusion=gelu_fusion,
            fp8=self.cfg.fp8, accumulate_grads=bool(accumulate), fused_classifier=use_fused,
            classifier_chunk=self.cfg.classifier_chunk, compile=self._use_compile(),
            compile_scope=self.cfg.compile_scope, compile_mode=self.cfg.compile_mode,
        )  # fmt: skip
        accelerate(self.raw_model, dataclasses.replace(self.fast_paths, compile=False))

    def _load_hellaswag(self):
        if not self.cfg.hellaswag:
            return None
        from gpt2train.paths import default_hellaswag_path

        path = self.cfg.hellaswag_file or str(default_hellaswag_path())
        if not os.path.exists(path):
            self.print(f"HellaSwag eval not found at {path}, skipping its evaluation")
            self.print("Run `gpt2train prepare hellaswag` (or pass --hellaswag-file FILE) to use it with -h 1.")
            return None
        from gpt2train.data.hellaswag import load_examples

        return load_examples(path)

    def _epoch_end(self, epoch: int) -> None:
        self.print(f"train data: epoch {epoch} finished, starting epoch {epoch + 1}")
        self.runlog.event(getattr(self, "step", 0), "epoch_end", epoch=epoch)

    # -- resume -----------------------------------------------------------------------------------
    def _restore(self, step: int) -> None:
        cfg, info = self.cfg, self.info
        path = ckpt.state_file_for(cfg.output_dir, step, info.rank, info.world_size, cfg.zero_stage)
        meta, tensors = ckpt.load_state(path)
        saved_bf16_params = meta["config"].get("bf16_params", 0)
        if saved_bf16_params != cfg.bf16_params:  # the optimizer state holds the master copy, or does not
            raise UserError(f"cannot resume step {step} from {path}: it was written with --bf16-params "
                            f"{saved_bf16_params}, this run has --bf16-params {cfg.bf16_params}; resume with "
                            f"--bf16-params {saved_bf16_params}")  # fmt: skip
        ckpt.restore_params(self.raw_model, tensors, path)
        try:
            ckpt.restore_optimizer(self.optimizer, meta, tensors)
        except (ValueError, KeyError) as e:  # e.g. a Muon checkpoint resumed with AdamW, or the reverse
            saved = meta["config"].get("optimizer") or meta["config"].get("recipe", "classic")
            raise UserError(f"cannot resume step {step} from {path}: its optimizer state ({saved}) does not fit "
                            f"this run's optimizer ({self.levers['optimizer']}): {e}") from None  # fmt: skip
        ckpt.restore_rng(tensors)
        self.train_batches.load_state_dict(meta["loader"])
        self.loss_detector.load_state_dict(meta["detectors"]["loss"])
        self.grad_detector.load_state_dict(meta["detectors"]["grad"])
        self.step = meta["step"]
        defaults = TrainConfig()  # a key missing from an older checkpoint had its default then
        changed = [k for k in _EXACTNESS_KEYS if meta["config"].get(k, getattr(defaults, k)) != getattr(cfg, k)]
        if meta.get("world_size") != info.world_size:
            changed.append(f"world size {meta.get('world_size')} -> {info.world_size}")
        if changed:
            self.print(f"warning: resuming with changed settings ({', '.join(changed)}): "
                       "losses will not equal an uninterrupted run's")  # fmt: skip
        self.print(f"resumed from checkpoint at step {step} ({path})")

    def _rollback(self, step: int) -> int:
        """--on-max-skips rollback: reload the newest complete checkpoint in this process (model, optimizer,
        loader, detectors) and arrange for the loader to go past the batches of the skipped steps, so they
        are never replayed. Returns the step to go on from."""
        cfg, bad = self.cfg, self.skipped
        first_bad = bad[0][0]
        what = f"{len(bad)} updates in a row were skipped (steps {first_bad}..{step}, last: {bad[-1][1]})"
        if self.rollbacks >= cfg.max_rollbacks:
            raise UserError(f"{what} after {self.rollbacks} rollback(s); stopping: check the train data near these "
                            "steps, lower -l, or raise --max-rollbacks")  # fmt: skip
        target = ckpt.latest_usable_step(cfg.output_dir, warn=self.print)
        if target is None:
            raise UserError(f"{what} and -o {cfg.output_dir} holds no complete checkpoint to roll back to yet; "
                            "use a smaller -n, or resume with -y 1 and a lower -l")  # fmt: skip
        self.rollbacks += 1
        from gpt2train.formats.llmc_model import read_llmc_model

        self.raw_model.load_state_dict(read_llmc_model(ckpt.model_path(cfg.output_dir, target))[1])
        self._restore(target)  # exact parameters (if kept in the state file), optimizer, loader, detectors, RNG
        # the checkpoint's loader has served the batches of steps < target; the bad ones still ahead are
        # steps max(target, first_bad)..step: drop them when the run gets there (now, if that is target)
        resume_at, count = max(target, first_bad), step - max(target, first_bad) + 1
        if resume_at == target:
            for _ in range(count):
                self.train_batches.next_step()
        else:
            self.drop_before[resume_at] = self.drop_before.get(resume_at, 0) + count
        self.runlog.trim_after(target)  # main.log reads as a run that never saw those batches
        self.runlog.event(target, "rollback", from_step=step, to_step=target, dropped_steps=[first_bad, step],
                          reasons=[r for _, r in bad], rollback=self.rollbacks)  # fmt: skip
        self.print(f"rollback {self.rollbacks}/{cfg.max_rollbacks}: {what}; rolled back to the checkpoint at step "
                   f"{target}, dropping the batches of steps {first_bad}..{step}")  # fmt: skip
        self.skips_in_a_row, self.skipped = 0, []
        return target

    def _write_checkpoint_files(self, step: int, sharded: bool) -> None:
        """This rank's files of the checkpoint at ``step``: the model (rank 0) and its state file."""
        cfg, info = self.cfg, self.info
        out = cfg.output_dir
        if info.is_main:
            ckpt.save_model(ckpt.model_path(out, step, ckpt.model_ext(self.model_cfg)), self.raw_model.state_dict(),
                            self.model_cfg, cfg.model_file_dtype)  # fmt: skip
        if info.is_main or sharded:
            # an fp32 file holds fp32 or bf16 weights exactly; a bf16 file only bf16 ones
            exact_in_model_file = cfg.model_file_dtype == "fp32" or all(
                p.dtype == torch.bfloat16 for p in self.raw_model.parameters()
            )
            params = None if exact_in_model_file or not info.is_main else dict(self.raw_model.named_parameters())
            meta = {
                "step": step,
                "loader": self.train_batches.state_dict(),
                "detectors": {
                    "loss": self.loss_detector.state_dict(),
                    "grad": self.grad_detector.state_dict(),
                },
                "world_size": info.world_size,
                "zero_stage": cfg.zero_stage if info.enabled else 0,
                "config": cfg.to_dict(),
                "model_config": self.model_cfg.to_dict(),
                "determinism": self.determinism,
            }
            ckpt.save_state(ckpt.state_path(out, step, info.rank), self.optimizer, meta, params)

    def _agree_on_checkpoint(self, step: int, failure: Exception | None) -> None:
        """Collective after each phase of a checkpoint write: when any rank failed (full disk...), every rank
        removes its files of this step (no DONE is written, the previous checkpoint stays the newest) and
        stops with the same one line naming the failing rank and file, instead of waiting for the timeout."""
        message = None
        if failure is not None:
            message = str(failure) if isinstance(failure, UserError) else f"{type(failure).__name__}: {failure}"
        failed = distributed.first_failure(message, self.device)
        if failed is None:
            return
        ckpt.remove_unfinished(self.cfg.output_dir, step, self.info.rank)
        if failure is not None and not isinstance(failure, UserError):
            raise failure  # not an I/O error but a bug: keep its traceback where it happened
        rank, text = failed
        raise UserError(f"rank {rank} of {self.info.world_size}: {text}" if self.info.enabled else text)

    def _write_checkpoint(self, step: int) -> None:
        cfg, info = self.cfg, self.info
        out = cfg.output_dir
        t0 = time.perf_counter()
        sharded = cfg.zero_stage >= 1 and info.enabled
        failure = None
        try:
            self._write_checkpoint_files(step, sharded)
        except Exception as e:  # every rank must hear of it, or the others would wait at the next collective
            failure = e
        self._agree_on_checkpoint(step, failure)  # also the barrier: every file is in place before DONE
        if info.is_main:
            try:
                ckpt.write_done(out, step, info.world_size, cfg.zero_stage if info.enabled else 0,
                                info.world_size if sharded else 1)  # fmt: skip
            except Exception as e:
                failure = e
        self._agree_on_checkpoint(step, failure)
        if info.is_main:
            deleted = ckpt.prune(out, cfg.checkpoints_keep, cfg.major_checkpoint_every)
            self.runlog.event(step, "checkpoint", seconds=round(time.perf_counter() - t0, 3), deleted=deleted)
        self.print(f"wrote checkpoint at step {step} in {time.perf_counter() - t0:.2f} s")

    # -- evaluation -------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The model's mean loss on (x, y) under autocast. With CUDA graphs (--compile-mode reduce-overhead or
        max-autotune) each call is a new graph step: nothing from the previous call's graphs is read after it
        (the loss is added up outside them, the gradients go into persistent buffers)."""
        if self.cfg.compile_mode in ("reduce-overhead", "max-autotune") and self._use_compile():
            torch.compiler.cudagraph_mark_step_begin()
        with self._autocast():
            return self.model(x, y)

    @torch.no_grad()
    def val_loss(self) -> float:
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        for x, y in self.val_loader.batches(self.info.rank, self.info.world_size):
            x, y = x.to(self.device), y.to(self.device)
            total += self._loss(x, y).double()
        distributed.all_reduce_sum(total)
        return float(total) / len(self.val_loader)

    def run_hellaswag(self, step: int) -> None:
        from gpt2train.evaluate import hellaswag_eval

        t0 = time.perf_counter()
        res = hellaswag_eval(self.raw_model, self.hellaswag, self.device, autocast_dtype=self.autocast_dtype)
        self.print(f"HellaSwag: {res['correct_norm']}/{res['examples']} = {res['acc_norm']:.6f} "
                   f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        self.runlog.eval(step, res["acc_norm"], {"hellaswag_acc": res["acc"]})
        self.scalars.log(step, {"eval/hellaswag_acc_norm": res["acc_norm"], "eval/hellaswag_acc": res["acc"]})

    def sample(self) -> None:
        from gpt2train.data.tokenizer import EOT_TOKEN, decode
        from gpt2train.sample import generate

        gen = torch.Generator().manual_seed(1337)
        tokens = generate(self.raw_model, [EOT_TOKEN], self.cfg.gen_tokens - 1, generator=gen)
        self.print("generating:\n---")
        self.print(decode(tokens))
        self.print("---")

    # -- the loop ---------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict:
        cfg = self.cfg
        batches = self.train_batches.next_step()
        self.faults.maybe_crash(step, self.info.rank)
        inject_nan = self.faults("nan_loss", step)
        loss_sum = torch.zeros((), device=self.device)
        for micro, (x, y) in enumerate(batches):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            last = micro == len(batches) - 1
            sync = contextlib.nullcontext() if last or not self.info.enabled else (self.zero or self.model).no_sync()
            with sync:
                loss = self._loss(x, y)
                if inject_nan:
                    loss = loss * float("nan")
                loss_sum += loss.detach()
                (loss / self.grad_accum).backward()
        loss_sum /= self.grad_accum
        if self.zero is not None:
            self.zero.reduce_grads()
        if self.faults("grad_spike", step):
            grads = self.zero.shard_grads() if self.zero else [p.grad for p in self.raw_model.parameters()]
            for g in grads:
                g.mul_(1e4)
        distributed.all_reduce_sum(loss_sum)
        if self.zero is not None:
            norm_t = self.zero.clip_grad_norm_(cfg.grad_clip)
        else:
            norm_t = clip_grad_norm_fp32_(self.raw_model.parameters(), cfg.grad_clip)
        # one host sync per step for both numbers the skip decision and the log need
        loss, norm = torch.stack([loss_sum.float() / self.info.world_size, norm_t.float().to(loss_sum.device)]).tolist()
        lr = learning_rate(step, cfg.lr, cfg.warmup_steps, self.max_steps, cfg.final_lr_frac, cfg.lr_schedule,
                           cfg.wsd_decay_frac)  # fmt: skip
        zloss = self.loss_detector.update(loss, cfg.skip_loss_z)
        zgrad = self.grad_detector.update(norm, cfg.skip_grad_z)
        skip = None
        if not (math.isfinite(loss) and math.isfinite(norm)):
            skip = f"non-finite loss {loss} or grad norm {norm}"
        elif cfg.skip_loss_z and math.isfinite(zloss) and zloss > cfg.skip_loss_z:
            skip = f"loss z-score {zloss:.2f} > {cfg.skip_loss_z}"
        elif cfg.skip_grad_z and math.isfinite(zgrad) and zgrad > cfg.skip_grad_z:
            skip = f"grad z-score {zgrad:.2f} > {cfg.skip_grad_z}"
        rollback = False
        if skip is None:
            set_lr(self.optimizer, lr)
            self.optimizer.step()
            self.updates += 1
            self.skips_in_a_row = 0
            self.skipped = []
        else:
            self.skips_in_a_row += 1
            self.last_skip = skip
            self.skipped.append((step, skip))
            self.print(f"skipping update of step {step}: {skip} (loss z {zloss:+.2f}, grad z {zgrad:+.2f})")
            self.runlog.event(step, "skip", reason=skip, loss=loss, norm=norm, zloss=zloss, zgrad=zgrad)
            if cfg.max_skips and self.skips_in_a_row >= cfg.max_skips and cfg.on_max_skips == "rollback":
                rollback = True
            elif cfg.max_skips and self.skips_in_a_row >= cfg.max_skips:
                raise UserError(
                    f"{self.skips_in_a_row} updates in a row were skipped (last at step {step}: {skip}; --max-skips "
                    f"{cfg.max_skips}); stopping. Check the train data near this step (gpt2train data info), then "
                    "resume with -y 1 from the last checkpoint, perhaps with a lower -l, --on-max-skips rollback, "
                    "or a higher --max-skips (0: never stop)"
                )
        self.optimizer.zero_grad(set_to_none=True)
        return {
            "loss": loss,
            "norm": norm,
            "lr": lr,
            "zloss": zloss,
            "zgrad": zgrad,
            "skipped": skip is not None,
            "rollback": rollback,
        }

    def run(self) -> int:
        self.setup()
        self._print_header()
        cfg = self.cfg
        stop = _StopRequest()
        stop.install()
        checkpoint_now = CheckpointRequest(self.device, self.info.world_size)  # SIGUSR1
        checkpoint_now.install()
        tokens_per_step = self.total_batch
        flops_per_step = self.model_cfg.flops_per_token(self.T) * tokens_per_step
        resuming = self.resume_step is not None
        ema_step_s, t_start, first_step = None, time.perf_counter(), self.step
        t_prev_end = None  # when the previous step's train_step returned; None after eval or checkpoint work
        try:
            step = self.step
            while step <= self.max_steps:
                self.step = step
                last = step == self.max_steps
                if not resuming:  # after a rollback: go past the batches that made the updates skip
                    for _ in range(self.drop_before.get(step, 0)):
                        self.train_batches.next_step()
                val_due = (step % cfg.val_every == 0 or last) if cfg.val_every > 0 else last
                if val_due and not resuming:
                    t_prev_end = None
                    vl = self.val_loss()
                    self.print(f"val loss {vl:.6f}")
                    self.last_val = vl
                    self.runlog.val(step, vl)
                    self.scalars.log(step, {"val/loss": vl})
                    if self.hellaswag is not None:
                        self.run_hellaswag(step)
                if self.info.is_main and cfg.sample_every > 0 and ((step > 0 and step % cfg.sample_every == 0) or last):
                    t_prev_end = None
                    self.sample()
                if (cfg.checkpoint_every > 0 and cfg.output_dir and not resuming
                        and ((step > 0 and step % cfg.checkpoint_every == 0) or last)):  # fmt: skip
                    t_prev_end = None
                    self._write_checkpoint(step)
                resuming = False
                if last:
                    break
                if stop.signal_name:
                    return self._stop_for_signal(stop, step)
                # train_step waits once for the step's loss and norm, before the update; the update runs on while
                # this loop logs and queues the next step (no second sync), so a step's time runs from the previous
                # step's return to this one's, logging included
                t0 = t_prev_end if t_prev_end is not None else time.perf_counter()
                try:
                    out = self.train_step(step)
                except ShardUnreadable as e:  # raised before this step touched the weights
                    raise self._stop_for_unreadable_shard(e, step) from None
                t_prev_end = time.perf_counter()
                dt = t_prev_end - t0
                if step == first_step:
                    self.print(f"time to first step: {time.perf_counter() - self.t_launch:.1f} s")
                    if memory := preflight.first_step_memory(self.device, self._planned_max_batch()):
                        self.print(memory)
                if step > first_step:  # the first step (compilation, allocation) is a warm-up
                    ema_step_s = dt if ema_step_s is None else 0.95 * ema_step_s + 0.05 * dt
                eta = (ema_step_s or dt) * (self.max_steps - step - 1)
                tok_s = tokens_per_step / dt
                mfu = flops_per_step / dt / (self.peak * self.info.world_size) * 100 if self.peak else None
                mfu_txt = f"{mfu:.1f}% bf16 MFU" if mfu is not None else "MFU n/a"
                self.print(
                    f"step {step + 1:4d}/{self.max_steps} | loss {out['loss']:7.6f} ({out['zloss']:+.2f}z)| "
                    f"norm {out['norm']:6.4f} ({out['zgrad']:+.2f}z)| lr {out['lr']:.2e} | {dt * 1000:.2f} ms | "
                    f"{mfu_txt} | {tok_s:.0f} tok/s | {self._status_tail(t_start, eta)}"
                )
                self.runlog.train(step, out["loss"], out["lr"], out["norm"],
                                  {"max_steps": self.max_steps, "ms": dt * 1000, "tok_s": tok_s, "mfu": mfu,
                                   "elapsed": time.perf_counter() - t_start, "eta": eta})  # fmt: skip
                self.scalars.log(step, {"train/loss": out["loss"], "train/lr": out["lr"], "train/norm": out["norm"],
                                        "perf/tok_s": tok_s, "perf/mfu": mfu, "perf/ms": dt * 1000})  # fmt: skip
                if out["rollback"]:
                    step, resuming, t_prev_end = self._rollback(step), True, None
                    continue
                if cfg.log_gpu_every > 0 and (step + 1) % cfg.log_gpu_every == 0:
                    from gpt2train.train.monitor import gpu_status

                    self.print(gpu_status(self.device))
                if stop.signal_name and step + 1 < self.max_steps:
                    return self._stop_for_signal(stop, step + 1)
                due = cfg.checkpoint_every > 0 and (step + 1) % cfg.checkpoint_every == 0  # written next anyway
                if checkpoint_now.take() and cfg.output_dir and step + 1 < self.max_steps and not due:
                    self.print(f"SIGUSR1: writing a checkpoint at step {step + 1} and going on")
                    self._write_checkpoint(step + 1)
                    t_prev_end = None
                step += 1
            if first_step >= self.max_steps:
                self.print(f"nothing to train: the run in {cfg.output_dir} is already complete at step {first_step} "
                           f"of {self.max_steps}; raise -x to train on, or use another -o")  # fmt: skip
                return 0
            if self.updates == 0:
                raise UserError(f"every update of steps {first_step}..{self.max_steps - 1} was skipped (last: "
                                f"{self.last_skip}): the weights did not change. Check the train data (gpt2train "
                                "data info), lower -l, or loosen -sl/-sg")  # fmt: skip
            self.print(f"done: {self.max_steps} steps in {format_duration(time.perf_counter() - t_start)}")
            if self.device.type == "cuda":
                self.print(f"peak GPU memory: {torch.cuda.max_memory_allocated(self.device) / 2**20:.0f} MiB allocated, "
                           f"{torch.cuda.max_memory_reserved(self.device) / 2**20:.0f} MiB reserved")  # fmt: skip
            return 0
        finally:
            stop.restore()
            checkpoint_now.restore()
            self.scalars.close()
            self.train_batches.close()

    def out_of_memory(self) -> UserError:
        """The one-line stop for running out of GPU memory: where, at which settings, how much the card
        holds, and which flags make room (checkpoints already written are untouched)."""
        cfg = self.cfg
        where = f"at step {self.step}" if hasattr(self, "step") else "while setting up"
        batch = getattr(self, "B", None) or cfg.batch_size or "auto"
        line = f"out of GPU memory {where} with -b {batch} -t {cfg.seq_len} -r {cfg.recompute} -w {cfg.master_weights}"
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            line += (f" ({torch.cuda.max_memory_reserved(self.device) / 2**30:.1f} of {total / 2**30:.1f} GiB "
                     f"held on {torch.cuda.get_device_name(self.device)})")  # fmt: skip
        room = ["lower -b (-d stays: more micro-steps accumulate)"]
        whole = self._whole_blocks_needed(batch) if hasattr(self, "model_cfg") and isinstance(batch, int) else None
        if whole and whole > cfg.recompute_whole:
            room.append(f"recompute the first {whole} blocks whole (--recompute-whole {whole})")
        if cfg.recompute < 3:
            room.append("raise -r to " + " or ".join(str(r) for r in range(cfg.recompute + 1, 4)))
        if cfg.master_weights:
            room.append("use -w 0")
        line += ": " + ", ".join(room) + " or let -b auto pick"
        planned = self._planned_max_batch() if hasattr(self, "model_cfg") else None
        if planned:
            line += f"; gpt2train plan expects B={planned} to fit"
        if cfg.output_dir:
            line += f"; the checkpoints in {cfg.output_dir} are untouched (resume with -y 1)"
        return UserError(line)

    def _status_tail(self, t_start: float, eta: float) -> str:
        """The end of each step line: last val loss, GPU memory, elapsed time and ETA."""
        parts = []
        if getattr(self, "last_val", None) is not None:
            parts.append(f"val {self.last_val:.4f}")
        if self.device.type == "cuda":
            parts.append(f"{torch.cuda.max_memory_allocated(self.device) / 2**30:.1f} GiB")
        parts.append(f"{format_duration(time.perf_counter() - t_start)} elapsed, ETA {format_duration(eta)}")
        return " | ".join(parts)

    def _stop_for_unreadable_shard(self, err: ShardUnreadable, step: int) -> UserError:
        """Save the run as it stands (the failed step had not begun its update) and say how to go on."""
        if not self.cfg.output_dir:
            return UserError(f"{err}; no -o, so nothing was saved")
        if self.info.world_size > 1:  # the other ranks are inside this step's collectives and cannot join a write
            return UserError(f"{err} (rank {self.info.rank}); restore the file and resume with -y 1 from the last "
                             "checkpoint")  # fmt: skip
        self._write_checkpoint(step)
        return UserError(f"{err}; wrote a checkpoint at step {step}: restore the file and resume with -y 1")

    def _stop_for_signal(self, stop: _StopRequest, step: int) -> int:
        if self.cfg.output_dir:
            self._write_checkpoint(step)
            where = f"checkpoint at step {step} in {self.cfg.output_dir}; resume with -y 1"
        else:
            where = "no -o given, so no checkpoint was written"
        self.print(f"stopped on {stop.signal_name} after {time.perf_counter() - stop.when:.2f} s: {where}")
        return 0

    def _print_header(self) -> None:
        cfg, m = self.cfg, self.model_cfg
        precision = "bf16" if self.autocast_dtype else "fp32"
        if cfg.bf16_params:
            precision += ", bf16 params, fp32 master in the optimizer"
        rows = [
            ("train data pattern", cfg.train_data), ("val data pattern", cfg.val_data),
            ("output log dir", cfg.output_dir or "NULL"), ("micro batch size B", self.B),
            ("sequence length T", self.T), ("total batch size", self.total_batch),
            ("grad accumulation", f"{self.grad_accum}{' (in the matmuls)' if cfg.accumulate_in_matmul == 1 else ''}"),
            ("LR scheduler", cfg.lr_schedule),
            ("learning rate (LR)", f"{cfg.lr:e}"), ("warmup iterations", cfg.warmup_steps),
            ("final LR fraction", f"{cfg.final_lr_frac:e}"), ("weight decay", f"{cfg.weight_decay:e}"),
            ("max_steps", self.max_steps), ("val_loss_every", cfg.val_every),
            ("val batches", len(self.val_loader)), ("weight init method", self.init_source),
            ("num_layers L", m.n_layer), ("num_heads NH", m.n_head), ("channels C", m.n_embd),
            ("max_sequence_length T", m.max_seq_len), ("vocab_size V", m.vocab_size),
            ("padded_vocab_size Vp", m.padded_vocab_size), ("num_parameters", f"{m.num_parameters():,}"),
            ("device", torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"),
            ("precision", precision), ("num_processes", self.info.world_size),
            ("zero_stage", cfg.zero_stage), ("recompute", cfg.recompute),
            ("fast path", "on" if self.fast else "off (plain PyTorch)"),
            ("deterministic", "on" if self.determinism["enabled"] else "off"),
        ]  # fmt: skip
        bar = "+-----------------------+----------------------------------------------------+"
        self.print(bar)
        for k, v in rows:
            self.print(f"| {k:<21} | {str(v):<50} |")
        self.print(bar)
        self.print(f"num_parameters: {m.num_parameters()}")
        if self.info.is_main and cfg.output_dir:
            with open(os.path.join(cfg.output_dir, "config.json"), "w") as f:
                json.dump({"train": cfg.to_dict(), "model": m.to_dict(), "world_size": self.info.world_size,
                           "micro_batch_size": self.B,
                           "grad_accum": self.grad_accum, "max_steps": self.max_steps,
                           "total_batch_size": self.total_batch, "determinism": self.determinism,
                           "argv": sys.argv}, f, indent=2)  # fmt: skip
