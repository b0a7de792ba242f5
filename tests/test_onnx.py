"""ONNX export of the image and text classifiers with the dynamo exporter (`torch.onnx.export(..., dynamo=True)`),
run with onnxruntime: the outputs match PyTorch's (atol 1e-5) at several batch sizes (the batch axis is dynamic).

What exports (opset 20): every kernel family but `ssm`. The `spectral` family's `torch.fft.rfftn` / `irfftn`
become ONNX `DFT` nodes (real-valued, the complex spectrum as a trailing axis of 2), so no real-valued DFT rewrite
is needed. The `ssm` family computes its kernel with complex parameters (`torch.complex`, complex `exp`/`expm1`):
the converter has no complex lowering for them ("No ONNX function found for aten.expm1 ... No decompositions
registered for the complex-valued input"). The sequence length and image size are fixed at export (the FFT sizes
and grid shapes are Python integers computed from the input shape); the batch size is dynamic. The model's
data-dependent input checks (token ids in range, 0/1 mask values) are skipped while exporting
(`torch.compiler.is_compiling()`), so the text classifier exports too; validate inputs before the ONNX session.
"""

import numpy as np
import pytest
import torch
from itnet_testing import tiny_builders

from modeling_itnet import ITNetForImageClassification, ITNetForSequenceClassification

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

ATOL = 1e-5
tiny_config, build = tiny_builders()


class Logits(torch.nn.Module):
    """A head called with positional tensors (the ONNX graph's inputs, in order), returning only the logits."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.names, inputs))).logits


def export_and_compare(model, make_inputs, path, batch_sizes=(2, 1, 5)):
    """Export `model` at batch 2 with a dynamic batch axis, then compare onnxruntime with PyTorch at every batch
    size; returns the ONNX model."""
    example = make_inputs(batch_sizes[0])
    names = list(example)
    wrapper = Logits(model, names).eval()
    batch = torch.export.Dim("batch", max=1024)
    program = torch.onnx.export(
        wrapper,
        tuple(example.values()),
        dynamo=True,
        input_names=names,
        output_names=["logits"],
        dynamic_shapes=(tuple({0: batch} for _ in names),),
        verbose=False,
    )
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in batch_sizes:
        inputs = make_inputs(size)
        (logits,) = session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})
        with torch.no_grad():
            expected = wrapper(*inputs.values()).numpy()
        assert logits.shape == expected.shape == (size, model.config.num_labels)
        np.testing.assert_allclose(logits, expected, atol=ATOL, rtol=1e-4)
    graph = onnx.load(str(path))
    assert next(d.dim_param for d in graph.graph.input[0].type.tensor_type.shape.dim), "batch axis is not dynamic"
    return graph


@pytest.mark.parametrize(
    "families", [["spectral", "low_rank"], ["local", "softmax", "mlp", "recurrent"]], ids=lambda f: "+".join(f)
)
def test_image_classifier_exports_to_onnx(tmp_path, families, monkeypatch):
    # the FFT line (ONNX DFT), which the tiny 4 x 4 grid would otherwise skip for the kernel matrix
    monkeypatch.setattr("modeling_itnet.kernels_itnet._dense_is_cheaper", lambda grid: False)
    model = build(ITNetForImageClassification, kernel_families=families)
    generator = torch.Generator().manual_seed(0)

    def make_inputs(size):
        return {"pixel_values": torch.randn(size, 3, 16, 16, generator=generator)}

    graph = export_and_compare(model, make_inputs, tmp_path / "itnet.onnx")
    ops = {node.op_type for node in graph.graph.node}
    if "spectral" in families:  # the FFT path went through as ONNX DFT
        assert "DFT" in ops, sorted(ops)


def test_text_classifier_exports_to_onnx(tmp_path):
    model = build(ITNetForSequenceClassification)
    generator = torch.Generator().manual_seed(0)

    def make_inputs(size):
        input_ids = torch.randint(0, tiny_config().vocab_size, (size, 8), generator=generator)
        attention_mask = torch.ones(size, 8, dtype=torch.long)
        attention_mask[0, 5:] = 0  # padding: the mask is a graph input, not folded into a constant
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    export_and_compare(model, make_inputs, tmp_path / "itnet.onnx")
