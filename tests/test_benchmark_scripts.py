"""`benchmarks/peers.py` and `benchmarks/generation_speed.py` run end to end at tiny sizes and write a row per
model and length (their figures are not checked: speed belongs to the benchmarks, not to tests); `step_speed`'s
FLOP count is exact on a layer whose count is known."""

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *arguments: str) -> None:
    subprocess.run([sys.executable, f"benchmarks/{script}", *arguments], cwd=ROOT, check=True, timeout=600)


def test_peers_writes_a_row_per_model_and_length(tmp_path):
    models = ["itnet", "itnet-unified", "bert", "fnet", "mamba2"]
    run("peers.py", "--lengths", "16", "33", "--width", "16", "--heads", "2", "--batch", "2", "--repeats", "1",
        "--models", *models, "--output", str(tmp_path / "peers"))  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "peers.csv").read_text().splitlines()))
    assert {(row["model"], int(row["length"])) for row in rows} == {(m, n) for m in models for n in (16, 33)}
    assert (tmp_path / "peers.png").stat().st_size > 0


def test_generation_speed_writes_a_row_per_model_and_context(tmp_path):
    models = ["itnet-recurrent", "itnet-spectral+low_rank", "gpt2"]  # a process per model and context: three
    run("generation_speed.py", "--contexts", "8", "17", "--new_tokens", "2", "--width", "16", "--layers", "1",
        "--heads", "2", "--vocab", "64", "--repeats", "1", "--models", *models, "--output", str(tmp_path / "gen"))  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "gen.csv").read_text().splitlines()))
    assert {(row["model"], int(row["context"])) for row in rows} == {(m, n) for m in models for n in (8, 17)}
    assert all(float(row["per_token_ms"]) >= 0 and float(row["prefill_s"]) > 0 for row in rows)
    assert (tmp_path / "gen.png").stat().st_size > 0


def test_step_speed_counts_a_training_steps_matrix_arithmetic():
    """`step_speed.step_gflop`: one linear layer's training step is its forward product and the two of its backward
    (input and weight gradients), `3 · 2·B·I·O` FLOPs."""
    import types

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from step_speed import step_gflop

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(12, 5, bias=False)

        def forward(self, inputs):
            return types.SimpleNamespace(loss=self.layer(inputs).square().mean())

    batch = {"inputs": torch.randn(7, 12, requires_grad=True)}
    assert step_gflop(Linear(), batch) * 1e9 == 3 * 2 * 7 * 12 * 5


def test_step_speed_counts_an_lstms_matrix_arithmetic():
    """An LSTM's fused CPU kernel escapes `FlopCounterMode`; `step_gflop` adds `3 · 2 · 4H(I + H)` per token, layer and
    direction (layer 2 of a bidirectional LSTM reads `2H` inputs)."""
    import types

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from step_speed import step_gflop

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(6, 4, num_layers=2, batch_first=True, bidirectional=True)

        def forward(self, inputs):
            return types.SimpleNamespace(loss=self.lstm(inputs)[0].square().mean())

    tokens = 3 * 5
    expected = 3 * 2 * 2 * 4 * 4 * ((6 + 4) + (8 + 4)) * tokens
    assert step_gflop(Model(), {"inputs": torch.randn(3, 5, 6)}) * 1e9 == expected


def test_step_speed_counts_sdpas_cpu_kernel():
    """SDPA's fused CPU kernel is counted as its GPU kernels are: `4·B·H·N·M·D` forward, 2.5x that backward."""
    import types

    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from step_speed import step_gflop

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, query, key, value):
            out = torch.nn.functional.scaled_dot_product_attention(query * self.scale, key, value)
            return types.SimpleNamespace(loss=out.square().mean())

    shape = (2, 3, 16, 8)
    batch = {name: torch.randn(shape, requires_grad=True) for name in ("query", "key", "value")}
    assert step_gflop(Attention(), batch) * 1e9 == 3.5 * 4 * 2 * 3 * 16 * 16 * 8
