#!/usr/bin/python3
"""Writes the TorchScript fixtures of tests/torch (run with /usr/bin/python3, which has torch).

For each model it saves `<name>.pt` (TorchScript) and `<name>.layers.json`: the layer list of the
*eager* model as PyTorch's named_modules() gives it (root excluded, type = the Python class name),
the ground truth the C++ view of the .pt must reproduce. It also writes `state_dict.pth`, a
torch.save()d state dict: a real PyTorch file that is not TorchScript.

    /usr/bin/python3 tests/torch/make_fixtures.py tests/torch/fixtures
"""
import json
import math
import os
import sys

import torch
from torch import nn

torch.manual_seed(0)
HIDDEN, HEADS, VOCAB, FFN = 8, 2, 16, 12


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class RotaryEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, seq_len: int):
        t = torch.arange(seq_len, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class LlamaAttention(nn.Module):
    """The HF LLaMA attention block, scripted: q/k/v/o projections, rotary embedding, causal softmax."""

    def __init__(self):
        super().__init__()
        self.num_heads = HEADS
        self.hidden_size = HIDDEN
        self.head_dim = HIDDEN // HEADS
        self.q_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.k_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.v_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.o_proj = nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.rotary_emb = RotaryEmbedding(self.head_dim)

    def forward(self, hidden_states):
        bsz, q_len, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(q_len)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        mask = torch.full((q_len, q_len), float("-inf")).triu(1)
        probs = torch.softmax(scores + mask, dim=-1)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(bsz, q_len, self.hidden_size)
        return self.o_proj(out)


class MyLinear(nn.Linear):
    """A Linear subclass with another name: not eligible (the reference checks the exact type)."""


class LlamaMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj = nn.Linear(HIDDEN, FFN, bias=False)
        self.up_proj = MyLinear(HIDDEN, FFN, bias=False)
        self.down_proj = nn.Linear(FFN, HIDDEN, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = LlamaAttention()
        self.mlp = LlamaMLP()
        self.input_layernorm = RMSNorm(HIDDEN)
        self.post_attention_layernorm = RMSNorm(HIDDEN)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, layers: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList([LlamaDecoderLayer() for _ in range(layers)])
        self.norm = RMSNorm(HIDDEN)

    def forward(self, ids):
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, layers: int = 2):
        super().__init__()
        self.model = LlamaModel(layers)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, ids):
        return self.lm_head(self.model(ids))


class Containers(nn.Module):
    """Nested Sequential / ModuleDict / ModuleList, and a Linear subclass."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleDict({
            "encoder": nn.Sequential(nn.Linear(HIDDEN, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, HIDDEN)),
            "decoder": nn.ModuleList([nn.Linear(HIDDEN, HIDDEN), MyLinear(HIDDEN, HIDDEN)]),
        })
        self.head = nn.Sequential(nn.LayerNorm(HIDDEN), nn.Dropout(0.0), nn.Linear(HIDDEN, 4))

    def forward(self, x):
        x = self.blocks["encoder"](x)
        for layer in self.blocks["decoder"]:
            x = layer(x)
        return self.head(x)


class TracedMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(HIDDEN, FFN)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(FFN, HIDDEN)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def layer_list(model):
    out = []
    for name, module in model.named_modules():
        if name == "":
            continue
        entry = {"name": name, "type": type(module).__name__}
        if isinstance(module, nn.Linear):
            entry["in"], entry["out"] = module.in_features, module.out_features
        out.append(entry)
    return out


def write(folder, name, eager, scripted):
    scripted.save(os.path.join(folder, name + ".pt"))
    with open(os.path.join(folder, name + ".layers.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join("  " + json.dumps(e) for e in layer_list(eager)) + "\n]\n")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures")
    os.makedirs(folder, exist_ok=True)
    ids = torch.randint(0, VOCAB, (1, 5))

    llama = LlamaForCausalLM(2).eval()
    scripted = torch.jit.script(llama)
    assert torch.allclose(scripted(ids), llama(ids))
    write(folder, "llama_scripted", llama, scripted)

    attention = LlamaAttention().eval()
    write(folder, "hf_attention_scripted", attention, torch.jit.script(attention))

    containers = Containers().eval()
    write(folder, "containers_scripted", containers, torch.jit.script(containers))

    mlp = TracedMLP().eval()
    write(folder, "mlp_traced", mlp, torch.jit.trace(mlp, torch.zeros(1, HIDDEN)))

    torch.save(mlp.state_dict(), os.path.join(folder, "state_dict.pth"))


if __name__ == "__main__":
    main()
