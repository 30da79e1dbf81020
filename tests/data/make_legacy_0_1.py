"""Writes the files in tests/data/legacy-0.1/ with the 0.1 layout of the package (commit
47125cb, before the re-layout), so that tests can check that files written by the previous
layout still load. Run once from a checkout of that commit:

    PYTHONPATH=<checkout of 47125cb> python tests/data/make_legacy_0_1.py tests/data/legacy-0.1
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from rlvision_widgets.agents import build_network, save_checkpoint
from rlvision_widgets.agents.networks import compact_config
from rlvision_widgets.analysis.nmf import AttributionNMF
from rlvision_widgets.trajectories import collect_trajectories

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
traj = collect_trajectories("random", num_envs=2, num_steps=24, seed=3)
traj.save(out / "trajectories.npz")
x = np.abs(np.random.default_rng(0).normal(size=(60, 8))).astype(np.float32)
AttributionNMF(3, source="activation", seed=0).fit(x).save(out / "nmf")
np.save(out / "nmf_input.npy", x)
torch.manual_seed(0)
cfg = compact_config(width=8)
net = build_network(dataclasses.replace(cfg, dense=(16,)))
save_checkpoint(out / "checkpoint", net, {"steps": 123, "note": "written by rlvision_widgets 0.1"})
obs = np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
with torch.no_grad():
    logits, value = net(torch.from_numpy(obs))
np.savez(out / "checkpoint_io.npz", obs=obs, logits=logits.numpy(), value=value.numpy())
print("wrote", sorted(p.name for p in out.iterdir()))
