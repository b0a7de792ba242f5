"""ITNet model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


KERNEL_FAMILIES = ("spectral", "local", "low_rank", "softmax", "recurrent", "ssm", "mlp")
"""Kernel families an `ITNetConfig` may list in `kernel_families`."""

HIDDEN_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu", "swish", "tanh")


@strict
class ITNetConfig(PreTrainedConfig):
    r"""
    Configuration of an ITNet model: a stack of Integral Transform Blocks whose token mixer is

        y_i = Σ_j w_j · K(x_i, x_j, u_i, u_j) · v_j

    with the kernel `K` built from the families listed in `kernel_families` and mixed by learned gates.

    Args:
        vocab_size (`int`, defaults to 8192): size of the token vocabulary (text inputs).
        hidden_size (`int`, defaults to 256): width `D` of the residual stream.
        num_hidden_layers (`int`, defaults to 4): number of Integral Transform Blocks.
        num_attention_heads (`int`, defaults to 4): heads of the low-rank content kernel; must divide
            `hidden_size`.
        intermediate_size (`int`, defaults to 1024): width of each block's feed-forward network.
        hidden_act (`str`, defaults to `"gelu"`): activation of the feed-forward network and kernel MLPs.
        hidden_dropout_prob (`float`, defaults to 0.0): dropout on each residual branch.
        max_position_embeddings (`int`, defaults to 2048): the longest text sequence the model accepts. It also
            sets the length scale of the 1-D spectral kernel: offsets are measured in units of
            `max_position_embeddings` before their Fourier features are taken, so a kernel learned at one
            length is the same function of the offset at any other.
        image_size (`int`, defaults to 32): side of the square images the model is configured for. Offsets on the
            2-D patch grid are measured in units of `image_size // patch_size` patches, so other image sizes
            (any multiple of `patch_size`) reuse the same continuous kernel.
        patch_size (`int`, defaults to 4): side of the square image patches.
        num_channels (`int`, defaults to 3): channels of `pixel_values`.
        layer_norm_eps (`float`, defaults to 1e-5): epsilon of the layer norms.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal weight initialisation.
        kernel_families (`list[str]`, defaults to `["spectral", "low_rank"]`): kernel families mixed in every
            block, from `"spectral"` (stationary `k(x_i - x_j)` from an MLP, global, by FFT), `"local"` (stationary
            kernel on a `local_window` window, one value per offset: a depthwise convolution), `"low_rank"`
            (normalised content kernel `φ(q_i)·ψ(k_j)`, linear in N), `"softmax"` (multi-head attention, fused
            SDPA), `"recurrent"` (selective state space: causal low-rank kernel with data-dependent decay),
            `"ssm"` (S4D: stationary causal kernel `Re(C Aᵗ B)`, by FFT) and `"mlp"` (the unconstrained kernel
            `MLP(γ(x_i − x_j), a(u_i), b(u_j))`, tiled or Monte Carlo). See `layers_itnet.ITNetMixer`.
        is_causal (`bool`, defaults to `False`): restrict every kernel to `K(x_i, x_j) = 0` for `j > i`
            (raster order on the 2-D grid).
        spectral_num_frequencies (`int`, defaults to 16): Fourier frequencies per offset coordinate fed to the
            spectral kernel MLP.
        spectral_mlp_size (`int`, defaults to 64): hidden width of the spectral kernel MLP.
        local_window (`int`, defaults to 3): side `W` of the `"local"` family's window of offsets (`W` taps on a
            sequence, `W x W` on the patch grid).
        softmax_relative_bias (`bool`, defaults to `True`): add a learned relative-position bias `b(x_i − x_j)`
            (per head) to the `"softmax"` family's scores.
        state_size (`int`, defaults to 16): state size of the `"recurrent"` family (per head) and of the `"ssm"`
            family (per channel, `state_size // 2` complex modes).
        recurrent_discretization (`str`, defaults to `"euler"`): input coefficient of the `"recurrent"` family,
            `"euler"` (`Δ·B`, as Mamba) or `"zoh"` (`(1 − e^{ΔA})/(−A)·B`, exact zero-order hold).
        mlp_kernel_samples (`int`, defaults to 0): 0 evaluates the `"mlp"` family exactly by tiled kernel fusion;
            `M > 0` estimates it by importance-weighted Monte Carlo with `M` keys per query.
        mlp_kernel_tile_size (`int`, defaults to 128): tile side of the tiled `"mlp"` family.
        kernel_spectral_norm (`bool`, defaults to `False`): spectral normalisation of the kernel MLPs (the
            spectral, softmax-bias and mlp kernels); see the README on when to use it.
        tie_word_embeddings (`bool`, defaults to `True`): share one matrix between the token embedding and the
            language-modelling head's output projection (`ITNetForCausalLM`); `False` gives the head its own.
        max_num_images (`int`, defaults to 2): the most images one image+text input may hold (VQA: 1, NLVR2: 2).
            Models that read text and images together learn one modality embedding for the text and one per image
            slot, added to the tokens of the joint sequence.
        point_feature_size (`int`, defaults to 0): per-point features (e.g. normals, colours) that point-cloud
            models take beside the `[B, N, 3]` coordinates, as `point_features` `[B, N, point_feature_size]`.

    Example:

    ```python
    >>> from modeling_itnet import ITNetConfig, ITNetModel
    >>> model = ITNetModel(ITNetConfig(hidden_size=64, num_hidden_layers=2))
    ```
    """

    model_type = "itnet"

    vocab_size: int = 8192
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    max_position_embeddings: int = 2048
    image_size: int = 32
    patch_size: int = 4
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    kernel_families: list[str] | tuple[str, ...] = ("spectral", "low_rank")
    is_causal: bool = False
    spectral_num_frequencies: int = 16
    spectral_mlp_size: int = 64
    local_window: int = 3
    softmax_relative_bias: bool = True
    state_size: int = 16
    recurrent_discretization: str = "euler"
    mlp_kernel_samples: int = 0
    mlp_kernel_tile_size: int = 128
    kernel_spectral_norm: bool = False
    tie_word_embeddings: bool = True
    max_num_images: int = 2
    point_feature_size: int = 0

    def __post_init__(self, **kwargs):
        self.kernel_families = list(self.kernel_families)
        super().__post_init__(**kwargs)
        # Raise the plain ValueError here; `@strict` re-runs the validator and would wrap it.
        self.validate_architecture()

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """`PreTrainedConfig.from_dict`; an invalid configuration (as read from a `config.json`) raises the
        `ValueError` of `validate_architecture`, naming the field and, when known, the checkpoint it came from."""
        try:
            return super().from_dict(config_dict, **kwargs)
        except ValueError as error:
            source = kwargs.get("name_or_path") or config_dict.get("_name_or_path") or config_dict.get("name_or_path")
            where = f"{source}/config.json" if source else "config.json (or config dict)"
            raise ValueError(f"Invalid ITNet configuration in {where}: {error}") from error

    def validate_architecture(self):
        """Raise a `ValueError` naming the field when the configuration cannot describe a model."""
        positive = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "image_size",
            "patch_size",
            "num_channels",
            "spectral_num_frequencies",
            "spectral_mlp_size",
            "local_window",
            "state_size",
            "mlp_kernel_tile_size",
            "max_num_images",
        )
        for name in positive:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        for name in ("layer_norm_eps", "initializer_range"):
            if getattr(self, name) <= 0:
                raise ValueError(f"`{name}` must be positive, got {getattr(self, name)}.")
        if self.point_feature_size < 0:
            raise ValueError(f"`point_feature_size` must be >= 0 (0: coordinates only), got {self.point_feature_size}.")
        if self.mlp_kernel_samples < 0:
            raise ValueError(f"`mlp_kernel_samples` must be >= 0 (0: exact tiled evaluation), got {self.mlp_kernel_samples}.")
        if self.recurrent_discretization not in ("euler", "zoh"):
            raise ValueError(f"`recurrent_discretization` must be 'euler' or 'zoh', got {self.recurrent_discretization!r}.")
        if not 0.0 <= self.hidden_dropout_prob < 1.0:
            raise ValueError(f"`hidden_dropout_prob` must be in [0, 1), got {self.hidden_dropout_prob}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"`image_size` ({self.image_size}) must be divisible by `patch_size` ({self.patch_size})."
            )
        if self.hidden_act not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"`hidden_act` must be one of {HIDDEN_ACTIVATIONS}, got {self.hidden_act!r}.")
        if not self.kernel_families:
            raise ValueError(f"`kernel_families` must name at least one of {KERNEL_FAMILIES}, got [].")
        for family in self.kernel_families:
            if family not in KERNEL_FAMILIES:
                raise ValueError(f"`kernel_families` contains unknown family {family!r}; expected some of {KERNEL_FAMILIES}.")
        if len(set(self.kernel_families)) != len(self.kernel_families):
            raise ValueError(f"`kernel_families` lists a family twice: {self.kernel_families}.")

    @property
    def grid_size(self) -> int:
        """Patches per side of an `image_size` image."""
        return self.image_size // self.patch_size


__all__ = ["ITNetConfig", "KERNEL_FAMILIES"]
