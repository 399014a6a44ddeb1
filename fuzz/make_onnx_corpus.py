#!/usr/bin/env python3
"""Writes fuzz/corpus/onnx/: seeds for onnx_fuzzer (fuzz/README.md).

The small ONNX test fixtures (tests/fixtures/data/onnx, good and bad), and one-operator models from the ONNX backend
node tests (Debian's libonnx-testdata) with every input but the first turned into an initializer holding the test's
value, so that the importer gets past Load and the fuzzer mutates real operators and attributes. Needs Debian's
python3-onnx. Run from the repository root: /usr/bin/python3 fuzz/make_onnx_corpus.py
"""
import os
import shutil

import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus", "onnx")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "data", "onnx")
NODE = "/usr/share/libonnx-testdata/data/node"
FIXTURE_NAMES = ["classifier", "linear_ops", "ops_1d", "ops_2d", "ops_zoo", "unet_bn", "unet_variant",
                 "unet_padded.dynamic", "unsupported_op", "bad.nonzero", "bad.crop_and_resize", "bad.truncated",
                 "bad.text"]
NODE_TESTS = ["conv_with_autopad_same", "conv_with_strides_and_asymmetric_padding", "convtranspose_pads",
              "convtranspose_output_shape", "maxpool_2d_same_lower", "averagepool_2d_pads",
              "resize_upsample_scales_cubic", "resize_downsample_sizes_nearest", "slice_neg_steps",
              "reshape_negative_dim", "gemm_all_attributes", "batchnorm_example", "softmax_axis_1",
              "concat_3d_axis_1", "unsqueeze_unsorted_axes", "flatten_axis2", "prelu_broadcast",
              "cast_FLOAT_to_FLOAT16", "resize_upsample_sizes_nearest_floor_align_corners", "edge_pad"]


def single_input(test):
    model = onnx.load(os.path.join(NODE, "test_" + test, "model.onnx"))
    inputs = list(model.graph.input)
    for k, value in enumerate(inputs[1:], start=1):
        tensor = onnx.load_tensor(os.path.join(NODE, "test_" + test, "test_data_set_0", f"input_{k}.pb"))
        tensor.name = value.name
        model.graph.initializer.append(tensor)
        model.graph.input.remove(value)
    return model


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in FIXTURE_NAMES:
        shutil.copy(os.path.join(FIXTURES, name + ".onnx"), os.path.join(OUT, "fixture_" + name + ".onnx"))
    for test in NODE_TESTS:
        onnx.save(single_input(test), os.path.join(OUT, "node_" + test + ".onnx"))


if __name__ == "__main__":
    main()
