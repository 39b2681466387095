"""Data-parallel building blocks: sharding, and (in 2 gloo processes) synchronised BatchNorm and the gathered
alignment loss against their single-process full-batch values."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from snnav.errors import ConfigError
from snnav.training.distributed import (
    DistContext,
    DistributedBatchNorm,
    convert_batchnorm,
    epoch_permutation,
    eval_indices,
    global_batches,
    rank_batches,
)
from snnav.training.losses import semantic_alignment_loss


def test_epoch_order_depends_on_seed_and_epoch_only():
    assert np.array_equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 3))
    assert not np.array_equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 1, 4))
    assert not np.array_equal(epoch_permutation(50, 1, 3), epoch_permutation(50, 2, 3))


def test_rank_slices_concatenate_to_the_global_batch():
    batches = global_batches(23, 6, seed=0, epoch=1)
    assert len(batches) == 3  # drop_last
    shards = [rank_batches(batches, r, 3) for r in range(3)]
    for k, batch in enumerate(batches):
        assert sum((shards[r][k] for r in range(3)), []) == batch.tolist()
    with pytest.raises(ConfigError, match="not divisible by the 4 processes"):
        rank_batches(batches, 0, 4)
    parts = [eval_indices(11, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(11))


def test_convert_batchnorm_keeps_state_and_is_plain_bn_in_one_process():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)))
    net[1].running_mean.fill_(0.5)
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(net[1].state_dict())
    convert_batchnorm(net)
    assert isinstance(net[1], DistributedBatchNorm) and isinstance(net[2][0], DistributedBatchNorm)
    assert all(torch.equal(ref[k], v) for k, v in net.state_dict().items())
    x = torch.randn(5, 3, 4, 4)
    assert torch.equal(net[1](x), plain(x)) and torch.equal(net[1].running_var, plain.running_var)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(8, 3, 5, 5, generator=gen, dtype=torch.float64)
        w = torch.randn(8, 3, 5, 5, generator=gen, dtype=torch.float64)
        bn = DistributedBatchNorm(3).double()
        local = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        # each process's loss is W x its share, so the averaged parameter gradient is the full-batch gradient
        y = bn(local)
        (2 * (y * w[rank * 4:(rank + 1) * 4]).sum() / 8).backward()
        grads = torch.cat([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)
        ctx = DistContext(rank=rank, world_size=2)
        a = torch.rand(2, 8, 4, generator=gen, dtype=torch.float64)
        v = torch.rand(2, 8, 4, generator=gen, dtype=torch.float64)
        labels = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
        a_local = a[:, rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        full_a, rows, world = ctx.gather(a_local.mean(dim=0), 0)
        full_labels, _, _ = ctx.gather(labels[rank * 4:(rank + 1) * 4], 0)
        loss = world * semantic_alignment_loss(full_a, v.mean(dim=0), full_labels, 0.07, rows=rows)
        loss.backward()
        total = loss.detach().clone()
        dist.all_reduce(total)
        # numpy, not tensors: torch shares queued tensors through a socket that dies with this process
        items = (y.detach(), local.grad, grads / 2, bn.running_mean, bn.running_var, a_local.grad, total / 2)
        queue.put((rank, *(t.detach().numpy().copy() for t in items)))
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_full_batch():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {item[0]: [torch.from_numpy(x) for x in item[1:]] for item in (queue.get(timeout=120) for _ in range(2))}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 5, 5, generator=gen, dtype=torch.float64).requires_grad_(True)
    w = torch.randn(8, 3, 5, 5, generator=gen, dtype=torch.float64)
    bn = nn.BatchNorm2d(3).double()
    y = bn(x)
    ((y * w).sum() / 8).backward()
    a = torch.rand(2, 8, 4, generator=gen, dtype=torch.float64).requires_grad_(True)
    v = torch.rand(2, 8, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    sao = semantic_alignment_loss(a, v, labels, 0.07)
    sao.backward()
    for rank in range(2):
        train_out, x_grad, param_grads, r_mean, r_var, a_grad, sao_total = results[rank]
        sl = slice(rank * 4, (rank + 1) * 4)
        # activation gradients are W x the full-batch ones (each process's loss is W x its share); the gradient
        # average over processes divides the parameter gradients by W again
        assert torch.allclose(train_out, y[sl].detach(), atol=1e-12)
        assert torch.allclose(x_grad / 2, x.grad[sl], atol=1e-12)
        assert torch.allclose(param_grads, torch.cat([bn.weight.grad, bn.bias.grad]), atol=1e-12)
        assert torch.allclose(r_mean, bn.running_mean, atol=1e-12) and torch.allclose(r_var, bn.running_var)
        assert torch.allclose(a_grad / 2, a.grad[:, sl], atol=1e-12)
        assert float(sao_total) == pytest.approx(sao.item(), rel=1e-12)
