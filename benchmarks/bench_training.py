"""Trainer throughput for both networks: env-steps/s end to end and achieved GFLOP/s as a
fraction of a dense-matmul peak measured in the same run.

    python benchmarks/bench_training.py [--envs 64] [--steps 64] [--precision fp32 bf16]
                                        [--threads N]   (0 = torch's default)

FLOPs per env step = 2 x multiply-adds x (1 rollout forward + epochs x 3 for forward+backward).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from rlvision_widgets.agents.networks import NETWORKS, multiply_adds
from rlvision_widgets.environment import EnvOptions
from rlvision_widgets.training import PPOConfig, Trainer


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def bench(
    network: str, precision: str, envs: int, steps: int, updates: int, threads: int = 0
) -> dict:
    cfg = PPOConfig(
        network=network,
        precision=precision,
        num_steps=steps,
        num_minibatches=2,
        total_steps=10**9,
        checkpoint_every_s=1e9,
        num_threads=threads,
    )
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(d, cfg, EnvOptions(num_envs=envs, rand_seed=0), progress=False)
        tr.update(tr.rollout())  # warm-up
        t = time.perf_counter()
        for _ in range(updates):
            tr.update(tr.rollout())
        dt = time.perf_counter() - t
    sps = updates * envs * steps / dt
    flops = 2 * multiply_adds(tr.model.config) * (1 + cfg.epochs * 3)
    return {"sps": sps, "gflops": sps * flops / 1e9, "mac": multiply_adds(tr.model.config)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {a.envs} envs x {a.steps} steps, 3 epochs, 2 minibatches"
    )
    peaks = {p: matmul_peak(torch.float32 if p == "fp32" else torch.bfloat16) for p in a.precision}
    for p, g in peaks.items():
        print(f"matmul peak ({p}, 2048^2): {g:.1f} GFLOP/s")
    print(
        f"{'network':8s} {'prec':5s} {'MAC/frame':>10s} {'env-steps/s':>12s} {'GFLOP/s':>8s} {'of peak':>8s}"
    )
    for net in a.networks:
        for p in a.precision:
            updates = a.updates if net != "article" else 1
            r = bench(net, p, a.envs, a.steps, updates, a.threads)
            print(
                f"{net:8s} {p:5s} {r['mac'] / 1e6:9.1f}M {r['sps']:12.0f} {r['gflops']:8.1f} "
                f"{r['gflops'] / peaks[p]:8.1%}"
            )


if __name__ == "__main__":
    main()
