"""What an ITNet learned, in one PNG: its spectral kernels as functions of the offset, and its gates per layer.

    from plot_kernels import plot_kernels
    data = plot_kernels({"images": model, "text": text_model}, "kernels.png", batches={"images": batch, ...})

For every model, every layer's `"spectral"` kernel `k_θ(δ)` is evaluated by the model's own
`ITNetSpectralKernel(offsets, length_scale)` on the offsets of the grid it runs on (`grid_offsets`, the ones its
forward uses): a curve over token offsets for text, a heatmap over patch offsets for images (both for an image +
text model). The gates `σ(W_g,f u_i)` of every kernel family are read from the mixer's own `gate` layer with a forward
hook on a real batch, averaged over its tokens and channels.

How to read it (`δ = x_i − x_j`: `δ > 0` reads the tokens before `i`):

- a narrow kernel, concentrated at `δ ≈ 0`, mixes a few neighbours: convolution-like;
- a broad or flat kernel reaches across the whole sequence or image: global, attention-like mixing;
- a one-sided kernel that decays over `δ > 0` (or `δ < 0`) integrates the past (the future) with fading memory:
  recurrence-like;
- a gate near 1 lets a family through, near 0 shuts it, per token and channel: the spectral family is the
  position-only (conv/recurrence-like) path, `low_rank` and `softmax` the content (attention-like) paths.
"""

from pathlib import Path

import numpy as np
import torch

from modeling_itnet.kernels_itnet import grid_offsets

CAPTION = (
    "How to read kernels.png: each curve/heatmap is a layer's learned spectral kernel k(δ), δ = x_i − x_j the offset "
    "(tokens for text, patches for images), |k| averaged over channels and scaled to its maximum (thin lines: single "
    "channels). Narrow around δ = 0: convolution-like; broad or flat: global, attention-like; one-sided and decaying "
    "(δ > 0 = the past): recurrence-like. 'reach' is the mean |δ| weighted by |k|. Bars: mean gate σ(W_g u) of each "
    "kernel family per layer (1 = fully on), on a real batch; the spectral gate weighs the position-only path, "
    "low_rank/softmax the content-based, attention-like paths."
)
LINES_SHOWN = 8  # single channels drawn as thin lines in a 1-D panel


def _trunk(model):
    return getattr(model, "itnet", model)


def grids_of(model, text_length: int = 64) -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """`{"text": (grid_shape, length_scale), "image": ...}` for the modalities the model reads, as its trunk builds
    them (`_embed_text`: `max_position_embeddings`; `_embed_image`: `grid_size` patches)."""
    trunk, config, grids = _trunk(model), model.config, {}
    if getattr(trunk, "text_embeddings", None) is not None:
        grids["text"] = ((text_length,), (float(config.max_position_embeddings),))
    if getattr(trunk, "image_embeddings", None) is not None:
        side = config.grid_size
        grids["image"] = ((side, side), (float(side), float(side)))
    return grids


@torch.no_grad()
def spectral_kernels(model, text_length: int = 64) -> dict[str, list[dict]]:
    """`{grid kind: [per layer {"offsets" [..., n], "kernel" [..., D]}]}`: `ITNetSpectralKernel` on the grid's offsets."""
    out = {}
    for kind, (grid, scale) in grids_of(model, text_length).items():
        layers = []
        for layer in _trunk(model).layers:
            if "spectral" not in layer.mixer.branches:  # an nn.ModuleDict: no .get
                continue
            branch = layer.mixer.branches["spectral"]
            offsets = grid_offsets(grid, device=branch.kernel.fc1.weight.device)
            layers.append({"offsets": offsets.cpu(), "kernel": branch.kernel(offsets, scale).float().cpu()})
        if layers:
            out[kind] = layers
    return out


def profile(kernel: torch.Tensor) -> torch.Tensor:
    """Mean over channels of `|k(δ)|`, scaled to a maximum of 1: the shape drawn in the panels."""
    magnitude = kernel.abs().mean(dim=-1)
    return magnitude / magnitude.max().clamp_min(1e-12)


def reach(offsets: torch.Tensor, shown: torch.Tensor) -> float:
    """Mean distance `‖δ‖` weighted by the drawn profile: ~1 for a 3-tap convolution, large for a global kernel."""
    return float((offsets.norm(dim=-1) * shown).sum() / shown.sum())


def past_share(offsets: torch.Tensor, shown: torch.Tensor) -> float:
    """Share of the profile's mass at `δ > 0` (the past) among `δ ≠ 0` of a 1-D kernel: 0.5 symmetric, 1 causal."""
    delta = offsets[..., 0]
    return float(shown[delta > 0].sum() / shown[delta != 0].sum().clamp_min(1e-12))


@torch.no_grad()
def gate_values(model, batch: dict) -> dict[str, np.ndarray]:
    """Mean gate of each kernel family per layer on `batch` (model inputs, no labels needed):
    `{family: array [num_layers]}`, the mixer's `gate_act(gate(u))` (a sigmoid natively) averaged over real tokens and
    channels."""
    trunk, captured, handles = _trunk(model), [], []
    for layer in trunk.layers:
        mixer = layer.mixer
        state = {}

        def keep_mask(module, args, kwargs, state=state):
            state["mask"] = args[1] if len(args) > 1 else kwargs.get("mask")

        def keep_gate(module, args, output, state=state, mixer=mixer):
            batch_size, length = output.shape[:2]
            gates = mixer.gate_act(output.float()).view(batch_size, length, len(mixer.branches), -1).mean(-1)
            mask = state.get("mask")
            weights = torch.ones(batch_size, length) if mask is None else mask.float().cpu()
            gates = (gates.cpu() * weights[..., None]).sum((0, 1)) / weights.sum()
            captured.append(dict(zip(mixer.branches.keys(), gates.tolist())))

        handles.append(mixer.register_forward_pre_hook(keep_mask, with_kwargs=True))
        handles.append(mixer.gate.register_forward_hook(keep_gate))
    was_training = model.training
    try:
        model.eval()
        model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    families = list(captured[0])
    return {family: np.array([layer[family] for layer in captured]) for family in families}


def plot_kernels(models: dict, path, batches: dict | None = None, text_length: int = 64) -> dict:
    """Draws every model's spectral kernels (one row per grid kind, one column per layer) and gate values (last
    column) into `path` (a PNG). Returns what it drew: `{name: {"kernels": spectral_kernels(...), "shown": {kind:
    [profile per layer]}, "reach": {kind: [...]}, "past_share": [...], "gates": gate_values(...) or None}}`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    batches = batches or {}
    drawn = {}
    rows = []
    for name, model in models.items():
        kernels = spectral_kernels(model, text_length)
        shown = {kind: [profile(layer["kernel"]) for layer in layers] for kind, layers in kernels.items()}
        drawn[name] = {
            "kernels": kernels,
            "shown": shown,
            "reach": {kind: [reach(l["offsets"], s) for l, s in zip(kernels[kind], shown[kind])] for kind in kernels},
            "past_share": [
                past_share(l["offsets"], s) for l, s in zip(kernels.get("text", []), shown.get("text", []))
            ],
            "gates": gate_values(model, batches[name]) if name in batches else None,
        }
        for index, kind in enumerate(kernels):
            rows.append((name, kind, index == 0))
    num_layers = max((len(layers) for d in drawn.values() for layers in d["kernels"].values()), default=1)
    columns = num_layers + 1
    figure, axes = plt.subplots(
        max(1, len(rows)), columns, figsize=(3.4 * columns, 2.9 * max(1, len(rows))), squeeze=False
    )
    for row, (name, kind, first) in enumerate(rows):
        data = drawn[name]
        for column in range(num_layers):
            ax = axes[row, column]
            if column >= len(data["kernels"][kind]):
                ax.axis("off")
                continue
            layer, shown = data["kernels"][kind][column], data["shown"][kind][column]
            title = f"{name} · {kind} · layer {column + 1}\nreach {data['reach'][kind][column]:.1f}"
            if kind == "text":
                delta = layer["offsets"][:, 0].numpy()
                kernel = layer["kernel"]
                scale = kernel.abs().amax(0).clamp_min(1e-12)
                channels = np.linspace(0, kernel.shape[-1] - 1, min(LINES_SHOWN, kernel.shape[-1])).astype(int)
                for d in channels:
                    ax.plot(
                        delta,
                        (kernel[:, d] / scale[d]).numpy(),
                        lw=0.6,
                        alpha=0.4,
                        color="tab:blue",
                        label="single channels" if d == channels[0] else None,
                    )
                ax.plot(delta, shown.numpy(), lw=2, color="black", label="mean |k|")
                ax.axvline(0, color="gray", lw=0.5)
                ax.axhline(0, color="gray", lw=0.5)
                ax.set_xlabel("offset δ (tokens; > 0 = past)")
                ax.set_ylim(-1.05, 1.05)
                title += f" tokens, past share {data['past_share'][column]:.2f}"
                if column == 0:
                    ax.legend(loc="lower left", fontsize=6)
            else:
                side = shown.shape[0] // 2
                image = ax.imshow(
                    shown.numpy(),
                    cmap="magma",
                    vmin=0,
                    vmax=1,
                    origin="lower",
                    extent=(-side - 0.5, side + 0.5, -side - 0.5, side + 0.5),
                )
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.yaxis.set_major_locator(MaxNLocator(integer=True))
                ax.set_xlabel("Δ column (patches)")
                ax.set_ylabel("Δ row (patches)")
                title += " patches"
                figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=8)
            ax.tick_params(labelsize=7)
        ax = axes[row, -1]
        gates = data["gates"]
        if not first or gates is None:
            ax.axis("off")
            continue
        families = list(gates)
        width = 0.8 / len(families)
        layers = np.arange(1, len(gates[families[0]]) + 1)
        for f, family in enumerate(families):
            ax.bar(layers + (f - (len(families) - 1) / 2) * width, gates[family], width, label=family)
        ax.set_xticks(layers)
        ax.set_xlabel("layer")
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean gate σ(W_g u)")
        ax.set_title(f"{name} · gates per family", fontsize=8)
        ax.legend(fontsize=7)
        ax.tick_params(labelsize=7)
    figure.suptitle(
        "ITNet spectral kernels k(δ) (mean |k| over channels, max = 1) and gates: narrow = conv-like, "
        "broad = global/attention-like, one-sided = recurrence-like",
        fontsize=9,
    )
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return drawn


def describe(drawn: dict) -> list[str]:
    """One console line per model and grid kind: the reach of each layer's kernel and the mean gates."""
    lines = []
    for name, data in drawn.items():
        for kind, reaches in data["reach"].items():
            unit = "tokens" if kind == "text" else "patches"
            text = ", ".join(f"L{i + 1} {r:.1f}" for i, r in enumerate(reaches))
            if kind == "text" and data["past_share"]:
                text += " (past share " + ", ".join(f"{s:.2f}" for s in data["past_share"]) + ")"
            lines.append(f"{name} {kind}: kernel reach in {unit}: {text}")
        if data["gates"] is not None:
            gates = "; ".join(
                f"{family} " + "/".join(f"{v:.2f}" for v in values) for family, values in data["gates"].items()
            )
            lines.append(f"{name}: mean gates per layer: {gates}")
    return lines


__all__ = ["CAPTION", "describe", "gate_values", "grids_of", "plot_kernels", "spectral_kernels"]
