"""Multi-process data parallelism under ``torchrun``: process context, sharding, collectives, synchronised BatchNorm.

Design (the goal is that W processes compute what one process computes on the same global batch):

* **Data order.** Epoch e's order is a permutation drawn from ``(seed, e)`` only; global batch k is
  ``perm[k B : (k+1) B]`` (drop_last) and process r takes the contiguous slice ``[r B/W : (r+1) B/W]`` of it, so the
  processes' batches concatenated in rank order are the single-process batch. Test samples are sharded ``r::W``
  and counts are summed, so accuracy is exact.
* **Gradients** are averaged with one all-reduce of a flattened buffer after ``backward`` (what
  ``DistributedDataParallel`` does, without overlapping communication with the backward pass). Doing it
  explicitly tolerates parameters without gradient and makes IEMF's gradient edit happen after the average, on the
  same values in every process (docs/iemf.md §5 pitfalls).
* **BatchNorm.** ``torch.nn.SyncBatchNorm`` refuses CPU tensors in torch 2.13 ("SyncBatchNorm expected input tensor
  to be on GPU"), so :class:`DistributedBatchNorm` (differentiable all-reduces of the per-channel sums, two passes)
  replaces every BatchNorm while training with W > 1, on any device and backend. Its statistics are those of the
  whole global batch and its parameters/buffers have the same names, so checkpoints load into the plain model.
* **Cross-sample losses.** The semantic-alignment loss couples samples of a batch; :meth:`DistContext.gather`
  is a differentiable all-gather (backward: all-reduce, then this process's slice).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from snnav.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "DistContext",
    "env_world_size",
    "init_distributed",
    "shutdown_distributed",
    "epoch_permutation",
    "global_batches",
    "rank_batches",
    "eval_indices",
    "average_gradients",
    "broadcast_module",
    "DistributedBatchNorm",
    "convert_batchnorm",
]


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """``y = sum_r x_r`` in every process; backward ``dx_q = sum_r dy_r`` (every process's loss depends on x_q)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _AllGather(torch.autograd.Function):
    """Concatenate equal-sized per-process tensors along ``dim`` in rank order; backward keeps this rank's slice of
    the all-reduced gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, dim: int) -> Tensor:  # type: ignore[override]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.dim, ctx.start, ctx.size = dim, dist.get_rank() * x.shape[dim], x.shape[dim]
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad.narrow(ctx.dim, ctx.start, ctx.size), None


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (1 = not distributed) and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes every file of a run."""
        return self.rank == 0

    def gather(self, x: Tensor, dim: int = 0) -> tuple[Tensor, slice, int]:
        """Whole-batch ``x`` (differentiable if ``x`` needs grad), this process's slice of it, and W."""
        n = x.shape[dim]
        if not self.distributed:
            return x, slice(0, n), 1
        if x.requires_grad:
            full = _AllGather.apply(x, dim)
        else:
            parts = [torch.empty_like(x) for _ in range(self.world_size)]
            dist.all_gather(parts, x.contiguous())
            full = torch.cat(parts, dim=dim)
        return full, slice(self.rank * n, (self.rank + 1) * n), self.world_size

    def all_reduce_sum(self, x: Tensor) -> Tensor:
        """Sum of ``x`` over processes (in place; returns ``x``)."""
        if not self.distributed:
            return x
        if self.device.startswith("cuda") and not x.is_cuda:  # NCCL reduces CUDA tensors only
            y = x.to(self.device)
            dist.all_reduce(y)
            x.copy_(y.cpu())
        else:
            dist.all_reduce(x)
        return x

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), or return a single-process context.

    Args:
        device: ``auto``, ``cpu`` or ``cuda``; under torchrun with CUDA each process uses ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: ``device = cuda`` without a CUDA device.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu.")
    world = env_world_size()
    if world <= 1:
        return DistContext(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    logger.info("process %d of %d on %s (%s)", rank, world, device, dist.get_backend())
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch ``epoch``: a function of ``(seed, epoch)`` only, so a resumed run sees it again."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF, 0x5E5A]).permutation(n)


def global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's global batches (drop_last, as the reference's training loader)."""
    perm = epoch_permutation(n, seed, epoch)
    return [perm[k * batch_size:(k + 1) * batch_size] for k in range(n // batch_size)]


def rank_batches(batches: list[np.ndarray], rank: int, world_size: int) -> list[list[int]]:
    """Process ``rank``'s contiguous slice of every global batch."""
    out = []
    for batch in batches:
        if len(batch) % world_size:
            raise ConfigError(f"batch_size {len(batch)} is not divisible by the {world_size} processes; "
                              f"use a batch size that is a multiple of {world_size}.")
        b = len(batch) // world_size
        out.append([int(i) for i in batch[rank * b:(rank + 1) * b]])
    return out


def eval_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Process ``rank``'s test samples (every sample exactly once over all processes)."""
    return list(range(rank, n, world_size))


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """Replace each gradient by its mean over processes (one flattened all-reduce)."""
    if not ctx.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every process (guards against any init that is not seeded)."""
    if ctx.distributed:
        with torch.no_grad():
            for t in (*module.parameters(), *module.buffers()):
                dist.broadcast(t.data, src=0)


class DistributedBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics span every process's part of the global batch (any device/backend).

    Per channel c, over the n values of all processes (n = W x the local count; local batches are equal)::

        mu = sum x / n ;  var = sum (x - mu)^2 / n ;  y = (x - mu) / sqrt(var + eps) * weight + bias
        running_mean <- (1 - m) running_mean + m mu ;  running_var <- (1 - m) running_var + m var n / (n - 1)

    Both sums are differentiable all-reduces. Outside training, or in a single process, it is plain BatchNorm.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"DistributedBatchNorm expects at least 2-D input (N, C, ...); got {x.dim()}-D.")

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and _initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        dims = [0, *range(2, x.dim())]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1] * dist.get_world_size()
        mean = _AllReduceSum.apply(x.sum(dims)) / n  # (C,)
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / n  # (C,) biased
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.running_mean.mul_(1.0 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d/2d/3d`` in ``module`` (in place) by :class:`DistributedBatchNorm`, same state."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, DistributedBatchNorm):
            new = DistributedBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats)
            ref = child.weight if child.affine else child.running_mean
            if ref is not None:
                new.to(device=ref.device, dtype=ref.dtype)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child)
    return module
