#!/usr/bin/python3
"""An independent reference forward for the architectures rlft implements.

Written from the Hugging Face transformers modeling code (deepseek_v3, qwen2_moe, qwen3_moe,
qwen2, qwen3, llama) in plain PyTorch, computing in float64; it shares no code with rlft. It
reads a checkpoint directory (config.json + safetensors, single or sharded) with its own
safetensors parser, runs one token sequence, and either writes the logits [T, V] as .npy or
compares them with rlft's (`rlft model logits DIR --ids ... -o FILE.npy`):

  reference.py --model DIR --ids 1,2,3 --compare rlft.npy [more.npy ...] --tol 1e-4

Exit status: 0 when max|rlft - ref| / max|ref| <= tol (for every file compared), 1 when
larger, 2 on bad input.

--adapter DIR applies a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors,
as PEFT's save_pretrained writes them) to the weights first, as PEFT's merge does, in
float64: for each base_model.model.<path>.lora_A.weight A [r, in] / lora_B.weight B [out, r]
pair, <path>.weight += s * B @ A with s = lora_alpha / r (lora_alpha / sqrt(r) with
use_rslora); a modules_to_save tensor base_model.model.<module>.<param> replaces <module>.<param>
(with tie_word_embeddings a replaced embed_tokens is also the head, as in the merged
directory). Every tensor must find its place (its module named by target_modules or
modules_to_save, the base weight there, the shapes right) or the script exits with status 2.

Where rlft deliberately differs from transformers the reference follows rlft and says so:
  * group-limited routing masks non-kept groups with -inf (DeepSeek's reference code);
    transformers fills 0.0, which differs only when a biased score is negative;
  * sliding windows are decided by positions, and `num_sink_tokens` (an rlft key) keeps the
    first positions visible.
Needs python3-torch and python3-numpy (Debian), nothing else.
"""
import argparse
import json
import math
import os
import re
import struct
import sys

import numpy as np
import torch

DT = torch.float64

# ---------------------------------------------------------------------------------------------
# safetensors


_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def fail(msg):
    """Bad input: the message on stderr, exit status 2."""
    print(f"reference: {msg}", file=sys.stderr)
    sys.exit(2)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = bytearray(data[base + begin:base + end])
        dtype = _DTYPES[info["dtype"]]
        t = torch.frombuffer(buf, dtype=dtype) if len(buf) else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_checkpoint(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        tensors.update(read_safetensors(os.path.join(directory, name)))
    return {k: v.to(DT) if v.is_floating_point() else v for k, v in tensors.items()}


# ---------------------------------------------------------------------------------------------
# building blocks (transformers: *RMSNorm, *RotaryEmbedding, rotate_half, eager_attention_forward)


def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def linear(x, w, b=None):
    y = x @ w.t()
    return y + b if b is not None else y


def rope_parameters(cfg):
    """inv_freq and the cos/sin scale (modeling_rope_utils: default, linear, yarn, llama3)."""
    scaling = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = scaling.get("rope_theta", cfg.get("rope_theta", 10000.0))
    rtype = scaling.get("rope_type", scaling.get("type", "default"))
    dim = cfg["_rope_dim"]
    pos_freqs = theta ** (torch.arange(0, dim, 2, dtype=DT) / dim)
    inv = 1.0 / pos_freqs
    if rtype == "default":
        return inv, 1.0
    factor = float(scaling["factor"])
    if rtype == "linear":
        return inv / factor, 1.0
    if rtype == "yarn":
        orig = scaling.get("original_max_position_embeddings") or cfg["max_position_embeddings"]

        def get_mscale(s, m=1.0):
            return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0

        mscale, mscale_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
        if scaling.get("attention_factor") is not None:
            att = scaling["attention_factor"]
        elif mscale and mscale_all:
            att = get_mscale(factor, mscale) / get_mscale(factor, mscale_all)
        else:
            att = get_mscale(factor)
        beta_fast = scaling.get("beta_fast") or 32
        beta_slow = scaling.get("beta_slow") or 1

        def corr_dim(rot):
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(theta))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if scaling.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=DT) - low) / (high - low)).clamp(0, 1)
        extrapolation = 1 - ramp
        inv = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + inv * extrapolation
        return inv, att
    if rtype == "llama3":
        old = scaling["original_max_position_embeddings"]
        lf, hf = scaling["low_freq_factor"], scaling["high_freq_factor"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lf, inv / factor, inv)
        smooth = (old / wavelen - lf) / (hf - lf)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hf) & (wavelen <= old / lf)
        return torch.where(medium, smoothed, scaled), 1.0
    fail(f"rope type {rtype} not supported")


def cos_sin(cfg, positions):
    inv, att = rope_parameters(cfg)
    freqs = positions.to(DT)[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], -1)
    return emb.cos() * att, emb.sin() * att  # [T, dim]


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def apply_rope(x, cos, sin, interleave):
    if interleave:  # apply_rotary_pos_emb_interleave
        *lead, d = x.shape
        x = x.reshape(*lead, d // 2, 2).transpose(-1, -2).reshape(*lead, d)
    return x * cos + rotate_half(x) * sin


def mask_for(cfg, layer, T):
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    m = k <= q
    window = 0
    if cfg.get("use_sliding_window") and layer >= cfg.get("_max_window_layers", 0):
        window = cfg["sliding_window"]
    if window:
        m = m & ((q - k < window) | (k < cfg.get("num_sink_tokens", 0)))
    return m


def attend(q, k, v, mask, scale):
    """q [H, T, d], k/v [H_kv, T, d]; repeat_kv then softmax(q k^T * scale + mask) v."""
    groups = q.shape[0] // k.shape[0]
    k = k.repeat_interleave(groups, 0)
    v = v.repeat_interleave(groups, 0)
    s = (q @ k.transpose(-1, -2)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, -1) @ v  # [H, T, d_v]


def mlp(W, p, x):
    return linear(torch.nn.functional.silu(linear(x, W[p + "gate_proj.weight"], W.get(p + "gate_proj.bias")))
                  * linear(x, W[p + "up_proj.weight"], W.get(p + "up_proj.bias")),
                  W[p + "down_proj.weight"], W.get(p + "down_proj.bias"))


# ---------------------------------------------------------------------------------------------
# attention variants


def gqa_attention(cfg, W, p, x, positions, layer):
    """Qwen2/Qwen3/Llama attention (Qwen3: q_norm / k_norm on the head dim before RoPE)."""
    T = x.shape[0]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg["_head_dim"]
    q = linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias")).view(T, H, d)
    k = linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias")).view(T, Hkv, d)
    v = linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias")).view(T, Hkv, d)
    if cfg["_qk_norm"]:
        q = rms_norm(q, W[p + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, W[p + "k_norm.weight"], cfg["rms_norm_eps"])
    q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
    cos, sin = cos_sin(cfg, positions)
    q, k = apply_rope(q, cos, sin, False), apply_rope(k, cos, sin, False)
    o = attend(q, k, v, mask_for(cfg, layer, T), d ** -0.5)
    return linear(o.transpose(0, 1).reshape(T, H * d), W[p + "o_proj.weight"], W.get(p + "o_proj.bias"))


def mla_attention(cfg, W, p, x, positions, layer):
    """DeepseekV3Attention."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    dn, dr, dv, dc = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank"):
        qa = linear(x, W[p + "q_a_proj.weight"], W.get(p + "q_a_proj.bias"))
        q = linear(rms_norm(qa, W[p + "q_a_layernorm.weight"], eps), W[p + "q_b_proj.weight"])
    else:
        q = linear(x, W[p + "q_proj.weight"])
    q = q.view(T, H, dn + dr).transpose(0, 1)
    q_pass, q_rot = q[..., :dn], q[..., dn:]
    ckv = linear(x, W[p + "kv_a_proj_with_mqa.weight"], W.get(p + "kv_a_proj_with_mqa.bias"))
    k_pass, k_rot = ckv[:, :dc], ckv[:, dc:]
    kv = linear(rms_norm(k_pass, W[p + "kv_a_layernorm.weight"], eps), W[p + "kv_b_proj.weight"])
    kv = kv.view(T, H, dn + dv).transpose(0, 1)
    k_pass, value = kv[..., :dn], kv[..., dn:]
    k_rot = k_rot.view(1, T, dr)
    cos, sin = cos_sin(cfg, positions)
    inter = cfg.get("rope_interleave", True)
    q_rot, k_rot = apply_rope(q_rot, cos, sin, inter), apply_rope(k_rot, cos, sin, inter)
    k_rot = k_rot.expand(H, T, dr)
    query = torch.cat([q_pass, q_rot], -1)
    key = torch.cat([k_pass, k_rot], -1)
    scale = (dn + dr) ** -0.5
    rs = cfg.get("rope_scaling") or {}
    if rs and rs.get("rope_type", rs.get("type", "default")) != "default" and rs.get("mscale_all_dim"):
        m = 0.1 * rs["mscale_all_dim"] * math.log(rs["factor"]) + 1.0 if rs["factor"] > 1 else 1.0
        scale = scale * m * m
    o = attend(query, key, value, mask_for(cfg, layer, T), scale)
    return linear(o.transpose(0, 1).reshape(T, H * dv), W[p + "o_proj.weight"], W.get(p + "o_proj.bias"))


# ---------------------------------------------------------------------------------------------
# MoE variants


def experts_sum(W, p, x, idx, w, n_experts):
    """Loop over experts as transformers does: index_add of weighted expert outputs."""
    out = torch.zeros_like(x)
    for e in range(n_experts):
        tok, slot = torch.where(idx == e)
        if tok.numel():
            out.index_add_(0, tok, mlp(W, f"{p}experts.{e}.", x[tok]) * w[tok, slot, None])
    return out


def deepseek_moe(cfg, W, p, x):
    """DeepseekV3MoE with DeepseekV3TopkRouter (group fill -inf, see the top of the file)."""
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, KG = cfg["n_group"], cfg["topk_group"]
    scores = (x @ W[p + "gate.weight"].t()).sigmoid()
    choice = scores + W[p + "gate.e_score_correction_bias"][None, :]
    if cfg.get("topk_method", "noaux_tc") == "group_limited_greedy":
        group_scores = choice.view(-1, G, E // G).max(-1).values
    else:
        group_scores = choice.view(-1, G, E // G).topk(2, -1)[0].sum(-1)
    kept = group_scores.topk(KG, -1)[1]
    group_mask = torch.zeros_like(group_scores).scatter_(1, kept, 1.0)
    score_mask = group_mask[:, :, None].expand(-1, G, E // G).reshape(-1, E)
    choice = choice.masked_fill(score_mask == 0, float("-inf"))
    idx = choice.topk(K, -1)[1]
    w = scores.gather(1, idx)
    if cfg.get("norm_topk_prob", True):
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * cfg["routed_scaling_factor"]
    y = experts_sum(W, p, x, idx, w, E)
    if cfg.get("n_shared_experts", 0):
        y = y + mlp(W, p + "shared_experts.", x)
    return y


def qwen_moe(cfg, W, p, x, shared):
    """Qwen2MoeSparseMoeBlock / Qwen3MoeSparseMoeBlock."""
    E, K = cfg["num_experts"], cfg["num_experts_per_tok"]
    probs = torch.softmax(x @ W[p + "gate.weight"].t(), -1)
    w, idx = probs.topk(K, -1)
    if cfg.get("norm_topk_prob", False):
        w = w / w.sum(-1, keepdim=True)
    y = experts_sum(W, p, x, idx, w, E)
    if shared and cfg.get("shared_expert_intermediate_size", 0):
        gate = torch.sigmoid(x @ W[p + "shared_expert_gate.weight"].t())
        y = y + gate * mlp(W, p + "shared_expert.", x)
    return y


# ---------------------------------------------------------------------------------------------
# architectures


def prepare(cfg):
    arch = (cfg.get("architectures") or [None])[0] or cfg.get("model_type")
    kind = {
        "DeepseekV3ForCausalLM": "deepseek_v3", "deepseek_v3": "deepseek_v3",
        "Qwen2MoeForCausalLM": "qwen2_moe", "qwen2_moe": "qwen2_moe",
        "Qwen3MoeForCausalLM": "qwen3_moe", "qwen3_moe": "qwen3_moe",
        "Qwen2ForCausalLM": "qwen2", "qwen2": "qwen2", "Qwen3ForCausalLM": "qwen3", "qwen3": "qwen3",
        "LlamaForCausalLM": "llama", "llama": "llama",
    }.get(arch)
    if kind is None:
        fail(f"architecture {arch} not implemented")
    cfg["_kind"] = kind
    cfg["_head_dim"] = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    cfg["_rope_dim"] = cfg["qk_rope_head_dim"] if kind == "deepseek_v3" else cfg["_head_dim"]
    cfg["_qk_norm"] = kind in ("qwen3_moe", "qwen3")
    cfg["_max_window_layers"] = cfg.get("max_window_layers", 0)
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    return cfg


def is_moe(cfg, i):
    kind = cfg["_kind"]
    if kind == "deepseek_v3":  # DeepseekV3DecoderLayer
        return i >= cfg["first_k_dense_replace"]
    if kind in ("qwen2_moe", "qwen3_moe"):  # Qwen2MoeDecoderLayer
        return (i not in (cfg.get("mlp_only_layers") or [])) and cfg["num_experts"] > 0 and \
            (i + 1) % cfg.get("decoder_sparse_step", 1) == 0
    return False


def forward(cfg, W, ids):
    T = len(ids)
    positions = torch.arange(T)
    eps = cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        attn = mla_attention if cfg["_kind"] == "deepseek_v3" else gqa_attention
        x = x + attn(cfg, W, p + "self_attn.", h, positions, i)
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if is_moe(cfg, i):
            if cfg["_kind"] == "deepseek_v3":
                x = x + deepseek_moe(cfg, W, p + "mlp.", h)
            else:
                x = x + qwen_moe(cfg, W, p + "mlp.", h, shared=cfg["_kind"] == "qwen2_moe")
        else:
            x = x + mlp(W, p + "mlp.", h)
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight")
    if head is None or cfg.get("tie_word_embeddings", False):
        head = W["model.embed_tokens.weight"]
    return x @ head.t()  # [T, V]


# ---------------------------------------------------------------------------------------------
# PEFT LoRA adapters (peft: LoraConfig, get_peft_model_state_dict, LoraLayer.get_delta_weight)

_PEFT_PREFIX = "base_model.model."


def _peft_names(path, names):
    """PEFT's match of target_modules / modules_to_save against a module path."""
    if isinstance(names, str):  # a regular expression, matched in full
        return re.fullmatch(names, path) is not None
    return any(path == n or path.endswith("." + n) for n in names)


def apply_adapter(W, directory):
    """Folds the adapter in DIR into the float64 weights W (in place); returns a summary."""
    def bad(msg):
        fail(f"adapter {directory}: {msg}")

    cfg_path = os.path.join(directory, "adapter_config.json")
    if not os.path.exists(cfg_path):
        bad("no adapter_config.json")
    with open(cfg_path) as f:
        acfg = json.load(f)
    if acfg.get("peft_type") != "LORA":
        bad(f"peft_type = {acfg.get('peft_type')!r}: only LORA adapters")
    r = acfg.get("r")
    if not isinstance(r, int) or isinstance(r, bool) or r <= 0:
        bad(f"r = {r!r}: must be an integer > 0")
    alpha = acfg.get("lora_alpha")
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        bad(f"lora_alpha = {alpha!r}: must be a number")
    s = alpha / math.sqrt(r) if acfg.get("use_rslora", False) else alpha / r
    # What this reference does not model: refuse rather than compute something else.
    for key, ok in (("use_dora", lambda v: not v), ("fan_in_fan_out", lambda v: not v),
                    ("bias", lambda v: v in (None, "none")), ("lora_bias", lambda v: not v),
                    ("rank_pattern", lambda v: not v), ("alpha_pattern", lambda v: not v),
                    ("layers_to_transform", lambda v: v is None), ("layer_replication", lambda v: not v)):
        if key in acfg and not ok(acfg[key]):
            bad(f"{key} = {acfg[key]!r} is not supported by the reference")
    targets = acfg.get("target_modules") or []
    saved_modules = acfg.get("modules_to_save") or []
    wpath = os.path.join(directory, "adapter_model.safetensors")
    if not os.path.exists(wpath):
        bad("no adapter_model.safetensors")
    tensors = read_safetensors(wpath)

    pairs, saved = {}, {}
    for name, t in tensors.items():
        if not name.startswith(_PEFT_PREFIX):
            bad(f"{name}: not a PEFT name ({_PEFT_PREFIX}<module path>...)")
        rest = name[len(_PEFT_PREFIX):]
        for part in ("lora_A", "lora_B"):
            if rest.endswith(f".{part}.weight"):
                path = rest[: -len(f".{part}.weight")]
                pairs.setdefault(path, {})[part] = (name, t)
                break
        else:
            module = rest.rsplit(".", 1)[0] if "." in rest else ""
            if rest not in W:
                bad(f"{name}: the model has no tensor {rest}")
            if not _peft_names(module, saved_modules):
                bad(f"{name}: module {module} is not in modules_to_save {saved_modules}")
            if tuple(t.shape) != tuple(W[rest].shape):
                bad(f"{name}: shape {list(t.shape)}, the model's {rest} is {list(W[rest].shape)}")
            saved[rest] = t
    for path, ab in sorted(pairs.items()):
        if set(ab) != {"lora_A", "lora_B"}:
            have = next(iter(ab))
            bad(f"{ab[have][0]} without its {'lora_B' if have == 'lora_A' else 'lora_A'}")
        if not _peft_names(path, targets):
            bad(f"{ab['lora_A'][0]}: module {path} is not named by target_modules {targets}")
        wname = path + ".weight"
        if wname not in W:
            bad(f"{ab['lora_A'][0]}: the model has no weight {wname}")
        w = W[wname]
        (an, A), (bn, B) = ab["lora_A"], ab["lora_B"]
        if w.dim() != 2:
            bad(f"{an}: {wname} is not a matrix ({list(w.shape)})")
        if tuple(A.shape) != (r, w.shape[1]):
            bad(f"{an}: shape {list(A.shape)}, {wname} {list(w.shape)} with r = {r} needs {[r, w.shape[1]]}")
        if tuple(B.shape) != (w.shape[0], r):
            bad(f"{bn}: shape {list(B.shape)}, {wname} {list(w.shape)} with r = {r} needs {[w.shape[0], r]}")
        W[wname] = w + s * (B.to(DT) @ A.to(DT))
    for name, t in saved.items():
        W[name] = t.to(DT) if t.is_floating_point() else t
    if not pairs and not saved:
        bad("no adapter tensors")
    return f"adapter: {len(pairs)} LoRA layers (r = {r}, scaling {s:g}), {len(saved)} modules_to_save tensors"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--ids", required=True, help="token ids, comma separated")
    ap.add_argument("--out", help="write the reference logits [T, V] (float32 .npy)")
    ap.add_argument("--adapter", help="a PEFT LoRA adapter directory to fold into the model first")
    ap.add_argument("--compare", nargs="+", help="rlft logits [T, V] (.npy files) to check")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative error (max abs diff / max abs)")
    a = ap.parse_args()
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = prepare(json.load(f))
    W = read_checkpoint(a.model)
    if a.adapter:
        print(apply_adapter(W, a.adapter))
    ids = [int(t) for t in a.ids.split(",") if t.strip()]
    with torch.no_grad():
        ref = forward(cfg, W, ids)
    if a.out:
        np.save(a.out, ref.to(torch.float32).numpy())
    if a.compare:
        status = 0
        for path in a.compare:
            got = torch.from_numpy(np.load(path)).to(DT)
            if tuple(got.shape) != tuple(ref.shape):
                print(f"reference: {path}: shape {tuple(got.shape)} from rlft, {tuple(ref.shape)} expected")
                status = 1
                continue
            err = ((got - ref).abs().max() / ref.abs().max()).item()
            ok = err <= a.tol
            print(f"{cfg['_kind']}: {os.path.basename(path)}: max relative error {err:.3e} "
                  f"(tolerance {a.tol:.0e}) {'ok' if ok else 'FAILED'}")
            status = status if ok else 1
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
