"""Why does ITNet lose to PointNet on point clouds (0.633 against 0.864 at 1,000 steps)? Change one thing at a time,
on both sides, until the gap moves.

PointNet differs from ITNet's point trunk in three places: a batch norm (statistics over the batch and the points)
where ITNet normalises each point on its own (layer norm), max pooling where ITNet takes the mean, and a shared MLP
of widths 3 -> w -> w -> 2w before any mixing where ITNet embeds each point linearly. Hypotheses, each with the run
that tests it:

1. The per-point norm: PointNet with a layer norm per point instead of its batch norm (`PointNet-LN`) falls towards
   ITNet. (LN of a point's features is blind to their common scale; a batch norm keeps each point's offset from the
   others.)
2. The pooling: PointNet with mean pooling (`PointNet-mean`) falls towards ITNet.
3. The embedding: ITNet with PointNet's shared MLP as a residual stem (`point_stem_size=64`) or with the squared
   radius as a feature (a scale the per-point norm cannot remove) rises towards PointNet; with the radius, also max
   pooling and the stem.
4. The head: PointNet classifies the pooled features with an MLP (2w -> w -> classes); ITNet's head is linear on the
   mean, so each class score is an average of per-point votes and cannot combine two cloud-level features. ITNet with
   a dense pooler layer before its classifier (`pooler_activation="gelu"`, BERT's pooler) rises towards PointNet;
   PointNet with a linear head (`PointNet-linear`) falls towards ITNet.
5. The norm over the set: a layer norm per point removes each point's scale (its distance from the centre) before
   every mixer and feed-forward; Set Norm (Zhang et al. 2022, "Set Norm and Equivariant Skip Connections: Putting
   the Deep in Deep Sets") normalises each cloud over its points and channels together, so points keep their scale
   relative to the cloud. ITNet with every layer norm of the trunk replaced by it (`ITNet set-norm`) rises towards
   PointNet.
6. The norm before the readout: the trunk's final layer norm normalises each point before the mean, so every point
   votes with the same magnitude. ITNet pooling its residual stream first and normalising the pooled vector (`ITNet
   pool-then-norm`, the same parameters) rises towards PointNet.
7. The batch statistics: PointNet normalises each channel over the batch and the points (batch norm), so a point's
   feature is read against the whole data's spread. ITNet with every norm of the point trunk a batch norm over the
   real points (`ITNet batch-norm`: `point_norm_type="batch_norm"`, which `itnet-unified` has since shipped) rises
   towards PointNet. Then, with it, the stem and the radius feature again (`ITNet batch-norm pstem=64`, `ITNet
   batch-norm +radius²`).

With the batch norm (shipped), ITNet still trails PointNet by 0.2 at the long budget, and its training loss stays
high (0.64 against 0.11 at 1,000 steps): it underfits. Hypotheses 8-16 run with it:

8. The width of the pooled descriptor: PointNet max-pools 2w = 244 channels, ITNet its 64-wide states.
   PointNet pooling 64 channels (`PointNet-narrow`, `[3, w, w, 64]`, w matched to the parameters) falls towards ITNet;
   with a mean too (`PointNet-narrow-mean`).
9. The mixing: the low-rank family mixes the points of a cloud. ITNet with its mixers held closed (`ITNet
   batch-norm mixers closed`, `gate_bias_init=-6`: per-point feed-forward blocks alone) falls below ITNet.
10. The detectors: PointNet max-pools rectified features (`ReLU(BN(W h))`), ITNet the normalised residual stream,
   which holds the linear embedding of the coordinates. ITNet max-pooling `ReLU(norm(h))` (`ITNet batch-norm relu
   max`) rises towards PointNet.
11. The capacity points use: ITNet's mixers hold 41,600 of its 76,103 parameters and add nothing on points (9);
   PointNet spends all of its on per-point layers. PointNet with ITNet's parameters outside the mixers
   (`PointNet-per-point`, about 34,500) falls towards ITNet.
12. The block structure: PointNet normalises each layer's output (`ReLU(BN(W h))`), ITNet normalises each block's
   input and adds its output to a residual stream that keeps the linear embedding of the coordinates. ITNet with
   post-norm blocks (`ITNet batch-norm post-norm`, `norm_position="post"`: each block's sum normalised) rises
   towards PointNet.
13. The activation: ReLU (PointNet) against GELU (ITNet; `ITNet batch-norm relu`).
14. The initialisation scale: ITNet draws its weights with std 0.02 (BERT's `initializer_range`), so each
   feed-forward block starts near its linear regime and adds little to the residual stream; PointNet's layers start
   at PyTorch's default (std about `0.58 / √fan_in`, 0.07 at fan-in 64). ITNet with `initializer_range` 0.1, 0.2 or 0.4
   (`ITNet batch-norm init=0.1`, `init=0.2`, `init=0.4`) rises towards PointNet.
15. Where that scale acts: in the feed-forward blocks, which start near their linear regime (hypothesis 14's
   reasoning), not in the embedding, mixers and head. ITNet with std 0.2 in the feed-forward blocks alone
   (`feed_forward_initializer_range`; `ITNet batch-norm init=0.2 ffn`) keeps the gain of `init=0.2`, and with 0.2
   everywhere but there (`init=0.2 but ffn`) loses it. (The language model, which 0.2 everywhere hurts, is run with
   the same two by `ablate_unified.py --variants ffn_init=0.2 init=0.2,ffn_init=0.02`.)
16. The embedding: ITNet embeds each point linearly and its trunk's first nonlinearity comes after a mixer and a
   norm; PointNet's features are three `ReLU(BN(W x))` layers deep before the pooling, and max-pooling rectified
   detectors is what its readout does. ITNet with PointNet's shared MLP as its point embedding
   (`point_stem_type="pointnet"`, `point_stem_size=64`; `ITNet batch-norm pointnet-stem`) rises towards PointNet,
   and with max pooling (`... max`) reaches it.

Every run but those of hypotheses 7-16 builds the point trunk with the layer norm it had when they were made.

Every run: the comparison's protocol (`compare_specialized.py`: AdamW, warm-up + cosine, clipping 1.0, batch 32, its
batch order), `--steps` steps, seed 0, validation accuracy (the comparison's validation rows), learning rates 3e-3 and
1e-2 (the best kept); ms/step of training alone.

    python benchmarks/diagnose_points.py --steps 300 > benchmarks/results/diagnose_points_300.log
    python benchmarks/diagnose_points.py --steps 300 --runs PointNet-narrow PointNet-narrow-mean \
        "ITNet batch-norm mixers closed" > benchmarks/results/diagnose_points_300_width.log
    python benchmarks/diagnose_points.py --steps 300 --runs "ITNet batch-norm relu max" \
        > benchmarks/results/diagnose_points_300_relu_max.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs "ITNet batch-norm relu max" \
        "ITNet batch-norm" > benchmarks/results/diagnose_points_1000_relu_max.log
    python benchmarks/diagnose_points.py --steps 300 --runs PointNet-per-point \
        > benchmarks/results/diagnose_points_300_per_point.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs PointNet-per-point PointNet \
        > benchmarks/results/diagnose_points_1000_per_point.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs "ITNet batch-norm post-norm" \
        > benchmarks/results/diagnose_points_1000_post_norm.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs "ITNet batch-norm relu" \
        > benchmarks/results/diagnose_points_1000_relu.log
    for v in 0.1 0.2 0.4; do python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 \
        --runs "ITNet batch-norm init=$v" > benchmarks/results/diagnose_points_1000_init_$v.log; done
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-2 --runs "ITNet batch-norm init=0.2" \
        > benchmarks/results/diagnose_points_1000_init_0.2_lr1e-2.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs "ITNet batch-norm init=0.2 ffn" \
        "ITNet batch-norm init=0.2 but ffn" > benchmarks/results/diagnose_points_1000_init_ffn.log
    python benchmarks/diagnose_points.py --steps 1000 --lr_grid 1e-3 3e-3 --runs "ITNet batch-norm pointnet-stem" \
        "ITNet batch-norm pointnet-stem max" > benchmarks/results/diagnose_points_1000_pointnet_stem.log
"""

import argparse
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import specialized_models
from compare_specialized import search_rates
from specialized_models import PointNet, count_parameters, match_width

from modeling_itnet import ITNetForPointCloudClassification, preset_config


class PointNetVariant(PointNet):
    """`PointNet` with its norm (`"batch"` or `"layer"`, per point) and its pooling (`"max"` or `"mean"`) chosen."""

    def __init__(
        self,
        width: int,
        num_labels: int,
        norm: str = "batch",
        pooling: str = "max",
        head: str = "mlp",
        pooled_width: int | None = None,
    ):
        super().__init__(width, num_labels)
        self.pooling = pooling
        pooled = pooled_width or 2 * width  # the channels max- or mean-pooled (PointNet's 2w)
        if head == "linear":
            self.head = nn.Linear(pooled, num_labels)
        elif pooled_width is not None:
            self.head = nn.Sequential(nn.Linear(pooled, width), nn.ReLU(), nn.Linear(width, num_labels))
        if norm == "layer" or pooled_width is not None:
            dims = [3, width, width, pooled]
            layers = []
            for a, b in itertools.pairwise(dims):
                layers += [nn.Conv1d(a, b, 1), _PointLayerNorm(b) if norm == "layer" else nn.BatchNorm1d(b), nn.ReLU()]
            self.features = nn.Sequential(*layers)

    def forward(self, points, attention_mask=None, labels=None, **_):
        features = self.features(points.transpose(1, 2))  # [B, C, N]
        pooled = features.max(-1).values if self.pooling == "max" else features.mean(-1)
        logits = self.head(pooled)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SimpleNamespace(loss=loss, logits=logits)


class _PointLayerNorm(nn.LayerNorm):
    """A layer norm over the channels of each point of a `[B, C, N]` tensor."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _SetNorm(nn.LayerNorm):
    """Set Norm of `[B, N, D]` point states: the mean and variance over each cloud's points and channels together,
    then the layer norm's per-channel scale and shift. (The diagnosis' clouds have no padding: no mask.)"""

    def forward(self, x):
        mean = x.mean((1, 2), keepdim=True)
        variance = x.var((1, 2), keepdim=True, unbiased=False)
        return (x - mean) * torch.rsqrt(variance + self.eps) * self.weight + self.bias


def itnet(
    overrides: dict,
    set_norm: bool = False,
    pool_then_norm: bool = False,
    batch_norm: bool = False,
    relu_before_pool: bool = False,
):
    # the point encoder and readout the preset had when hypotheses 1-15 were run: a linear embedding, mean pooling
    encoder = {"point_norm_type": "batch_norm" if batch_norm else "layer_norm", "point_stem_size": 0,
               "point_stem_type": "residual", "modality_pooling": {"points": "mean"}}  # fmt: skip

    def build():
        config = preset_config("itnet-unified", num_labels=7, **{**encoder, **overrides})
        model = ITNetForPointCloudClassification(config)
        if pool_then_norm:  # the final norm moved after the pooling: the classifier reads norm(pool(h))
            model.classifier = nn.Sequential(model.itnet.norm, model.classifier)
            model.itnet.norm = nn.Identity()
        if set_norm:
            for layer in model.itnet.layers:
                layer.mixer_norm, layer.ffn_norm = _SetNorm(config.hidden_size), _SetNorm(config.hidden_size)
            model.itnet.norm = _SetNorm(config.hidden_size)
        if relu_before_pool:  # PointNet's detectors: the pooled features are rectified (no padding here: no mask)
            model.itnet.norm = nn.Sequential(model.itnet.norm, nn.ReLU())
        return model

    return build


def with_squared_radius(data: dict) -> dict:
    return {
        name: {**split, "point_features": split["points"].square().sum(-1, keepdim=True)}
        for name, split in data.items()
    }


TASK = SimpleNamespace(metric="accuracy", batch_size=32)  # what `fit` and `evaluate` read of a task


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr_grid", nargs="*", type=float, default=[3e-3, 1e-2])
    parser.add_argument("--runs", nargs="*", default=None, help="names of the runs to do (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = specialized_models.load_points(args.steps * 32, False)
    data = {name: data[name] for name in ("train", "validation")}
    target = count_parameters(itnet({})())
    runs = {"ITNet": (itnet({}), data)}
    for name, kwargs in [("PointNet", {}), ("PointNet-LN", {"norm": "layer"}), ("PointNet-mean", {"pooling": "mean"}),
                         ("PointNet-LN-mean", {"norm": "layer", "pooling": "mean"}),
                         ("PointNet-linear", {"head": "linear"}), ("PointNet-narrow", {"pooled_width": 64}),
                         ("PointNet-narrow-mean", {"pooled_width": 64, "pooling": "mean"})]:  # fmt: skip
        width, _ = match_width(lambda w, k=kwargs: PointNetVariant(w, 7, **k), target, multiple=2)
        runs[name] = (lambda w=width, k=kwargs: PointNetVariant(w, 7, **k), data)
    mixers = sum(p.numel() for name, p in itnet({})().named_parameters() if ".mixer." in name)
    width, _ = match_width(lambda w: PointNetVariant(w, 7), target - mixers, multiple=2)
    runs["PointNet-per-point"] = (lambda w=width: PointNetVariant(w, 7), data)
    runs["ITNet pstem=64"] = (itnet({"point_stem_size": 64}), data)
    runs["ITNet +radius²"] = (itnet({"point_feature_size": 1}), with_squared_radius(data))
    runs["ITNet +radius² max"] = (
        itnet({"point_feature_size": 1, "modality_pooling": {"points": "max"}}),
        with_squared_radius(data),
    )
    runs["ITNet +radius² pstem=64"] = (
        itnet({"point_feature_size": 1, "point_stem_size": 64}),
        with_squared_radius(data),
    )
    runs["ITNet pooler=gelu"] = (itnet({"pooler_activation": "gelu"}), data)
    runs["ITNet pooler=gelu max"] = (itnet({"pooler_activation": "gelu", "modality_pooling": {"points": "max"}}), data)
    runs["ITNet pooler=gelu +radius²"] = (
        itnet({"pooler_activation": "gelu", "point_feature_size": 1}),
        with_squared_radius(data),
    )
    runs["ITNet set-norm"] = (itnet({}, set_norm=True), data)
    runs["ITNet set-norm max"] = (itnet({"modality_pooling": {"points": "max"}}, set_norm=True), data)
    runs["ITNet pool-then-norm"] = (itnet({}, pool_then_norm=True), data)
    runs["ITNet pool-then-norm max"] = (itnet({"modality_pooling": {"points": "max"}}, pool_then_norm=True), data)
    runs["ITNet batch-norm"] = (itnet({}, batch_norm=True), data)
    runs["ITNet batch-norm max"] = (itnet({"modality_pooling": {"points": "max"}}, batch_norm=True), data)
    runs["ITNet batch-norm pstem=64"] = (itnet({"point_stem_size": 64}, batch_norm=True), data)
    runs["ITNet batch-norm +radius²"] = (itnet({"point_feature_size": 1}, batch_norm=True), with_squared_radius(data))
    runs["ITNet batch-norm relu max"] = (
        itnet({"modality_pooling": {"points": "max"}}, batch_norm=True, relu_before_pool=True),
        data,
    )
    runs["ITNet batch-norm post-norm"] = (itnet({"norm_position": "post"}, batch_norm=True), data)
    runs["ITNet batch-norm relu"] = (itnet({"hidden_act": "relu"}, batch_norm=True), data)
    runs["ITNet batch-norm init=0.1"] = (itnet({"initializer_range": 0.1}, batch_norm=True), data)
    runs["ITNet batch-norm init=0.2"] = (itnet({"initializer_range": 0.2}, batch_norm=True), data)
    runs["ITNet batch-norm init=0.4"] = (itnet({"initializer_range": 0.4}, batch_norm=True), data)
    runs["ITNet batch-norm init=0.2 ffn"] = (itnet({"feed_forward_initializer_range": 0.2}, batch_norm=True), data)
    runs["ITNet batch-norm init=0.2 but ffn"] = (
        itnet({"initializer_range": 0.2, "feed_forward_initializer_range": 0.02}, batch_norm=True),
        data,
    )
    pointnet_stem = {"point_stem_size": 64, "point_stem_type": "pointnet"}
    runs["ITNet batch-norm pointnet-stem"] = (
        itnet({**pointnet_stem, "modality_pooling": {"points": "mean"}}, batch_norm=True),
        data,
    )
    runs["ITNet batch-norm pointnet-stem max"] = (
        itnet({**pointnet_stem, "modality_pooling": {"points": "max"}}, batch_norm=True),
        data,
    )
    runs["ITNet batch-norm mixers closed"] = (itnet({"gate_bias_init": -6.0}, batch_norm=True), data)
    print(f"diagnose_points: {args.steps} steps, batch 32, seed 0, lr grid {args.lr_grid}; ITNet {target:,} params")
    for name, (build, split) in runs.items():
        if args.runs and name not in args.runs:
            continue
        results = search_rates(build, TASK, split, args.steps, args.lr_grid, curve_points=4)
        best = max(results, key=lambda r: r["validation"])
        tried = " ".join(f"{r['learning_rate']:g}:{r['validation']:.3f}" for r in results)
        print(f"{name:18s} {count_parameters(build()):>7,} params  lr {best['learning_rate']:g} validation "
              f"{best['validation']:.4f}  train loss {best['train_loss']:.3f}  "
              f"{best['seconds_per_step'] * 1000:.0f} ms/step  "
              f"curve {' '.join(f'{s}:{v:.3f}' for s, v in best['curve'])}  ({tried})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
