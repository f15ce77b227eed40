"""The fast paths, applied to a plain model from outside (torchtitan's parallelize.py in spirit).

model.py is the reference; :func:`accelerate` turns its modules into faster ones that compute the same thing:

- the blocks' linear layers into :class:`FastLinear` (FP8 matmuls, or weight gradients added into ``.grad`` by
  the matmul: kernels/fp8_linear.py, kernels/grad_accum.py);
- the MLPs into :class:`RecomputedMLP` (-r 1 and up: only the activation's input is kept),
  :class:`GeluFusedMLP` (-ge: GELU in cuBLASLt's matmul epilogues, kernels/gelu_mlp.py) or
  :class:`ActivationInCastMLP` (FP8 linears with GELU or ReLU² inside their casts, kernels/fp8_fused.py);
- blocks into :class:`RecomputedBlock` (-r 2: the norms recomputed, -r 3: each sublayer recomputed whole);
- the LayerNorms into :class:`NormInCast` where the FP8 linear after them computes them in its input cast
  (kernels/fp8_layernorm.py), and blocks into :class:`NormsInCastsBlock` for the residual add before ln_2;
- ``GPT.classifier_loss`` into the chunked classifier (kernels/fused_classifier.py), its matmuls in FP8 or bf16;
- and then compiles each block, or the whole model.

A module is swapped by changing its class to a subclass with another ``forward`` (as torch.nn.utils.parametrize
does): the module object, its parameters (the same tensors, under the same names) and its place in the model stay,
so the optimizer, checkpoints and state_dict keys see no difference. Applying ``FastPaths()`` gives the plain
classes back; applying the same paths twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from gpt2train.config import FP8_LINEARS, fp8_bf16_parts
from gpt2train.kernels.fp8_fused import fp8_mlp, fp8_qkv
from gpt2train.kernels.fp8_linear import E4M3, GRAD_FORMATS, amax_history, fp8_linear, fp8_runs, quantize_transposed
from gpt2train.kernels.gelu_linear import gelu_linear
from gpt2train.kernels.gelu_mlp import gelu_mlp
from gpt2train.kernels.grad_accum import accumulating, linear_accumulate
from gpt2train.model import ACTIVATIONS, GPT, MLP, Block, CausalSelfAttention, gelu


@dataclass(frozen=True)
class FastPaths:
    recompute: int = 0  # llm.c's -r: 0 none, 1 the MLP activation, 2 also the norms, 3 each block's sublayers whole
    recompute_whole: int = 0  # the first N blocks recomputed as -r 3, the rest at `recompute`
    gelu_fusion: int = 0  # llm.c's -ge: 0 off, 1 GELU in c_fc's cuBLASLt epilogue, 2 also backward (GELU MLPs only)
    fp8: int = 0  # 0 bf16, 1 FP8 matmuls in the blocks' linears, 2 also fast accumulation in the gradient matmuls
    fp8_impl: str = (
        "ours"  # ours (kernels/fp8_linear.py) | torchao-tensorwise | torchao-rowwise (torchao's Float8Linear)
    )
    fp8_bf16: tuple[str, ...] = ()  # under fp8, what stays bf16: --fp8-bf16's words (config.fp8_bf16_parts)
    fp8_cast_kernel: int = 0  # ours: 1 operands cast by kernels/fp8_cast.py (fp32 ones as bf16), 2 only transposed by
    # it (cast by Inductor in their producers), 0 all by Inductor
    fp8_delayed: bool = False  # ours: inputs and output gradients scaled by their previous micro-steps' amax
    fp8_cache_weights: bool = False  # ours: the weights' FP8 copies cast once a step (cast_weight_copies), kept
    fp8_gelu_cast: bool = False  # ours, delayed, with the cast kernel: the MLP's GELU or ReLU² inside its casts
    fp8_qkv_cast: bool = False  # likewise: q, k and v's gradients gathered inside c_attn's cast (FP8QKVAttention)
    fp8_norm_cast: bool = False  # likewise: ln_1, ln_2 computed inside c_attn's and c_fc's input casts (NormInCast)
    fp8_grad: str = "e4m3"  # ours: the output gradients' float8 format (--fp8-grad)
    accumulate_grads: bool = False  # the blocks' matmuls add their weight gradients into .grad (kernels/grad_accum.py)
    fused_classifier: bool = False
    classifier_chunk: int = 16384  # rows of logits at once; 0: all rows
    fp8_classifier: int = 0  # the fused classifier's matmuls in FP8: 1 all three (3: the gradient rounded
    # stochastically, 4: without its target's term), 2 the logits' (--fp8-classifier)
    compile: bool = False
    compile_scope: str = "blocks"  # blocks: each block compiled (one shared graph); model: the whole model
    compile_mode: str = "default"


class FastLinear(nn.Linear):
    """A block's linear layer with its matmuls in FP8 (``fp8`` 1, or 2 with the gradient matmuls in FP8's fast
    accumulation too; ``weight_grad_bf16``: dW in bf16; ``cast_kernel``: the casts by kernels/fp8_cast.py;
    ``delayed_scaling``: the inputs' and output gradients' scales from FP8_HISTORIES; ``grad_dtype``: the output
    gradients' float8 format, a value of GRAD_FORMATS; ``cache_weights``: the weight's FP8 copies from the buffers
    of WEIGHT_COPIES, cast by :func:`cast_weight_copies` before each step), or
    whose backward adds its gradients into ``.grad`` itself (``accumulate_grad``)."""

    fp8 = 0
    weight_grad_bf16 = False
    cast_kernel = 0
    delayed_scaling = False  # with the buffers of FP8_HISTORIES (accelerate registers them)
    cache_weights = False  # with the buffers of WEIGHT_COPIES (accelerate registers them)
    grad_dtype = GRAD_FORMATS["e4m3"]
    accumulate_grad = False
    norm: tuple = ()  # (the NormInCast before it,) when its input cast computes that LayerNorm (--fp8-norm-cast)

    def fp8_histories(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """x's and dy's delayed-scaling states (FP8_HISTORIES), or None with dynamic scaling."""
        return tuple(getattr(self, name) for name in FP8_HISTORIES) if self.delayed_scaling else None

    def fp8_weight_copies(self) -> tuple[torch.Tensor | None, ...]:
        """The weight's FP8 copies cast before the step (WEIGHT_COPIES), or Nones: cast in each forward."""
        return tuple(getattr(self, name) for name in WEIGHT_COPIES) if self.cache_weights else (None,) * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8:
            return fp8_linear(x, self.weight, self.bias, backward_fast_accum=self.fp8 == 2,
                              weight_grad_bf16=self.weight_grad_bf16, cast_kernel=self.cast_kernel,
                              grad_dtype=self.grad_dtype, histories=self.fp8_histories(),
                              weight_copies=self.fp8_weight_copies(), norm=_norm_params(self.norm))  # fmt: skip
        grads = accumulating(self)
        if grads is not None:
            return linear_accumulate(x, self.weight, self.bias, *grads)
        return super().forward(x)


class RecomputedMLP(MLP):
    """llm.c's -r 1: keep only the activation's input; backward recomputes the activation (not the matmul)."""

    use_gelu_linear = True  # eager GELU through kernels/gelu_linear.py; else a checkpointed activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if not torch.is_grad_enabled():
            return self.c_proj(self.activation(h))
        # Compiled, the partitioner decides what to save and would keep the activation's output too: a
        # checkpointed activation tells it to recompute. Eager, gelu_linear saves only h (c_proj would save GELU's
        # output), unless c_proj runs in FP8, which saves its own one-byte copy of its input
        if self.use_gelu_linear and not torch.compiler.is_compiling():
            return gelu_linear(h, self.c_proj.weight, self.c_proj.bias, accumulating(self.c_proj))
        return self.c_proj(checkpoint(self.activation, h, use_reentrant=False))


class GeluFusedMLP(MLP):
    """llm.c's -ge: GELU in the cuBLASLt epilogue of c_fc ("plain" backward, -ge 1), and of c_proj's input
    gradient too ("dgelu", -ge 2)."""

    backward = "plain"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fc, proj = accumulating(self.c_fc), accumulating(self.c_proj)
        grads = (*fc, *proj) if fc and proj else None
        return gelu_mlp(x, self.c_fc.weight, self.c_fc.bias, self.c_proj.weight, self.c_proj.bias, self.backward,
                        grads)  # fmt: skip


class ActivationInCastMLP(MLP):
    """``--fp8-gelu-cast``: c_fc and c_proj, both :class:`FastLinear` in FP8 with delayed scaling and the cast
    kernel, run as one function that computes the activation (GELU or ReLU²) and its backward inside the FP8 casts
    (kernels/fp8_fused.py); it keeps what -r 1 keeps (the activation's input, and c_proj's own e4m3 copy of its
    input)."""

    norm: tuple = ()  # as FastLinear's: ln_2 computed in c_fc's input cast

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """The MLP of ``x``; with ``residual`` (NormsInCastsBlock: FP8 running, ``norm`` set) its input is ln_2 of
        ``x + residual`` and the result is (the MLP's output, that sum)."""
        fc, proj = self.c_fc, self.c_proj
        if not fp8_runs(x, fc.weight.shape[0], proj.weight.shape[0]):
            return super().forward(x)
        return fp8_mlp(x, fc, proj, _ACTIVATION_NAMES[self.activation], backward_fast_accum=fc.fp8 == 2,
                       grad_dtype=fc.grad_dtype, histories=fc.fp8_histories() + proj.fp8_histories(),
                       weight_copies=fc.fp8_weight_copies() + proj.fp8_weight_copies(), norm=_norm_params(self.norm),
                       residual=residual)  # fmt: skip


_ACTIVATION_NAMES = {fn: name for name, fn in ACTIVATIONS.items()}  # the MLP's activation as the cast kernel names it


class FP8QKVAttention(CausalSelfAttention):
    """``--fp8-qkv-cast``: c_attn, a :class:`FastLinear` in FP8 with delayed scaling and the cast kernel, and the
    split into q, k and v run as one function whose backward gathers their gradients inside the FP8 cast
    (kernels/fp8_fused.py)."""

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not fp8_runs(x, self.c_attn.weight.shape[0]):
            return super().qkv(x)
        layer = self.c_attn
        return fp8_qkv(x, layer, self.n_head, backward_fast_accum=layer.fp8 == 2, grad_dtype=layer.grad_dtype,
                       histories=layer.fp8_histories(), weight_copies=layer.fp8_weight_copies())  # fmt: skip


class NormInCast(nn.LayerNorm):
    """``--fp8-norm-cast``: a LayerNorm that the FP8 linear after it (c_attn, or the MLP's c_fc) computes inside its
    input cast (kernels/fp8_layernorm.py), so its bf16 output is never written: where that linear runs FP8
    (``fp8_runs`` at its output ``widths``) this passes ``x`` through for it to normalize; elsewhere (evaluation,
    sampling: the linear's plain path) it normalizes itself."""

    widths: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if fp8_runs(x, *self.widths) else super().forward(x)


class NormsInCastsBlock(Block):
    """``--fp8-norm-cast``: the residual add before ln_2 goes inside ln_2's pass too (kernels/fp8_layernorm.py). Where
    the MLP runs FP8 (an ActivationInCastMLP with ln_2 in its input cast) it takes the block's input and attention's
    output and returns its own output with their sum, the residual stream, which is then read once instead of twice;
    elsewhere (evaluation, sampling) the plain block."""

    def forward(self, x: torch.Tensor, rope: tuple | None = None, kv_cache=None) -> torch.Tensor:
        if not fp8_runs(x, *self.ln_2.widths):
            return super().forward(x, rope, kv_cache)
        y, stream = self.mlp(x, residual=self.attn(self.ln_1(x), rope, kv_cache))  # stream: x + attention's output
        return stream + y


def _norm_params(norm: tuple) -> tuple | None:
    """fp8_linear's ``norm`` argument from a layer's ``norm`` attribute: the NormInCast's (weight, bias, eps)."""
    return (norm[0].weight, norm[0].bias, norm[0].eps) if norm else None


class RecomputedBlock(Block):
    """-r 2 and 3: the block's norms (2), or each of its sublayers whole (3), recomputed in backward."""

    recompute = 3

    def _ln_attn(self, x, rope):
        return self.attn(self.ln_1(x), rope)

    def _ln_mlp(self, x):
        return self.mlp(self.ln_2(x))

    def forward(self, x: torch.Tensor, rope: tuple | None = None, kv_cache=None) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return super().forward(x, rope, kv_cache)
        if self.recompute == 2 and torch.compiler.is_compiling():
            # llm.c's -r 2: the norm outputs are recomputed from the block's input, not stored. A checkpointed
            # norm (with autocast's cast) tells the compiler's partitioner so
            x = x + self.attn(checkpoint(_norm, self.ln_1, x, use_reentrant=False), rope)
            return x + self.mlp(checkpoint(_norm, self.ln_2, x, use_reentrant=False))
        # -r 3, and -r 2 eager (where the matmuls would save the norm outputs anyway): each sublayer is recomputed
        # whole from its input, so a block keeps only that
        x = x + checkpoint(self._ln_attn, x, rope, use_reentrant=False)
        return x + checkpoint(self._ln_mlp, x, use_reentrant=False)


def _norm(ln: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``ln(x)`` in the dtype the next matmul takes (autocast's), so that the cast is recomputed with it."""
    y = ln(x)
    dev = x.device.type
    return y.to(torch.get_autocast_dtype(dev)) if torch.is_autocast_enabled(dev) else y


def _become(module: nn.Module, cls: type[nn.Module], **settings) -> None:
    """Make ``module`` a ``cls`` (its plain class or a subclass of it) with ``settings`` as attributes."""
    module.__class__ = cls
    for name, value in settings.items():
        setattr(module, name, value)


def accelerate(model: GPT, paths: FastPaths) -> torch.nn.Module:
    """Apply `paths` to `model` in place (module swaps) and return the module the training step calls
    (torch.compile(model) when compile_scope == "model" and compile is on, else `model` itself)."""
    cfg = model.config
    # the -ge epilogues are bf16 GELU with biases: FP8 turns them off, and other MLPs stay plain
    fuse_gelu = paths.gelu_fusion and not paths.fp8 and cfg.mlp == "gelu" and cfg.bias
    fp8_keep = set(fp8_bf16_parts(",".join(paths.fp8_bf16)))  # --fp8-bf16's words as names ("attn": its two)
    for i, block in enumerate(model.transformer.h):
        recompute = 3 if i < paths.recompute_whole else int(paths.recompute)
        if recompute >= 2:
            _become(block, RecomputedBlock, recompute=recompute)
        else:
            _become(block, Block)
        # neither FP8 nor the sums in the matmuls in a block recomputed whole: compiled on CUDA, that recompute would
        # then keep every matmul's input (35,200 against 3,200 bytes per layer and token at d48, BENCHMARKS.md round
        # 15; FP8's e4m3 copies likewise: 48 such blocks saved 6 of 109 GB at d48 B=40, issue 21)
        fp8_linears = _fp8_linears(paths.fp8, fp8_keep, i, len(model.transformer.h)) if recompute < 3 else set()
        torchao_fp8 = bool(fp8_linears) and paths.fp8_impl != "ours"
        mlp = block.mlp
        # the activation (and q, k, v's gradients) inside the casts want our FP8 with the scales known before the cast
        # (delayed), the cast kernel, and FP8 weight gradients (--fp8-bf16 weight-grads needs dy in bf16)
        fused_casts_run = (not torchao_fp8 and paths.fp8_delayed and paths.fp8_cast_kernel == 1
                           and "weight-grads" not in fp8_keep)  # fmt: skip
        act_in_casts = paths.fp8_gelu_cast and {"mlp.c_fc", "mlp.c_proj"} <= fp8_linears and fused_casts_run
        if act_in_casts:
            _become(mlp, ActivationInCastMLP)
        elif recompute >= 1:  # -r keeps its own GELU path, whatever -ge says
            _become(mlp, RecomputedMLP, use_gelu_linear=mlp.activation is gelu and not paths.fp8)
        elif fuse_gelu:
            _become(mlp, GeluFusedMLP, backward="dgelu" if paths.gelu_fusion >= 2 else "plain")
        else:
            _become(mlp, MLP)
        gather_qkv = paths.fp8_qkv_cast and "attn.c_attn" in fp8_linears and fused_casts_run
        _become(block.attn, FP8QKVAttention if gather_qkv else CausalSelfAttention)
        # the LayerNorms inside the casts of the FP8 linears after them (not with -r 2, which recomputes them)
        norms_in_casts = paths.fp8_norm_cast and fused_casts_run and recompute < 2
        in_cast = {name: norms_in_casts and consumer_fused and isinstance(getattr(block, name), nn.LayerNorm)
                   for name, consumer_fused in (("ln_1", "attn.c_attn" in fp8_linears and not gather_qkv),
                                                ("ln_2", isinstance(mlp, ActivationInCastMLP)))}  # fmt: skip
        c = cfg.n_embd
        for name, widths in (("ln_1", (3 * c,)), ("ln_2", (4 * c, c))):
            if isinstance(getattr(block, name), nn.LayerNorm):
                _become(getattr(block, name), NormInCast if in_cast[name] else nn.LayerNorm, widths=widths)
        if isinstance(mlp, ActivationInCastMLP):
            mlp.norm = (block.ln_2,) if in_cast["ln_2"] else ()
        if in_cast["ln_2"]:  # and the residual add before it
            _become(block, NormsInCastsBlock)
        accumulate = bool(paths.accumulate_grads) and recompute < 3 and not torchao_fp8
        for name, layer in _linears(block):
            ours_fp8 = int(paths.fp8) if name in fp8_linears and not torchao_fp8 else 0
            delayed = bool(ours_fp8) and paths.fp8_delayed
            cached = bool(ours_fp8) and paths.fp8_cache_weights
            if ours_fp8 or accumulate:
                _become(layer, FastLinear, fp8=ours_fp8, accumulate_grad=accumulate,
                        weight_grad_bf16="weight-grads" in fp8_keep, cast_kernel=paths.fp8_cast_kernel,
                        delayed_scaling=delayed, grad_dtype=GRAD_FORMATS[paths.fp8_grad], cache_weights=cached,
                        norm=(block.ln_1,) if name == "attn.c_attn" and in_cast["ln_1"] else ())  # fmt: skip
            else:
                _become(layer, nn.Linear)
            device, (n, k) = layer.weight.device, layer.weight.shape
            _state_buffers(layer, delayed, dict.fromkeys(FP8_HISTORIES, partial(amax_history, device)))
            zeros = partial(torch.zeros, device=device)
            _state_buffers(layer, cached, {"fp8_weight": partial(zeros, n, k, dtype=E4M3),
                                           "fp8_weight_t": partial(zeros, k, n, dtype=E4M3),
                                           "fp8_weight_scale": partial(zeros, (), dtype=torch.float32)})  # fmt: skip
        if torchao_fp8:
            _torchao_fp8(block, paths.fp8_impl.removeprefix("torchao-"), fp8_linears)
    model.classifier_loss = _classifier_loss(paths)
    device = model.transformer.wte.weight.device
    if fuse_gelu and device.type == "cuda":
        from gpt2train.kernels import cublaslt

        cublaslt.prepare(device)  # its workspace outside any CUDA-graph pool (--compile-mode reduce-overhead)
    if not paths.compile:
        return model
    cache_custom_autograd_graphs()
    mode = None if paths.compile_mode == "default" else paths.compile_mode
    if paths.compile_scope == "model":
        return torch.compile(model, mode=mode)
    for block in model.transformer.h:  # regional: every block shares one compiled graph, so start-up does not grow
        block.compile(mode=mode)
    return model


def cache_custom_autograd_graphs() -> None:
    """Let AOTAutograd's cache keep graphs that hold a custom autograd.Function (FP8's, the -ge MLP's): torch
    bypasses it for them by default, so every start of such a run traced the joint graph and partitioned it again
    (1.4-2.6 s of a warm d48 start on an H200: BENCHMARKS.md, issue 21's seventh session). Dynamo traces such a
    Function's forward and backward into the graph, so the graph the cache is keyed by holds what they compute."""
    import torch._functorch.config as functorch_config

    if hasattr(functorch_config, "autograd_cache_allow_custom_autograd_functions"):
        functorch_config.autograd_cache_allow_custom_autograd_functions = True


FP8_HISTORIES = ("fp8_x_history", "fp8_grad_history")  # FastLinear's delayed-scaling states: x's, dy's


def training_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The buffers the fast paths train outside the state dict (FP8_HISTORIES), by name: what a checkpoint keeps
    beside the model file so a resumed run scales as the uninterrupted one."""
    return {name: b for name, b in model.named_buffers() if name.rsplit(".", 1)[-1] in FP8_HISTORIES}


def _state_buffers(layer: nn.Module, on: bool, make: dict) -> None:
    """Give ``layer`` the buffers ``make`` names (each made by its function, kept if it has them) or take them away;
    not in the state dict: FastLinear's FP8_HISTORIES (checkpoints keep them in the state file: training_buffers)
    and WEIGHT_COPIES (cast again before every step, nothing a checkpoint needs)."""
    for name, new in make.items():
        if on and name not in layer._buffers:
            layer.register_buffer(name, new(), persistent=False)
        elif not on and name in layer._buffers:
            delattr(layer, name)


WEIGHT_COPIES = ("fp8_weight", "fp8_weight_t", "fp8_weight_scale")  # FastLinear's cached W, W.T in e4m3, the scale


def weight_copy_layers(model: nn.Module) -> list[FastLinear]:
    """The FP8 linears of ``model`` that take their weight's copies from buffers (``--fp8-cache-weights``)."""
    return [m for m in model.modules() if isinstance(m, FastLinear) and m.cache_weights]


@torch.no_grad()
def cast_weight_copies(layers: list[FastLinear]) -> None:
    """Cast each layer's weight to its FP8 copies, as its forward would (the same scale and bytes): once before a
    step's micro-steps, since the weights change only between steps."""
    if not layers:
        return
    buffers, copies = [], []
    for layer in layers:
        buffers += [getattr(layer, name) for name in WEIGHT_COPIES]
        copies += quantize_transposed(layer.weight, E4M3, kernel=layer.cast_kernel)
    torch._foreach_copy_(buffers, copies)  # into the buffers the compiled forward reads, in a few launches


def _linears(block: Block) -> list[tuple[str, nn.Module]]:
    """The block's four linear layers with their names in it (config.FP8_LINEARS)."""
    return [("attn.c_attn", block.attn.c_attn), ("attn.c_proj", block.attn.c_proj), ("mlp.c_fc", block.mlp.c_fc),
            ("mlp.c_proj", block.mlp.c_proj)]  # fmt: skip


def _fp8_linears(fp8: int, keep: set[str], index: int, n_blocks: int) -> set[str]:
    """The names of block ``index``'s linears that run in FP8: none without fp8 or in a block ``keep`` keeps."""
    if not fp8 or (index == 0 and "first" in keep) or (index == n_blocks - 1 and "last" in keep):
        return set()
    return set(FP8_LINEARS) - keep


def _torchao_fp8(block: Block, scaling: str, names: set[str]) -> None:
    """The block's linear layers ``names`` as torchao's Float8Linear (the maintained FP8 training reference) with
    its ``scaling`` recipe: tensorwise (one scale per tensor, as ours) or rowwise (one per row). torchao swaps in
    new modules holding the same parameters under the same names."""
    import logging

    from gpt2train.optional import require

    # torchao logs a warning per prebuilt kernel library its torch version cannot load: none of them is float8's
    logging.getLogger("torchao").setLevel(logging.ERROR)
    float8 = require("torchao.float8", "fp8", f"--fp8-impl torchao-{scaling}")
    config = float8.Float8LinearConfig.from_recipe_name(scaling)
    float8.convert_to_float8_training(block, config=config, module_filter_fn=lambda module, name: name in names)


def _classifier_loss(paths: FastPaths):
    from gpt2train.kernels.fused_classifier import plain_classifier_loss

    if paths.fused_classifier:
        try:
            from gpt2train.kernels import select_classifier_loss

            return select_classifier_loss(True, paths.classifier_chunk or 1 << 62, fp8=paths.fp8_classifier)
        except ImportError:
            pass
    return plain_classifier_loss
