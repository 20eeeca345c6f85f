#!/usr/bin/python3
"""Writes the ONNX fixtures of tests/onnx (run with Debian's /usr/bin/python3: python3-onnx, python3-torch).

    /usr/bin/python3 tests/onnx/make_fixtures.py [OUTDIR]   (default: tests/onnx/fixtures)

Tiny graphs are made with onnx.helper; attention.onnx is exported by torch.onnx.export from a small
two-layer attention model. The outputs are committed; rerun only to change them.
"""
import os
import sys

import onnx
from onnx import TensorProto, helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def model_of(nodes, name, inputs=("x",), outputs=("y",), opsets=(("", 13),)):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, [2, 4]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2, 4]) for o in outputs],
    )
    model = helper.make_model(graph, producer_name="kvcali-fixtures",
                              opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    return model


def save(model, file_name, check=True):
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(OUT, file_name))


def tiny():
    # Named nodes of every kind, in graph order; Gemm and MatMul are eligible.
    save(model_of([
        helper.make_node("MatMul", ["x", "w0"], ["a"], name="matmul_a"),
        helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
        helper.make_node("Gemm", ["b", "w1", "c1"], ["c"], name="gemm_c"),
        helper.make_node("Add", ["c", "x"], ["y"], name="add_y"),
    ], "tiny", inputs=("x", "w0", "w1", "c1")), "tiny.onnx")


def unnamed():
    # Nodes 0, 2, 3 and 5 have no name. Node 3 would be MatMul_3, but a named node holds it, so it
    # becomes MatMul_3_1; node 5 would be Relu_5, held too, and Relu_5_1 as well: Relu_5_2.
    save(model_of([
        helper.make_node("MatMul", ["x", "w"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"], name="MatMul_3"),
        helper.make_node("Gemm", ["b", "w", "c0"], ["c"]),
        helper.make_node("MatMul", ["c", "w"], ["d"]),
        helper.make_node("Relu", ["d"], ["e"], name="Relu_5"),
        helper.make_node("Relu", ["e"], ["f"]),
        helper.make_node("Add", ["f", "x"], ["y"], name="Relu_5_1"),
    ], "unnamed", inputs=("x", "w", "c0")), "unnamed.onnx")


def paths():
    # PyTorch-style names. layers.0.attn.k_proj and layers.0.mlp name one eligible node each;
    # layers.0.attn carries two MatMuls (ambiguous); the Softmax and Add carry paths but are not
    # eligible; "/top/Gemm_x" is no export name (the op part is not Gemm[_digits]).
    save(model_of([
        helper.make_node("MatMul", ["x", "w"], ["k"], name="/layers.0/attn/k_proj/MatMul"),
        helper.make_node("Gemm", ["x", "w", "c0"], ["v"], name="/layers.0/attn/v_proj/Gemm"),
        helper.make_node("MatMul", ["x", "k"], ["s"], name="/layers.0/attn/MatMul"),
        helper.make_node("Softmax", ["s"], ["p"], name="/layers.0/attn/Softmax"),
        helper.make_node("MatMul", ["p", "v"], ["o"], name="/layers.0/attn/MatMul_1"),
        helper.make_node("Add", ["o", "x"], ["r"], name="/layers.0/mlp/Add"),
        helper.make_node("MatMul", ["r", "w"], ["m"], name="/layers.0/mlp/MatMul"),
        helper.make_node("Gemm", ["m", "w", "c0"], ["y"], name="/top/Gemm_x"),
    ], "paths", inputs=("x", "w", "c0")), "paths.onnx")


def subgraph():
    # An If whose branches hold a MatMul (named) and a Gemm (unnamed), and a Loop whose body holds
    # only a Relu: only the If earns a warning. The main graph has one MatMul.
    then_graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"], name="then_matmul")], "then",
        [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 4])])
    else_graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "c0"], ["e"])], "else",
        [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 4])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_cond"),
         helper.make_node("Relu", ["v_in"], ["v_out"], name="body_relu")], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [2, 4])])
    save(model_of([
        helper.make_node("MatMul", ["x", "w"], ["a"], name="main_matmul"),
        helper.make_node("If", ["cond"], ["b"], name="branch", then_branch=then_graph, else_branch=else_graph),
        helper.make_node("Loop", ["n", "cond", "b"], ["y"], name="loop", body=body),
    ], "subgraph", inputs=("x", "w", "c0", "cond", "n")), "subgraph.onnx", check=False)


def duplicate():
    # Two nodes named "mm": the ONNX checker would refuse it, kvcali reports invalid_model.
    save(model_of([
        helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
        helper.make_node("MatMul", ["a", "w"], ["y"], name="mm"),
    ], "duplicate", inputs=("x", "w")), "duplicate.onnx", check=False)


def custom_domain():
    # A MatMul of another domain is not ONNX's MatMul: its type is "com.example.MatMul".
    save(model_of([
        helper.make_node("MatMul", ["x", "w"], ["a"], name="onnx_matmul"),
        helper.make_node("MatMul", ["a", "w"], ["y"], name="custom_matmul", domain="com.example"),
    ], "custom", inputs=("x", "w"), opsets=(("", 13), ("com.example", 1))), "custom_domain.onnx", check=False)


def attention():
    import torch
    from torch import nn

    class SelfAttention(nn.Module):
        def __init__(self, dim=16, heads=2):
            super().__init__()
            self.heads = heads
            self.q_proj = nn.Linear(dim, dim)
            self.k_proj = nn.Linear(dim, dim)
            self.v_proj = nn.Linear(dim, dim)
            self.o_proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, t, d = x.shape
            hd = d // self.heads

            def split(z):
                return z.view(b, t, self.heads, hd).transpose(1, 2)

            q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
            scores = torch.matmul(q, k.transpose(-2, -1)) / (hd ** 0.5)
            out = torch.matmul(torch.softmax(scores, dim=-1), v)
            return self.o_proj(out.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = SelfAttention()

        def forward(self, x):
            return x + self.self_attn(x)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([Block(), Block()])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    torch.manual_seed(0)
    model = Model().eval()
    path = os.path.join(OUT, "attention.onnx")
    torch.onnx.export(model, (torch.randn(1, 5, 16),), path, input_names=["x"], output_names=["y"], opset_version=13)
    onnx.checker.check_model(onnx.load(path))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny()
    unnamed()
    paths()
    subgraph()
    duplicate()
    custom_domain()
    attention()
    for name in sorted(os.listdir(OUT)):
        m = onnx.load(os.path.join(OUT, name))
        print(name, [(n.name, n.op_type) for n in m.graph.node if n.op_type in ("MatMul", "Gemm")])
