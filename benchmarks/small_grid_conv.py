"""The stationary transform at the comparison's small grids: `spectral_conv`'s zero-padded FFT line against the same
transform as a dense Toeplitz product (`y_i = Σ_j k(x_i − x_j) v_j` with the `[D, N, N]` kernel matrix gathered
from the offset table), forward + backward, one thread, best of 5; their largest difference; and the path
`spectral_conv` takes there (`_dense_is_cheaper`, the cost model these timings check).

    python benchmarks/small_grid_conv.py > benchmarks/results/small_grid_conv.log
"""

import time

import torch

from modeling_itnet import kernels_itnet
from modeling_itnet.kernels_itnet import _dense_is_cheaper, _pair_index, spectral_conv

SHAPES = [
    (64, (7, 7), 64),
    (32, (8, 8), 64),
    (32, (16, 16), 64),
    (32, (40,), 64),
    (32, (52,), 64),
    (32, (64,), 64),
    (32, (256,), 64),
]  # (batch, grid, channels); fmt: skip


def fft_conv(values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """`spectral_conv` held on its FFT line whatever the grid."""
    dispatch, kernels_itnet._dense_is_cheaper = kernels_itnet._dense_is_cheaper, lambda grid: False
    try:
        return spectral_conv(values, kernel)
    finally:
        kernels_itnet._dense_is_cheaper = dispatch


def dense_conv(values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """`[B, *grid, D]`, `[*(2g − 1), D]` → `[B, *grid, D]` through the `[D, N, N]` kernel matrix."""
    grid = tuple(values.shape[1:-1])
    matrix = kernel.movedim(-1, 0)[(slice(None), *_pair_index(grid, grid, kernel.device))]
    flat = values.reshape(values.shape[0], -1, values.shape[-1])
    return torch.einsum("dij,bjd->bid", matrix, flat).reshape(values.shape)


def best_ms(function, values, kernel) -> float:
    times = []
    for repeat in range(7):
        start = time.perf_counter()
        function(values, kernel).square().sum().backward()
        if repeat >= 2:
            times.append(time.perf_counter() - start)
    return min(times) * 1e3


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("batch grid channels | fft ms | dense ms | dense/fft | max |difference| | spectral_conv takes")
    for batch, grid, channels in SHAPES:
        values = torch.randn(batch, *grid, channels, requires_grad=True)
        kernel = torch.randn(*[2 * g - 1 for g in grid], channels, requires_grad=True)
        fft, dense = best_ms(fft_conv, values, kernel), best_ms(dense_conv, values, kernel)
        difference = (fft_conv(values, kernel) - dense_conv(values, kernel)).abs().max().item()
        path = "dense" if _dense_is_cheaper(grid) else "fft"
        print(f"{batch} {grid} {channels} | {fft:.2f} | {dense:.2f} | {dense / fft:.2f} | {difference:.1e} | {path}",
              flush=True)  # fmt: skip
