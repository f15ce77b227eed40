"""The training loop, in the order llm.c's train_gpt2.cu runs it.

for step in 0..max_steps:
    val loss every -v steps (and at 0 and the end); HellaSwag with it when -h 1
    a sample every -s steps (and at the end); a checkpoint every -n steps (and at the end)
    if last step: stop
    forward/backward over grad_accum micro-batches (the gradient all-reduce only on the last)
    clip to grad_clip, skip the update on NaN/Inf or on a loss/grad z-score above -sl/-sg
    AdamW step at the scheduled lr; log `s:N trl:...` to main.log

Before it: config.resolve decides every setting, build.build makes the Run; checkpoint.py writes, restores and
rolls back; report.py prints.
"""

from __future__ import annotations

import contextlib
import math
import time

import torch

from gpt2train.config import ResolvedConfig, TrainConfig, resolve
from gpt2train.data.loader import ShardUnreadable
from gpt2train.errors import UserError
from gpt2train.evaluate import mean_val_loss
from gpt2train.precision import autocast
from gpt2train.train import build, determinism, distributed, preflight, report
from gpt2train.train.accelerate import cast_weight_copies
from gpt2train.train.checkpoint import rollback, write_checkpoint
from gpt2train.train.guards import clip_grad_norm_fp32_
from gpt2train.train.lock import RunDir
from gpt2train.train.optim import persistent_grads_, set_lr
from gpt2train.train.schedule import learning_rate
from gpt2train.train.signals import CheckpointRequest, StopRequest


def train(cfg: TrainConfig) -> int:
    """Run ``gpt2train train``; returns the process exit code."""
    # "time to first step" counts from the process's start, Python's and torch's imports included
    startup = report.StartupClock(launched=time.perf_counter() - report.process_age(), entered=time.perf_counter())
    determinism.prepare_environment(cfg.deterministic, cfg.device)  # before any CUDA work
    info = distributed.setup(cfg.device)
    run_dir = RunDir(cfg.output_dir, lock=info.is_main)
    console = report.Console(info.is_main)
    failed = True
    try:
        build.claim(run_dir, info)
        with determinism.mode(bool(cfg.deterministic), cfg.attention) as det:
            env, weights = build.environment(cfg, info, console)
            rc = resolve(cfg, env)
            run = None
            try:
                run = build.build(rc, env, weights, console, det)
                del weights  # the model holds them now
                startup.built = time.perf_counter()
                code = train_loop(run, rc, startup)
            except torch.OutOfMemoryError:
                step, batch = (run.state.step, run.B) if run is not None else (None, None)  # None: setting up
                raise report.out_of_memory(rc, env, step, batch) from None
        failed = False
        return code
    finally:
        run_dir.close(failed)  # a run that failed before writing anything leaves no empty -o behind
        distributed.teardown()


def train_loop(run: build.Run, rc: ResolvedConfig, startup: report.StartupClock) -> int:
    report.print_header(run, rc)
    state, console = run.state, run.console
    stop, checkpoint_now = StopRequest(), CheckpointRequest(run.device, run.world_size)  # SIGTERM/SIGINT, SIGUSR1
    stop.install()
    checkpoint_now.install()
    flops_per_step = rc.model_config.flops_per_token(run.T) * run.total_batch
    resuming = run.resume_step is not None
    ema_step_s, t_start, first_step = None, time.perf_counter(), state.step
    t_prev_end = None  # when the previous step's train_step returned; None after eval or checkpoint work
    try:
        step = state.step
        while step <= run.max_steps:
            state.step = step
            last = step == run.max_steps
            if not resuming:  # after a rollback: go past the batches that made the updates skip
                for _ in range(state.drop_before.get(step, 0)):
                    run.train_batches.next_step()
            val_due = (step % rc.val_every == 0 or last) if rc.val_every > 0 else last
            if val_due and not resuming:
                t_prev_end = None
                validate(run, step)
            if run.rank == 0 and rc.sample_every > 0 and ((step > 0 and step % rc.sample_every == 0) or last):
                t_prev_end = None
                sample(run, rc)
            if (rc.checkpoint_every > 0 and rc.output_dir and not resuming
                    and ((step > 0 and step % rc.checkpoint_every == 0) or last)):  # fmt: skip
                t_prev_end = None
                write_checkpoint(run, rc, step)
            resuming = False
            if last:
                break
            if stop.signal_name:
                return stop_for_signal(run, rc, stop, step)
            # train_step waits once for the step's loss and norm, before the update; the update runs on while
            # this loop logs and queues the next step (no second sync), so a step's time runs from the previous
            # step's return to this one's, logging included
            t0 = t_prev_end if t_prev_end is not None else time.perf_counter()
            try:
                out = train_step(run, rc, step)
            except ShardUnreadable as e:  # raised before this step touched the weights
                if rc.output_dir and run.world_size == 1:
                    write_checkpoint(run, rc, step)
                raise UserError(report.unreadable_shard(e, step, rc.output_dir, run.world_size, run.rank)) from None
            t_prev_end = time.perf_counter()
            dt = t_prev_end - t0
            if step == first_step:
                console(startup.line(t0, t_prev_end))
                if line := preflight.first_step_memory(run.device, run.planned_max_batch):
                    console(line)
            if step > first_step:  # the first step (compilation, allocation) is a warm-up
                ema_step_s = dt if ema_step_s is None else 0.95 * ema_step_s + 0.05 * dt
            eta = (ema_step_s or dt) * (run.max_steps - step - 1)
            tok_s = run.total_batch / dt
            mfu = flops_per_step / dt / (run.peak_flops * run.world_size) * 100 if run.peak_flops else None
            tail = report.status_tail(state.last_val, run.device, t_start, eta)
            console(report.step_line(step, run.max_steps, out, dt, mfu, tok_s, tail))
            run.runlog.train(step, out["loss"], out["lr"], out["norm"],
                             {"max_steps": run.max_steps, "ms": dt * 1000, "tok_s": tok_s, "mfu": mfu,
                              "elapsed": time.perf_counter() - t_start, "eta": eta})  # fmt: skip
            run.scalars.log(step, {"train/loss": out["loss"], "train/lr": out["lr"], "train/norm": out["norm"],
                                   "perf/tok_s": tok_s, "perf/mfu": mfu, "perf/ms": dt * 1000})  # fmt: skip
            if out["rollback"]:
                step, resuming, t_prev_end = rollback(run, rc, step), True, None
                continue
            if rc.log_gpu_every > 0 and (step + 1) % rc.log_gpu_every == 0:
                from gpt2train.train.monitor import gpu_status

                console(gpu_status(run.device))
            if stop.signal_name and step + 1 < run.max_steps:
                return stop_for_signal(run, rc, stop, step + 1)
            due = rc.checkpoint_every > 0 and (step + 1) % rc.checkpoint_every == 0  # written next anyway
            if checkpoint_now.take() and rc.output_dir and step + 1 < run.max_steps and not due:
                console(f"SIGUSR1: writing a checkpoint at step {step + 1} and going on")
                write_checkpoint(run, rc, step + 1)
                t_prev_end = None
            step += 1
        report.finished(run, rc, first_step, t_start)
        return 0
    finally:
        stop.restore()
        checkpoint_now.restore()
        run.scalars.close()
        run.train_batches.close()


def train_step(run: build.Run, rc: ResolvedConfig, step: int) -> dict:
    """One optimisation step: forward/backward over the micro-batches, clip, and the update unless it is skipped."""
    state = run.state
    batches = run.train_batches.next_step()
    run.faults.maybe_crash(step, run.rank)
    inject_nan = run.faults("nan_loss", step)
    loss_sum = torch.zeros((), device=run.device)
    cast_weight_copies(run.weight_copy_layers)  # --fp8-cache-weights: the FP8 weights once a step, not a micro-step
    if run.cuda_graphs:  # each micro-step's gradients added in place (optim.persistent_grads_)
        persistent_grads_(run.raw_model)
    for micro, (x, y) in enumerate(batches):
        x = x.to(run.device, non_blocking=True)
        y = y.to(run.device, non_blocking=True)
        last = micro == len(batches) - 1
        sync = contextlib.nullcontext() if last or run.world_size == 1 else (run.zero or run.model).no_sync()
        with sync:
            if run.cuda_graphs:  # each forward a new CUDA-graph step: nothing of the last one is read after it
                torch.compiler.cudagraph_mark_step_begin()
            with autocast(run.device, run.autocast_dtype):
                loss = run.model(x, y)
            if inject_nan:
                loss = loss * float("nan")
            loss_sum += loss.detach()
            (loss / run.grad_accum).backward()
    loss_sum /= run.grad_accum
    if run.zero is not None:
        run.zero.reduce_grads()
    if run.faults("grad_spike", step):
        for g in run.zero.shard_grads() if run.zero else [p.grad for p in run.raw_model.parameters()]:
            g.mul_(1e4)
    distributed.all_reduce_sum(loss_sum)
    if run.zero is not None:
        norm_t = run.zero.clip_grad_norm_(rc.grad_clip)
    else:
        norm_t = clip_grad_norm_fp32_(run.raw_model.parameters(), rc.grad_clip)
    # one host sync per step for both numbers the skip decision and the log need
    loss, norm = torch.stack([loss_sum.float() / run.world_size, norm_t.float().to(loss_sum.device)]).tolist()
    lr = learning_rate(step, rc.lr, rc.warmup_steps, run.max_steps, rc.final_lr_frac, rc.lr_schedule,
                       rc.wsd_decay_frac)  # fmt: skip
    zloss = run.loss_detector.update(loss, rc.skip_loss_z)
    zgrad = run.grad_detector.update(norm, rc.skip_grad_z)
    skip = None
    if not (math.isfinite(loss) and math.isfinite(norm)):
        skip = f"non-finite loss {loss} or grad norm {norm}"
    elif rc.skip_loss_z and math.isfinite(zloss) and zloss > rc.skip_loss_z:
        skip = f"loss z-score {zloss:.2f} > {rc.skip_loss_z}"
    elif rc.skip_grad_z and math.isfinite(zgrad) and zgrad > rc.skip_grad_z:
        skip = f"grad z-score {zgrad:.2f} > {rc.skip_grad_z}"
    rollback_now = False
    if skip is None:
        set_lr(run.optimizer, lr)
        run.optimizer.step()
        state.updates, state.skips_in_a_row, state.skipped = state.updates + 1, 0, []
    else:
        state.skips_in_a_row += 1
        state.last_skip = skip
        state.skipped.append((step, skip))
        run.console(f"skipping update of step {step}: {skip} (loss z {zloss:+.2f}, grad z {zgrad:+.2f})")
        run.runlog.event(step, "skip", reason=skip, loss=loss, norm=norm, zloss=zloss, zgrad=zgrad)
        if rc.max_skips and state.skips_in_a_row >= rc.max_skips and rc.on_max_skips == "rollback":
            rollback_now = True
        elif rc.max_skips and state.skips_in_a_row >= rc.max_skips:
            raise UserError(
                f"{state.skips_in_a_row} updates in a row were skipped (last at step {step}: {skip}; --max-skips "
                f"{rc.max_skips}); stopping. Check the train data near this step (gpt2train data info), then "
                "resume with -y 1 from the last checkpoint, perhaps with a lower -l, --on-max-skips rollback, "
                "or a higher --max-skips (0: never stop)"
            )
    run.optimizer.zero_grad(set_to_none=not run.cuda_graphs)
    return {"loss": loss, "norm": norm, "lr": lr, "zloss": zloss, "zgrad": zgrad, "skipped": skip is not None,
            "rollback": rollback_now}  # fmt: skip


def validate(run: build.Run, step: int) -> None:
    """The val loss (main.log's ``tel``), and HellaSwag with -h 1 (``eval``)."""
    run.state.last_val = vl = mean_val_loss(run.model, run.val_loader, run.device, run.autocast_dtype, run.cuda_graphs)
    run.console(f"val loss {vl:.6f}")
    run.runlog.val(step, vl)
    run.scalars.log(step, {"val/loss": vl})
    if run.hellaswag is not None:
        from gpt2train.evaluate import hellaswag_eval

        t0 = time.perf_counter()
        res = hellaswag_eval(run.raw_model, run.hellaswag, run.device, autocast_dtype=run.autocast_dtype)
        run.console(f"HellaSwag: {res['correct_norm']}/{res['examples']} = {res['acc_norm']:.6f} "
                    f"({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        run.runlog.eval(step, res["acc_norm"], {"hellaswag_acc": res["acc"]})
        run.scalars.log(step, {"eval/hellaswag_acc_norm": res["acc_norm"], "eval/hellaswag_acc": res["acc"]})


def sample(run: build.Run, rc: ResolvedConfig) -> None:
    from gpt2train.data.tokenizer import EOT_TOKEN, decode
    from gpt2train.sample import generate

    tokens = generate(run.raw_model, [EOT_TOKEN], rc.gen_tokens - 1, generator=torch.Generator().manual_seed(1337))
    run.console("generating:\n---")
    run.console(decode(tokens))
    run.console("---")


def stop_for_signal(run: build.Run, rc: ResolvedConfig, stop: StopRequest, step: int) -> int:
    """SIGTERM/SIGINT: a checkpoint at ``step`` (with -o) and exit 0."""
    if rc.output_dir:
        write_checkpoint(run, rc, step)
    run.console(report.signal_stop(stop.signal_name, stop.when, step, rc.output_dir))
    return 0
