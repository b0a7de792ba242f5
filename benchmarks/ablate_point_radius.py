"""Does ITNet lose on point clouds because its first norm discards each point's distance from the centre?

The point embedding is linear, `h_i = W p_i` (bias 0 at initialisation), and every block starts with a layer norm,
which is invariant to the scale of its input: `LN(W (c p_i)) = LN(W p_i)` for `c > 0`. At initialisation the
trunk therefore sees only each point's direction from the origin, not its radius. Hypothesis: a per-point feature
that does not scale with the point, the squared radius `‖p_i‖²` (`point_feature_size=1`; the radius itself would
scale with it and leave the invariance), closes part of the gap to PointNet. ITNet only, the
`itnet-unified` preset (mean pooling on points), the short budget, seed 0, validation, learning rates 1e-3 and 3e-3.

    python benchmarks/ablate_point_radius.py > benchmarks/results/ablate_point_radius.log
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from ablate_point_stem import run_points

load_points = specialized_models.load_points


def load_points_with_squared_radius(train_needed: int, quick: bool) -> dict:
    data = load_points(train_needed, quick)
    for split in data.values():
        split["point_features"] = split["points"].square().sum(-1, keepdim=True)
    return data


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, overrides in [("coordinates", {}), ("+radius²", {"point_feature_size": 1})]:
        specialized_models.load_points = load_points_with_squared_radius if overrides else load_points
        for lr in (1e-3, 3e-3):
            run_points(name, overrides, lr, label_width=12)
