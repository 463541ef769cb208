#!/usr/bin/python3
"""Writes a random LoRA adapter for a model directory, named and laid out as PEFT's
save_pretrained writes one, for tests of rlft's adapter loading (and reference.py --adapter):

  peft_fixture.py --base DIR --out ADAPTER_DIR --targets q_proj,v_proj,gate_proj \\
                  [--r 4] [--alpha 8] [--rslora] [--seed 0] [--modules-to-save embed_tokens]

ADAPTER_DIR/adapter_config.json    LoraConfig's fields (peft_type "LORA", r, lora_alpha, ...;
                                   base_model_name_or_path = --base as given)
ADAPTER_DIR/adapter_model.safetensors
    base_model.model.<module path>.lora_A.weight  [r, in]   F32
    base_model.model.<module path>.lora_B.weight  [out, r]  F32
    base_model.model.<module path>.<param>        (modules_to_save: the base's value + noise)

Targets are matched as PEFT matches a list of names: a module path equal to the name or
ending in "." + name ("all-linear": every candidate, written as their leaf names as PEFT
expands it). Candidates are the Linear weights of the trunk found in the base's safetensors:
2-D `.weight` tensors, leaving out lm_head, embed_tokens, norms, the MoE router `mlp.gate`
and the MTP layers model.layers.{i >= num_hidden_layers}. A target that matches no candidate
is an error. A and B are both random and non-zero (PEFT starts B at 0; a trained adapter
has moved it), so the adapter changes the logits.

--wrong-shape writes the first adapted module's lora_A (in the base's tensor order) one
column too wide, [r, in + 1], and prints its name, for the loaders' shape checks.

The safetensors file is written by hand (8-byte little-endian header length, JSON header
with dtype / shape / data_offsets and __metadata__ {"format": "pt"}, padded with spaces to
8 bytes, then the data); needs only numpy.
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

PREFIX = "base_model.model."

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def fail(msg):
    print(f"peft_fixture: {msg}", file=sys.stderr)
    sys.exit(2)


def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    header.pop("__metadata__", None)
    return header, 8 + n


def base_tensors(directory):
    """{name: (file, header entry, data start)} over the base's safetensors (single or sharded)."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            fail(f"{path}: no such file (the base model's weights)")
        header, start = read_header(path)
        for k, info in header.items():
            out[k] = (path, info, start)
    return out


def read_values(entry):
    path, info, start = entry
    if info["dtype"] not in _NP:
        fail(f"{path}: dtype {info['dtype']} of a modules_to_save tensor is not supported")
    begin, end = info["data_offsets"]
    with open(path, "rb") as f:
        f.seek(start + begin)
        raw = f.read(end - begin)
    a = np.frombuffer(raw, dtype=_NP[info["dtype"]]).reshape(info["shape"])
    if info["dtype"] == "BF16":
        a = (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def candidates(tensors, num_layers):
    """Module paths (weight name less ".weight") of the trunk's Linear layers, in natural order."""
    out = []
    for name in sorted(tensors, key=natural_key):
        info = tensors[name][1]
        if not name.endswith(".weight") or len(info["shape"]) != 2:
            continue
        path = name[: -len(".weight")]
        leaf = path.rsplit(".", 1)[-1]
        if path == "lm_head" or leaf == "lm_head" or leaf == "embed_tokens" or "norm" in leaf:
            continue
        if path.endswith("mlp.gate"):  # the MoE router
            continue
        if not path.startswith("model.layers.") or is_mtp(path, num_layers):  # not the trunk, or MTP
            continue
        out.append(path)
    return out


def is_mtp(name, num_layers):
    m = re.match(r"model\.layers\.(\d+)\.", name)
    return bool(m) and int(m.group(1)) >= num_layers


def names_module(path, name):
    return path == name or path.endswith("." + name)


def write_safetensors(path, tensors):
    """tensors: {name: float32 ndarray}; header keys and data in sorted name order."""
    header = {"__metadata__": {"format": "pt"}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def number(x):
    return int(x) if float(x).is_integer() else float(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="base model directory (config.json + safetensors)")
    ap.add_argument("--out", required=True, help="adapter directory to write (created)")
    ap.add_argument("--targets", required=True, help="target_modules, comma separated (or all-linear)")
    ap.add_argument("--r", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8.0)
    ap.add_argument("--dropout", type=float, default=0.05, help="lora_dropout (training only)")
    ap.add_argument("--rslora", action="store_true", help="use_rslora: scaling alpha / sqrt(r)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modules-to-save", default="", help="modules saved whole, comma separated")
    ap.add_argument("--wrong-shape", action="store_true", help="first lora_A one column too wide")
    a = ap.parse_args()
    if a.r <= 0:
        fail(f"--r {a.r}: must be > 0")

    with open(os.path.join(a.base, "config.json")) as f:
        cfg = json.load(f)
    tensors = base_tensors(a.base)
    cands = candidates(tensors, cfg["num_hidden_layers"])
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    if not targets:
        fail("--targets: name at least one module")
    chosen = set()
    for t in targets:
        hit = [p for p in cands if t == "all-linear" or names_module(p, t)]
        if not hit:
            leaves = sorted({p.rsplit(".", 1)[-1] for p in cands})
            fail(f"target {t!r} matches no Linear layer of {a.base}; its Linear layers: {', '.join(leaves)}")
        chosen.update(hit)
    if "all-linear" in targets:
        targets = sorted({p.rsplit(".", 1)[-1] for p in chosen})
    adapted = [p for p in cands if p in chosen]

    rng = np.random.default_rng(a.seed)
    out = {}
    for i, path in enumerate(adapted):
        n_out, n_in = tensors[path + ".weight"][1]["shape"]
        a_in = n_in + 1 if (a.wrong_shape and i == 0) else n_in
        bound = 1.0 / np.sqrt(n_in)  # PEFT's kaiming-uniform(a=sqrt(5)) range for A
        A = rng.uniform(-bound, bound, size=(a.r, a_in))
        B = rng.normal(0.0, 0.05, size=(n_out, a.r))  # "trained": non-zero
        out[f"{PREFIX}{path}.lora_A.weight"] = A.astype(np.float32)
        out[f"{PREFIX}{path}.lora_B.weight"] = B.astype(np.float32)
        if a.wrong_shape and i == 0:
            print(f"wrong shape: {PREFIX}{path}.lora_A.weight [{a.r}, {a_in}] (the base's {path} needs [{a.r}, {n_in}])")

    saved_names = [m.strip() for m in a.modules_to_save.split(",") if m.strip()]
    for m in saved_names:
        params = [k for k in sorted(tensors, key=natural_key)
                  if "." in k and names_module(k.rsplit(".", 1)[0], m) and not is_mtp(k, cfg["num_hidden_layers"])]
        if not params:
            fail(f"modules_to_save {m!r}: no module of {a.base} is named so")
        for k in params:
            base = read_values(tensors[k])
            out[PREFIX + k] = (base + rng.normal(0.0, 0.02, size=base.shape)).astype(np.float32)

    config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": a.base,
        "bias": "none",
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": number(a.alpha),
        "lora_bias": False,
        "lora_dropout": a.dropout,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": saved_names or None,
        "peft_type": "LORA",
        "r": a.r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": a.rslora,
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(a.out, "adapter_model.safetensors"), out)
    n_saved = len(out) - 2 * len(adapted)
    print(f"wrote {a.out}: {len(adapted)} adapted layers, {n_saved} modules_to_save tensors, "
          f"r = {a.r}, lora_alpha = {number(a.alpha)}{' (rsLoRA)' if a.rslora else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
