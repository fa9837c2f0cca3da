#!/usr/bin/python3
"""Tries longctx as a hostile user would: about a thousand malformed model folders, tokenizers,
GGUF files and flag combinations, each run against the built `longctx` with a timeout and a
--mem-budget, and prints one table:

    bad inputs tried | crashes | hangs | unclear messages | budget breaks

and then every failing case. Classification (rule-based, so it can be run before and after a fix):
  crash          the process died of a signal, or printed "error: internal" / "please report"
  hang           it ran past --timeout
  unclear        an invalid input was accepted (exit 0), a valid one refused, something outside
                 the case's scratch folder changed, or the message does not name the file, field
                 or flag that was mutated
  budget break   peak RSS (os.wait4's ru_maxrss) above the --mem-budget the command was given

Inputs start from ../shared/models (stories260K, babyllama-tok105), ../shared/tokenizers,
../shared/gguf and a small `longctx random-model` checkpoint, copied (hard-linked when unchanged)
into a temporary folder at run time; nothing is written into the repository.

    nice -n 10 /usr/bin/python3 scripts/hostile-inputs.py [--bin build/longctx] [--jobs 2]
        [--only SUBSTRING] [--json OUT.json] [--keep]

Standard library only. Exit status 0 when no case fails, 1 otherwise.
"""
import argparse
import array
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
BUDGET = "256MiB"
BUDGET_BYTES = 256 << 20
PROMPT = "Once upon a time, there was a little girl"
NAN_WORDS = ["NaN", "nan", "Inf", "inf", "not finite", "non-finite"]


# ---------------------------------------------------------------------------------------------
# Building blocks: safetensors files, model folders


def st_bytes(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes). Returns the file's bytes."""
    header, off, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_read(data):
    """(header dict, data section bytes) of a safetensors file's bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def st_rewrite(data, edit):
    """Parses a safetensors file, lets edit(header) change the header, re-serialises it with the
    same data section."""
    header, body = st_read(data)
    edit(header)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


def st_add(data, name, shape):
    """A safetensors file's bytes with one more F32 tensor of zeros appended."""
    header, body = st_read(data)
    n = 4
    for d in shape:
        n *= d
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(body), len(body) + n]}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body + bytes(n)


def rand_f32(rng, n, scale):
    a = array.array("f", (rng.uniform(-scale, scale) for _ in range(n)))
    return a.tobytes()


def tiny_checkpoint(model_type, seed=1):
    """A tiny checkpoint of one architecture: (config dict, safetensors bytes). Vocabulary 512 to
    pair with stories260K's tokenizer.model."""
    rng = random.Random(seed)
    H, I, L, NH, KV, HD, V = 32, 64, 2, 4, 2, 8, 512
    cfg = {"architectures": [{"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                              "qwen2": "Qwen2ForCausalLM", "phi3": "Phi3ForCausalLM"}[model_type]],
           "model_type": model_type, "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": KV,
           "vocab_size": V, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
    if model_type == "mistral":
        cfg["sliding_window"] = 64
    if model_type == "qwen2":
        cfg["use_sliding_window"] = False
    t = []

    def add(name, shape, scale=0.2, center=0.0):
        n = 1
        for d in shape:
            n *= d
        raw = rand_f32(rng, n, scale)
        if center:
            a = array.array("f", raw)
            for i in range(len(a)):
                a[i] += center
            raw = a.tobytes()
        t.append((name, "F32", shape, raw))

    add("model.embed_tokens.weight", [V, H], 1.0)
    for l in range(L):
        p = "model.layers.%d." % l
        add(p + "input_layernorm.weight", [H], 0.1, 1.0)
        add(p + "post_attention_layernorm.weight", [H], 0.1, 1.0)
        if model_type == "phi3":
            add(p + "self_attn.qkv_proj.weight", [NH * HD + 2 * KV * HD, H])
            add(p + "mlp.gate_up_proj.weight", [2 * I, H])
        else:
            add(p + "self_attn.q_proj.weight", [NH * HD, H])
            add(p + "self_attn.k_proj.weight", [KV * HD, H])
            add(p + "self_attn.v_proj.weight", [KV * HD, H])
            if model_type == "qwen2":
                add(p + "self_attn.q_proj.bias", [NH * HD])
                add(p + "self_attn.k_proj.bias", [KV * HD])
                add(p + "self_attn.v_proj.bias", [KV * HD])
            add(p + "mlp.gate_proj.weight", [I, H])
            add(p + "mlp.up_proj.weight", [I, H])
        add(p + "self_attn.o_proj.weight", [H, NH * HD])
        add(p + "mlp.down_proj.weight", [H, I])
    add("model.norm.weight", [H], 0.1, 1.0)
    add("lm_head.weight", [V, H])
    return cfg, st_bytes(t, {"format": "pt"})


class Base:
    """A source model folder: its files' paths (read-only, never modified)."""

    def __init__(self, name, path):
        self.name, self.path = name, path
        self.files = sorted(f for f in os.listdir(path) if os.path.isfile(os.path.join(path, f)))

    def read(self, f):
        with open(os.path.join(self.path, f), "rb") as fh:
            return fh.read()

    def config(self):
        return json.loads(self.read("config.json"))


def materialize(base, dst, replace=None, drop=()):
    """Makes folder dst from base: unchanged files hard-linked (or copied), `replace` maps a file
    name to new bytes (None: leave it out), `drop` leaves files out."""
    os.makedirs(dst, exist_ok=True)
    replace = replace or {}
    for f in base.files:
        if f in drop or f in replace:
            continue
        src, d = os.path.join(base.path, f), os.path.join(dst, f)
        try:
            os.link(src, d)
        except OSError:
            shutil.copyfile(src, d)
    for f, data in replace.items():
        if data is None:
            continue
        with open(os.path.join(dst, f), "wb") as fh:
            fh.write(data)


def snapshot(path):
    """Digest of every file under path (to see whether a command changed it)."""
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(p.encode())
            try:
                with open(p, "rb") as fh:
                    h.update(hashlib.sha256(fh.read()).digest())
            except OSError:
                h.update(b"?")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Cases


class Case:
    """One hostile input. `setup(dir)` makes its files inside its own scratch folder and returns
    the argument list (with {D} standing for that folder). expect: "invalid" (must fail naming one
    of `names`), "valid" (must succeed), "any" (may succeed; a failure must name one of `names`).
    `check(dir)`, when given, returns a problem found after the run (e.g. a file destroyed)."""

    def __init__(self, name, setup, expect, names, budget=True, check=None):
        self.name, self.setup, self.expect, self.names = name, setup, expect, names
        self.budget, self.check = budget, check


def model_cmd(cmd, D, extra=()):
    """Arguments of one command over model folder/file D, with the budget and one thread."""
    if cmd == "run":
        a = ["run", "-m", D, "-p", PROMPT, "-n", "4", "--no-progress"]
    elif cmd == "plan":
        a = ["plan", "-m", D]
    elif cmd == "perplexity":
        a = ["perplexity", "-m", D, "-f", os.path.join(SHARED, "text", "stories.txt"), "-c", "32",
             "--no-progress"]
    elif cmd == "trace":
        a = ["trace", "-m", D, "-p", PROMPT, "-o", os.path.join(os.path.dirname(D), "trace.st"),
             "--hooks", "blocks.0.hook_resid_post", "--no-progress"]
    elif cmd == "tokenize":
        return ["tokenize", "-m", D, "-p", PROMPT] + list(extra)
    else:
        raise ValueError(cmd)
    return a + ["--mem-budget", BUDGET, "-t", "1"] + list(extra)


def folder_case(name, base, cmd, expect, names, replace=None, drop=(), extra=(), post=None):
    def setup(d):
        m = os.path.join(d, "model")
        materialize(base, m, replace, drop)
        if post:
            post(m)
        return model_cmd(cmd, m, extra)
    return Case(name, setup, expect, names, budget=cmd != "tokenize")


def config_cases(base, rng):
    cases = []
    cfg0 = base.config()
    ints_required = ["hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "vocab_size"]
    ints_optional = ["num_key_value_heads", "head_dim", "max_position_embeddings"]
    tokens = ["bos_token_id", "eos_token_id"]
    bools = ["attention_bias", "mlp_bias", "tie_word_embeddings"]
    floats = ["rms_norm_eps", "rope_theta"]
    bad_types = [("str", "abc"), ("list", [1]), ("obj", {"a": 1}), ("bool", True)]
    for cmd in ("run", "plan"):
        def mut(tag, field, value, expect, delete=False):
            c = dict(cfg0)
            if delete:
                c.pop(field, None)
            else:
                c[field] = value
            cases.append(folder_case("config/%s/%s=%s" % (cmd, field, tag), base, cmd, expect,
                                     [field], {"config.json": json.dumps(c).encode()}))
        for f in ints_required:
            mut("missing", f, None, "invalid", delete=True)
            mut("null", f, None, "invalid")
            for tag, v in bad_types + [("float", 1.5)]:
                mut(tag, f, v, "invalid")
            for v in (0, -1, 2 ** 40, 2 ** 70, cfg0[f] * 2, cfg0[f] + 1):
                mut(str(v), f, v, "invalid")
        for f in ints_optional:
            for tag, v in bad_types + [("float", 1.5)]:
                mut(tag, f, v, "invalid")
            for v in (0, -1, 2 ** 40):
                mut(str(v), f, v, "invalid")
        mut("3x", "head_dim", 3, "invalid")
        mut("7", "num_key_value_heads", 7, "invalid")
        for f in tokens:
            for tag, v in bad_types + [("float", 1.5)]:
                # transformers allows a list of eos ids
                mut(tag, f, v, "any" if (f, tag) == ("eos_token_id", "list") else "invalid")
            for v in (-5, 10 ** 6, 2 ** 40):
                mut(str(v), f, v, "invalid")
        for f in bools:
            for tag, v in [("str", "yes"), ("int", 1), ("list", [])]:
                mut(tag, f, v, "invalid")
        for f in floats:
            for tag, v in [("str", "abc"), ("zero", 0), ("neg", -1.0), ("huge", 1e300),
                           ("list", [])]:
                mut(tag, f, v, "any" if (f, tag) == ("rope_theta", "huge") else "invalid")
        mut("array", "model_type", ["llama"], "invalid")
        mut("gpt2", "model_type", "gpt2", "invalid")
        mut("empty", "model_type", "", "invalid")
        mut("missing", "model_type", None, "invalid", delete=True)
        mut("ignored-type", "architectures", "whatever", "any")
        mut("int", "torch_dtype", 5, "any")
    return cases


def config_semantic_cases(base, tiny):
    """Fields that change the numbers: each must be honoured or refused by name."""
    cases = []
    cfg0 = base.config()

    def c(name, changes, expect, names, cmds=("run", "plan"), b=base, drop_keys=()):
        cfg = dict(b.config())
        cfg.update(changes)
        for k in drop_keys:
            cfg.pop(k, None)
        for cmd in cmds:
            cases.append(folder_case("semantic/%s/%s" % (cmd, name), b, cmd, expect, names,
                                     {"config.json": json.dumps(cfg).encode()}))

    for act in ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "tanh", "quick_gelu",
                "SILU", "", 5]:
        c("hidden_act=%s" % act, {"hidden_act": act}, "invalid", ["hidden_act"])
    c("hidden_act=swish", {"hidden_act": "swish"}, "valid", [])
    c("mlp_bias=true", {"mlp_bias": True}, "invalid", ["mlp_bias"])
    c("attention_bias=true", {"attention_bias": True}, "invalid", ["attention_bias", "bias"])
    c("num_hidden_layers=3of5", {"num_hidden_layers": 3}, "invalid", ["num_hidden_layers"])
    c("num_hidden_layers=1of5", {"num_hidden_layers": 1}, "invalid", ["num_hidden_layers"])
    c("num_hidden_layers=6of5", {"num_hidden_layers": 6}, "invalid",
      ["num_hidden_layers", "model.layers.5"])
    c("tie=false", {"tie_word_embeddings": False}, "invalid", ["tie_word_embeddings", "lm_head"])
    for name, rs, expect, names in [
        ("unknown", {"rope_type": "foo", "factor": 2.0}, "invalid", ["rope"]),
        ("no-type", {"factor": 2.0}, "invalid", ["rope"]),
        ("linear-nofactor", {"rope_type": "linear"}, "invalid", ["factor"]),
        ("linear-neg", {"rope_type": "linear", "factor": -2}, "invalid", ["factor"]),
        ("linear-str", {"type": "linear", "factor": "2"}, "invalid", ["factor"]),
        ("yarn-nofactor", {"rope_type": "yarn"}, "invalid", ["factor"]),
        ("llama3-missing", {"rope_type": "llama3", "factor": 8.0}, "invalid",
         ["low_freq_factor", "high_freq_factor", "original_max_position_embeddings"]),
        ("longrope-llama", {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]},
         "invalid", ["short_factor", "long_factor", "longrope", "original_max_position"]),
        ("dynamic-ok", {"rope_type": "dynamic", "factor": 2.0}, "valid", []),
        ("linear-ok", {"rope_type": "linear", "factor": 2.0}, "valid", []),
        ("string", "linear", "invalid", ["rope_scaling"]),
        ("list", [1, 2], "invalid", ["rope_scaling"]),
    ]:
        c("rope_scaling=" + name, {"rope_scaling": rs}, expect, names)
    # Attention and scaling variants of other families that a llama decoder would silently skip.
    for k, v in [("attn_logit_softcapping", 50.0), ("final_logit_softcapping", 30.0),
                 ("query_pre_attn_scalar", 256), ("use_qk_norm", True), ("qk_layernorm", True),
                 ("embedding_multiplier", 12.0), ("logits_scaling", 8.0),
                 ("residual_multiplier", 0.22), ("attention_multiplier", 0.0078),
                 ("attention_type", "linear"), ("pretraining_tp", 1),
                 ("use_parallel_residual", True), ("no_rope_layers", [0, 1, 1, 1, 1]),
                 ("sliding_window_pattern", 2), ("logit_scale", 0.5)]:
        expect = "any" if k == "pretraining_tp" else "invalid"
        c("variant/%s" % k, {k: v}, expect, [k])
    # Arch-specific: a qwen2/mistral/phi3 tiny model with fields that change the numbers.
    for mt, tb in tiny.items():
        c("%s/hidden_act=gelu" % mt, {"hidden_act": "gelu"}, "invalid", ["hidden_act"], b=tb)
        # Their transformers classes have no such field and ignore it; so may longctx, as long
        # as no bias tensor goes unread (the bias-tensor cases below).
        c("%s/mlp_bias=true" % mt, {"mlp_bias": True}, "any", ["mlp_bias"], b=tb)
        c("%s/attention_bias=true" % mt, {"attention_bias": True}, "any",
          ["attention_bias"], b=tb)
        c("%s/layers=1of2" % mt, {"num_hidden_layers": 1}, "invalid", ["num_hidden_layers"],
          b=tb)
        c("%s/plain" % mt, {}, "valid", [], b=tb)
    # Tensors the decoder would not read: undeclared biases, another variant's norms.
    for mt, tb, name, shape in [
            ("mistral", tiny["mistral"], "model.layers.0.self_attn.o_proj.bias", [32]),
            ("phi3", tiny["phi3"], "model.layers.1.self_attn.qkv_proj.bias", [64]),
            ("qwen2", tiny["qwen2"], "model.layers.0.self_attn.o_proj.bias", [32]),
            ("llama", base, "model.layers.0.mlp.down_proj.bias", [64]),
            ("llama", base, "model.layers.0.self_attn.q_norm.weight", [8]),
            ("llama", base, "lm_head.bias", [512])]:
        for cmd in ("run", "plan"):
            cases.append(folder_case(
                "semantic/%s/%s/extra-tensor/%s" % (cmd, mt, name), tb, cmd, "invalid",
                [name], {"model.safetensors": st_add(tb.read("model.safetensors"), name, shape)}))
    inert = st_add(base.read("model.safetensors"), "model.layers.0.self_attn.rotary_emb.inv_freq",
                   [4])
    for cmd in ("run", "plan"):
        cases.append(folder_case("semantic/%s/llama/inert-inv_freq" % cmd, base, cmd, "valid", [],
                                 {"model.safetensors": inert}))
    c("qwen2/use_sliding_window=str", {"use_sliding_window": "yes"}, "invalid",
      ["use_sliding_window"], b=tiny["qwen2"])
    c("qwen2/layer_types=bad", {"layer_types": ["full_attention", "chunked"]}, "invalid",
      ["layer_types"], b=tiny["qwen2"])
    c("mistral/sliding_window=-3", {"sliding_window": -3}, "invalid", ["sliding_window"],
      b=tiny["mistral"])
    c("phi3/partial_rotary_factor=2", {"partial_rotary_factor": 2.0}, "invalid",
      ["partial_rotary_factor"], b=tiny["phi3"])
    return cases


def config_file_cases(base, rng):
    cases = []
    text = base.read("config.json")
    for cmd in ("run", "plan", "perplexity", "trace"):
        def add(name, expect, names, replace=None, drop=(), post=None):
            cases.append(folder_case("configfile/%s/%s" % (cmd, name), base, cmd, expect, names,
                                     replace, drop, post=post))
        add("missing", "invalid", ["config.json"], drop=("config.json",))
        add("empty", "invalid", ["config.json"], {"config.json": b""})
        add("array", "invalid", ["config.json"], {"config.json": b"[1,2]"})
        add("garbage", "invalid", ["config.json"], {"config.json": b"\x00\xff garbage"})
        add("bom", "any", ["config.json"], {"config.json": b"\xef\xbb\xbf" + text})
        add("dup-key", "any", ["config.json"],
            {"config.json": text.replace(b"{", b'{"hidden_size": 64000,', 1)})

        def is_dir(m):
            os.mkdir(os.path.join(m, "config.json"))
        add("is-directory", "invalid", ["config.json"], drop=("config.json",), post=is_dir)

        def loop(m):
            os.symlink("config.json", os.path.join(m, "config.json"))
        add("symlink-self-loop", "invalid", ["config.json"], drop=("config.json",), post=loop)

        def loop2(m):
            os.symlink("b.json", os.path.join(m, "config.json"))
            os.symlink("config.json", os.path.join(m, "b.json"))
        add("symlink-loop2", "invalid", ["config.json"], drop=("config.json",), post=loop2)

        def dangling(m):
            os.symlink("nowhere.json", os.path.join(m, "config.json"))
        add("symlink-dangling", "invalid", ["config.json"], drop=("config.json",), post=dangling)

        def devzero(m):
            os.symlink("/dev/zero", os.path.join(m, "config.json"))
        add("dev-zero", "invalid", ["config.json"], drop=("config.json",), post=devzero)
        for i in range(6):
            cut = rng.randrange(1, len(text))
            add("truncated@%d" % cut, "invalid", ["config.json"], {"config.json": text[:cut]})

    # The model folder itself.
    def dir_loop(d):
        os.symlink("loop", os.path.join(d, "loop"))
        return model_cmd("run", os.path.join(d, "loop"))
    cases.append(Case("folder/run/symlink-loop", dir_loop, "invalid", ["loop"]))

    def dir_loop_plan(d):
        os.symlink("loop", os.path.join(d, "loop"))
        return model_cmd("plan", os.path.join(d, "loop"))
    cases.append(Case("folder/plan/symlink-loop", dir_loop_plan, "invalid", ["loop"]))

    def weights_loop(d):
        m = os.path.join(d, "model")
        materialize(base, m, drop=("model.safetensors",))
        os.symlink("model.safetensors", os.path.join(m, "model.safetensors"))
        return model_cmd("run", m)
    cases.append(Case("folder/run/weights-symlink-loop", weights_loop, "invalid",
                      ["model.safetensors"]))

    def weights_loop_plan(d):
        m = os.path.join(d, "model")
        materialize(base, m, drop=("model.safetensors",))
        os.symlink("model.safetensors", os.path.join(m, "model.safetensors"))
        return model_cmd("plan", m)
    cases.append(Case("folder/plan/weights-symlink-loop", weights_loop_plan, "invalid",
                      ["model.safetensors"]))
    for cmd in ("run", "plan"):
        def pt_only(d, cmd=cmd):
            m = os.path.join(d, "model")
            materialize(base, m, {"pytorch_model.bin": b"PK\x03\x04 not really"},
                        drop=("model.safetensors",))
            return model_cmd(cmd, m)
        cases.append(Case("folder/%s/pytorch-only" % cmd, pt_only, "invalid",
                          ["pytorch_model.bin"]))

        def pt_index(d, cmd=cmd):
            m = os.path.join(d, "model")
            materialize(base, m, {"pytorch_model.bin.index.json": b'{"weight_map": {}}'},
                        drop=("model.safetensors",))
            return model_cmd(cmd, m)
        cases.append(Case("folder/%s/pytorch-index-only" % cmd, pt_index, "invalid",
                          ["pytorch_model"]))

        def file_not_dir(d, cmd=cmd):
            p = os.path.join(d, "notamodel.txt")
            open(p, "w").write("hello")
            return model_cmd(cmd, p)
        cases.append(Case("folder/%s/plain-file" % cmd, file_not_dir, "invalid",
                          ["notamodel.txt"]))

        def empty_dir(d, cmd=cmd):
            m = os.path.join(d, "model")
            os.mkdir(m)
            return model_cmd(cmd, m)
        cases.append(Case("folder/%s/empty-folder" % cmd, empty_dir, "invalid", ["config.json"]))
    return cases


def safetensors_cases(base, rng, n_random):
    cases = []
    data = base.read("model.safetensors")
    header, body = st_read(data)
    names = sorted(k for k in header if k != "__metadata__")
    hlen = struct.unpack("<Q", data[:8])[0]
    F = "model.safetensors"
    for cmd in ("run", "plan"):
        def add(name, expect, new, names_=(F,)):
            cases.append(folder_case("safetensors/%s/%s" % (cmd, name), base, cmd, expect,
                                     list(names_), {F: new}))
        add("empty", "invalid", b"")
        add("4-bytes", "invalid", data[:4])
        add("header-only", "invalid", data[:8 + hlen])
        add("half", "invalid", data[:len(data) // 2])
        add("minus-1", "invalid", data[:-1])
        add("hlen-huge", "invalid", struct.pack("<Q", 2 ** 63) + data[8:])
        add("hlen-zero", "invalid", struct.pack("<Q", 0) + data[8:])
        add("hlen-past-end", "invalid", struct.pack("<Q", len(data)) + data[8:])
        add("not-json", "invalid", struct.pack("<Q", 16) + b"this is not json" + body)
        add("json-array", "invalid", struct.pack("<Q", 8) + b"[1,2,3] " + body)
        add("text-file", "invalid", b"this is not a safetensors file at all\n" * 4)

        def edit(fn):
            return st_rewrite(data, fn)
        first = names[0]
        big = max(names, key=lambda n: header[n]["data_offsets"][1] - header[n]["data_offsets"][0])
        add("offset-past-end", "invalid", edit(lambda h: h[big].update(
            data_offsets=[h[big]["data_offsets"][0], len(body) + 4096])))
        add("offsets-reversed", "invalid", edit(lambda h: h[big].update(
            data_offsets=list(reversed(h[big]["data_offsets"])))))
        add("offsets-negative", "invalid", edit(lambda h: h[big].update(data_offsets=[-8, 0])))
        add("offsets-overlap", "invalid", edit(lambda h: h[names[1]].update(
            data_offsets=h[names[0]]["data_offsets"]) if header[names[0]]["data_offsets"] != header[names[1]]["data_offsets"] else None))
        add("dtype-unknown", "invalid", edit(lambda h: h[big].update(dtype="Q9_9")))
        add("dtype-i8", "invalid", edit(lambda h: h[big].update(dtype="I8")), (F, big, "I8"))
        add("dtype-f64", "invalid", edit(lambda h: h[big].update(dtype="F64")), (F, big, "F64"))
        add("dtype-int", "invalid", edit(lambda h: h[big].update(dtype=4)))
        add("shape-wrong", "invalid", edit(lambda h: h[big].update(
            shape=list(reversed(h[big]["shape"])))), (F, big))
        add("shape-neg", "invalid", edit(lambda h: h[big].update(shape=[-1, 4])))
        add("shape-huge", "invalid", edit(lambda h: h[big].update(shape=[2 ** 62, 2 ** 62])))
        add("shape-str", "invalid", edit(lambda h: h[big].update(shape="64")))
        add("tensor-missing", "invalid", edit(lambda h: h.pop(big)), (F, big))
        add("tensor-renamed", "invalid", edit(lambda h: h.update({big + "x": h.pop(big)})),
            (F, big))
        add("metadata-array", "invalid", edit(lambda h: h.update({"__metadata__": [1]})))
        add("entry-not-object", "invalid", edit(lambda h: h.update({first: 5})), (F, first))
        add("lacks-dtype", "invalid", edit(lambda h: h[first].pop("dtype")), (F, first))
        add("extra-layer", "invalid", edit(lambda h: h.update(
            {"model.layers.9.mlp.down_proj.weight": dict(h[big], data_offsets=[0, 0], shape=[0])})),
            (F, "num_hidden_layers", "model.layers.9"))
        # NaN / Inf in the weights.
        for tname in (big, [n for n in names if "norm" in n][0],
                      [n for n in names if "layers.2" in n and "proj" in n][0]):
            for tag, val in (("nan", float("nan")), ("inf", float("inf"))):
                b = bytearray(data)
                start = 8 + hlen + header[tname]["data_offsets"][0]
                nbytes = header[tname]["data_offsets"][1] - header[tname]["data_offsets"][0]
                for k in range(0, min(nbytes, 4 * 64), 4):
                    b[start + k:start + k + 4] = struct.pack("<f", val)
                cases.append(folder_case("weights/%s/%s-in-%s" % (cmd, tag, tname), base, cmd,
                                         "invalid" if cmd == "run" else "any",
                                         NAN_WORDS + [tname], {F: bytes(b)}))
        # Random damage.
        for i in range(n_random):
            kind = rng.choice(["trunc", "flip-header", "flip-len"])
            b = bytearray(data)
            if kind == "trunc":
                cut = rng.randrange(0, len(data))
                new = bytes(b[:cut])
                tag = "trunc@%d" % cut
            elif kind == "flip-header":
                for _ in range(rng.randint(1, 4)):
                    p = rng.randrange(8, 8 + hlen)
                    b[p] = rng.choice(b'{}[]",:0123456789-ex\x00\xff')
                new, tag = bytes(b), "flip-header#%d" % i
            else:
                p = rng.randrange(0, 8)
                b[p] ^= 1 << rng.randrange(8)
                new, tag = bytes(b), "flip-len@%d" % p
            if new == data:
                continue
            cases.append(folder_case("safetensors/%s/random/%s" % (cmd, tag), base, cmd, "any",
                                     [F, "config.json", "tensor"], {F: new}))
    # Sharded checkpoints.
    half = len(names) // 2
    sh1 = {n: header[n] for n in names[:half]}
    sh2 = {n: header[n] for n in names[half:]}

    def shard_bytes(sub):
        t = []
        for n in sorted(sub):
            b0, b1 = sub[n]["data_offsets"]
            t.append((n, sub[n]["dtype"], sub[n]["shape"], body[b0:b1]))
        return st_bytes(t)
    s1, s2 = shard_bytes(sh1), shard_bytes(sh2)
    A, B = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    wm = {n: A for n in sh1}
    wm.update({n: B for n in sh2})
    IDX = "model.safetensors.index.json"

    def index(w):
        return json.dumps({"metadata": {}, "weight_map": w}).encode()
    for cmd in ("run", "plan"):
        def add(name, expect, names_, repl):
            r = {"model.safetensors": None}
            r.update(repl)
            cases.append(folder_case("shards/%s/%s" % (cmd, name), base, cmd, expect, names_, r,
                                     drop=("model.safetensors",)))
        add("ok", "valid", [], {IDX: index(wm), A: s1, B: s2})
        add("missing-shard", "invalid", [B], {IDX: index(wm), A: s1})
        add("shard-empty", "invalid", [B], {IDX: index(wm), A: s1, B: b""})
        add("shard-truncated", "invalid", [B], {IDX: index(wm), A: s1, B: s2[:len(s2) // 2]})
        add("shard-not-json", "invalid", [B],
            {IDX: index(wm), A: s1, B: struct.pack("<Q", 4) + b"nope"})
        add("index-not-json", "invalid", [IDX], {IDX: b"{not json", A: s1, B: s2})
        add("index-array", "invalid", [IDX], {IDX: b"[]", A: s1, B: s2})
        add("index-empty-map", "invalid", [IDX], {IDX: index({}), A: s1, B: s2})
        add("index-no-map", "invalid", [IDX], {IDX: b'{"metadata": {}}', A: s1, B: s2})
        add("index-traversal", "invalid", [IDX, "../"],
            {IDX: index(dict(wm, **{names[0]: "../" + A})), A: s1, B: s2})
        add("index-absolute", "invalid", [IDX, "/etc/passwd"],
            {IDX: index(dict(wm, **{names[0]: "/etc/passwd"})), A: s1, B: s2})
        add("index-int-entry", "invalid", [IDX], {IDX: index(dict(wm, **{names[0]: 7})), A: s1,
                                                  B: s2})
        add("index-lies", "invalid", [IDX, A, B, names[0]],
            {IDX: index(dict(wm, **{names[0]: B})), A: s1, B: s2})
        add("duplicate-tensor", "invalid", [A, B, names[0]],
            {IDX: index(wm), A: s1, B: shard_bytes(dict(sh2, **{names[0]: header[names[0]]}))})
    return cases


def tokenizer_cases(base, bpe_dir, rng, n_random):
    cases = []
    spm = base.read("tokenizer.model")
    T = "tokenizer.model"
    for cmd in ("tokenize", "run"):
        def add(name, expect, names_, repl, b=base, drop=(), post=None):
            cases.append(folder_case("tokenizer/%s/%s" % (cmd, name), b, cmd, expect, names_,
                                     repl, drop, post=post))
        add("spm-empty", "invalid", [T], {T: b""})
        add("spm-garbage", "invalid", [T], {T: b"\xff" * 100})
        add("spm-text", "invalid", [T], {T: b"hello world\n"})
        add("spm-missing", "invalid", ["tokenizer"], {}, drop=(T,))

        def tdir(m):
            os.mkdir(os.path.join(m, T))
        add("spm-directory", "invalid", [T], {}, drop=(T,), post=tdir)

        def tloop(m):
            os.symlink(T, os.path.join(m, T))
        add("spm-symlink-loop", "invalid", [T], {}, drop=(T,), post=tloop)
        for i in range(n_random):
            b = bytearray(spm)
            if rng.random() < 0.4:
                cut = rng.randrange(1, len(spm))
                new, tag = bytes(b[:cut]), "spm-trunc@%d" % cut
            else:
                for _ in range(rng.randint(1, 6)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                new, tag = bytes(b), "spm-flip#%d" % i
            add(tag, "any", [T], {T: new})
    # tokenizer.json (a BPE folder: the shared smollm2 tokenizer with a matching random model).
    tj = json.loads(bpe_dir.read("tokenizer.json"))
    J = "tokenizer.json"

    def tj_with(fn):
        t = json.loads(json.dumps(tj))
        fn(t)
        return json.dumps(t).encode()
    vocab = tj["model"]["vocab"]
    some = sorted(vocab, key=lambda k: vocab[k])[300]
    for cmd in ("tokenize", "run"):
        def add(name, expect, names_, repl):
            cases.append(folder_case("tokenizer/%s/%s" % (cmd, name), bpe_dir, cmd, expect,
                                     names_, repl))
        add("json-empty", "invalid", [J], {J: b""})
        add("json-garbage", "invalid", [J], {J: b"{\"model\": "})
        add("json-array", "invalid", [J], {J: b"[]"})
        add("no-model", "invalid", [J, "model"], {J: tj_with(lambda t: t.pop("model"))})
        add("model-type-unknown", "invalid", [J, "Unigram", "WordPiece", "type"],
            {J: tj_with(lambda t: t["model"].update(type="WordPiece"))})
        add("vocab-empty", "invalid", [J, "vocab"],
            {J: tj_with(lambda t: (t["model"].update(vocab={}, merges=[]),
                                   t.update(added_tokens=[])))})
        add("vocab-not-object", "invalid", [J, "vocab"],
            {J: tj_with(lambda t: t["model"].update(vocab=[1, 2]))})
        add("vocab-id-negative", "invalid", [J, some],
            {J: tj_with(lambda t: t["model"]["vocab"].update({some: -4}))})
        add("vocab-id-1e9", "invalid", [J, some, "vocab_size"],
            {J: tj_with(lambda t: t["model"]["vocab"].update({some: 10 ** 9}))})
        add("vocab-id-str", "invalid", [J, some],
            {J: tj_with(lambda t: t["model"]["vocab"].update({some: "x"}))})
        add("merges-unknown", "any", [J, "merge"],
            {J: tj_with(lambda t: t["model"]["merges"].insert(0, "zzqq xxjj"))})
        add("merges-bad-type", "invalid", [J, "merges"],
            {J: tj_with(lambda t: t["model"].update(merges=[5]))})
        add("added-token-bad-id", "invalid", [J, "added_tokens"],
            {J: tj_with(lambda t: t["added_tokens"].append({"id": -3, "content": "<x>"}))})
        add("pretokenizer-unknown", "invalid", [J, "pre_tokenizer", "Foo"],
            {J: tj_with(lambda t: t.update(pre_tokenizer={"type": "Foo"}))})
        add("normalizer-unknown", "invalid", [J, "normalizer", "Foo"],
            {J: tj_with(lambda t: t.update(normalizer={"type": "Foo"}))})
        add("decoder-unknown", "any", [J, "decoder", "Foo"],
            {J: tj_with(lambda t: t.update(decoder={"type": "Foo"}))})
        text = bpe_dir.read(J)
        for i in range(n_random // 3):
            cut = rng.randrange(1, len(text))
            add("json-trunc@%d" % cut, "invalid", [J], {J: text[:cut]})
    return cases


def gguf_cases(rng, n_random):
    cases = []
    for fname in ("stories260K-f32.gguf", "stories260K-q8_0.gguf"):
        path = os.path.join(SHARED, "gguf", fname)
        if not os.path.exists(path):
            continue
        data = open(path, "rb").read()
        for cmd in ("run", "plan", "tokenize"):
            def add(name, expect, new, names_=None, fname=fname, cmd=cmd):
                def setup(d):
                    p = os.path.join(d, fname)
                    open(p, "wb").write(new)
                    return model_cmd(cmd, p)
                cases.append(Case("gguf/%s/%s/%s" % (cmd, fname, name), setup, expect,
                                  names_ or [fname], budget=cmd != "tokenize"))
            add("empty", "invalid", b"")
            add("magic-only", "invalid", b"GGUF")
            add("bad-version", "invalid", data[:4] + struct.pack("<I", 99) + data[8:])
            add("tensor-count-huge", "invalid", data[:8] + struct.pack("<Q", 2 ** 62) + data[16:])
            add("kv-count-huge", "invalid", data[:16] + struct.pack("<Q", 2 ** 62) + data[24:])
            for i in range(n_random):
                if rng.random() < 0.5:
                    cut = rng.randrange(4, len(data))
                    new, tag = data[:cut], "trunc@%d" % cut
                else:
                    b = bytearray(data)
                    for _ in range(rng.randint(1, 4)):
                        b[rng.randrange(24, min(len(b), 40000))] = rng.randrange(256)
                    new, tag = bytes(b), "flip#%d" % i
                add(tag, "any", new)
    return cases


def flag_cases(base, text_path):
    cases = []
    M = base.path

    def add(name, args, expect, names, budget=True, check=None, setup=None):
        def s(d):
            if setup:
                setup(d)
            return [a.replace("{D}", d) for a in args]
        cases.append(Case("flags/" + name, s, expect, names, budget, check))
    run = ["run", "-m", M, "-p", PROMPT, "-n", "4", "--no-progress", "--mem-budget", BUDGET]
    plan = ["plan", "-m", M, "--mem-budget", BUDGET]
    ppl = ["perplexity", "-m", M, "-f", text_path, "--no-progress", "--mem-budget", BUDGET]
    trace = ["trace", "-m", M, "-p", PROMPT, "-o", "{D}/t.st", "--hooks",
             "blocks.0.hook_resid_post", "--no-progress", "--mem-budget", BUDGET]
    for cname, base_args in (("run", run), ("plan", plan), ("perplexity", ppl), ("trace", trace)):
        t1 = ["-t", "1"]
        for v in ("0", "-1", "1", "3", "99999999999", "abc", "1e3", ""):
            expect = "any" if v in ("1", "3") else "invalid"
            if cname == "plan" and v in ("1", "3"):
                expect = "valid"
            if v == "0":
                expect = "any"  # 0 = auto, when --help says so
            add("%s/-c=%s" % (cname, v), base_args + t1 + ["-c", v], expect, ["-c", "--ctx"])
        for v in ("0", "-1", "100000", "x"):
            expect = "any" if v == "0" else "invalid"
            add("%s/-t=%s" % (cname, v), base_args + ["-t", v], expect,
                ["-t", "--threads"] + (["thread"] if v == "100000" else []))
        for v in ("0", "-1", "garbage", "1KiB", "1e400", "99999999999TiB", "", "0MiB", "12 GiB",
                  "NaN"):
            add("%s/--mem-budget=%s" % (cname, v),
                [a for a in base_args if a not in ("--mem-budget", BUDGET)] + t1 +
                ["--mem-budget", v], "invalid" if v not in ("12 GiB",) else "any",
                ["--mem-budget"])
        for v in ("0", "-5", "abc", "1e9"):
            # 0 means auto, as --help states for -c, --stride and -t too.
            add("%s/--prefill-chunk=%s" % (cname, v), base_args + t1 + ["--prefill-chunk", v],
                "invalid" if v not in ("1e9", "0") else "any", ["--prefill-chunk"])
        for v in ("foo", "int3", ""):
            add("%s/--kv-dtype=%s" % (cname, v), base_args + t1 + ["--kv-dtype", v], "invalid",
                ["--kv-dtype", "kv"])
        add("%s/--kv-dtype-k=int4" % cname, base_args + t1 + ["--kv-dtype-k", "int4"], "any",
            ["--kv-dtype-k", "int4"])
        add("%s/unknown-flag" % cname, base_args + ["--frobnicate"], "invalid", ["--frobnicate"])
        add("%s/-m-missing" % cname,
            [a if a != M else "{D}/nope" for a in base_args], "invalid", ["nope"])
    run_no_n = [a for i, a in enumerate(run) if a != "-n" and run[i - 1] != "-n"]
    for v in ("-1", "0", "abc", "99999999999999999999"):
        add("run/-n=%s" % v, run_no_n + ["-t", "1", "-n", v], "invalid" if v not in ("0",) else "any",
            ["-n", "--n-predict"])
    for k, v in (("--temp", "-1"), ("--temp", "nan"), ("--top-p", "2"), ("--top-p", "-1"),
                 ("--top-k", "-3"), ("--min-p", "5"), ("--repeat-penalty", "-1"),
                 ("--repeat-last-n", "-7"), ("--seed", "-1")):
        add("run/%s=%s" % (k, v), run + ["-t", "1", k, v], "invalid" if k != "--seed" else "any",
            [k])

    def mk_prompt(d):
        open(os.path.join(d, "p.txt"), "w").write("Once upon a time")
        os.mkdir(os.path.join(d, "pdir"))
        os.symlink("ploop", os.path.join(d, "ploop"))
    for cname, base_args in (("run", run), ("trace", trace)):
        add("%s/-p-and-f" % cname, base_args + ["-t", "1", "-f", "{D}/p.txt"], "invalid",
            ["-p", "-f"], setup=mk_prompt)
        add("%s/-f-dir" % cname, [a for a in base_args if a not in ("-p", PROMPT)] +
            ["-t", "1", "-f", "{D}/pdir"], "invalid", ["pdir"], setup=mk_prompt)
        add("%s/-f-missing" % cname, [a for a in base_args if a not in ("-p", PROMPT)] +
            ["-t", "1", "-f", "{D}/none.txt"], "invalid", ["none.txt"], setup=mk_prompt)
        add("%s/-f-loop" % cname, [a for a in base_args if a not in ("-p", PROMPT)] +
            ["-t", "1", "-f", "{D}/ploop"], "invalid", ["ploop"], setup=mk_prompt)
        add("%s/-f-devnull" % cname, [a for a in base_args if a not in ("-p", PROMPT)] +
            ["-t", "1", "-f", "/dev/null"], "any", ["/dev/null", "empty"], setup=mk_prompt)
    add("tokenize/-p-and-f", ["tokenize", "-m", M, "-p", "x", "-f", "{D}/p.txt"], "invalid",
        ["-p", "-f"], budget=False, setup=mk_prompt)
    add("tokenize/-f-dir", ["tokenize", "-m", M, "-f", "{D}/pdir"], "invalid", ["pdir"],
        budget=False, setup=mk_prompt)
    add("tokenize/-f-loop", ["tokenize", "-m", M, "-f", "{D}/ploop"], "invalid", ["ploop"],
        budget=False, setup=mk_prompt)
    # trace: [trace -m M -p PROMPT -o OUT --hooks HOOKS ...]
    add("trace/-o-dir", trace[:6] + ["{D}"] + trace[7:] + ["-t", "1"], "invalid", ["-o", "{D}"])
    add("trace/-o-missing-dir", trace[:6] + ["{D}/no/such/t.st"] + trace[7:] + ["-t", "1"],
        "invalid", ["no/such"])
    add("trace/hooks-unknown", trace[:8] + ["blocks.0.hook_bogus"] + trace[9:] + ["-t", "1"],
        "invalid", ["hook_bogus"])
    add("trace/hooks-layer-99", trace[:8] + ["blocks.99.hook_resid_post"] + trace[9:] +
        ["-t", "1"], "invalid", ["blocks.99", "99"])
    # perplexity specifics
    for v in ("0", "-1", "100000", "abc"):
        add("perplexity/--stride=%s" % v, ppl + ["-t", "1", "-c", "32", "--stride", v],
            "any" if v == "0" else "invalid", ["--stride"])

    def short_text(d):
        open(os.path.join(d, "short.txt"), "w").write("Once upon")
        open(os.path.join(d, "empty.txt"), "w").write("")
        os.mkdir(os.path.join(d, "tdir"))
    p_noc = [a if a != text_path else "{D}/short.txt" for a in ppl] + ["-t", "1"]
    add("perplexity/short-text-no-c", p_noc, "invalid", ["short.txt", "tokens"], setup=short_text)
    add("perplexity/empty-text", [a if a != text_path else "{D}/empty.txt" for a in ppl] +
        ["-t", "1"], "invalid", ["empty.txt"], setup=short_text)
    add("perplexity/text-dir", [a if a != text_path else "{D}/tdir" for a in ppl] + ["-t", "1"],
        "invalid", ["tdir"], setup=short_text)
    add("perplexity/--compare-kv=bogus", ppl + ["-t", "1", "-c", "32", "--compare-kv", "bogus"],
        "invalid", ["--compare-kv", "bogus"])
    # top level
    add("top/unknown-subcommand", ["frobnicate"], "invalid", ["frobnicate"], budget=False)
    add("top/unknown-subcommand-with-args", ["runn", "-m", M], "invalid", ["runn"], budget=False)
    add("top/no-subcommand", [], "invalid", ["subcommand", "run"], budget=False)
    add("top/unknown-global-flag", ["--frob"], "invalid", ["--frob"], budget=False)
    add("plan/no-model", ["plan", "--mem-budget", BUDGET], "invalid", ["-m", "--preset"])
    add("plan/two-models", ["plan", "-m", M, "--preset", "smollm2-135m", "--mem-budget", BUDGET],
        "invalid", ["-m", "--preset"])
    add("plan/--batch=0", plan + ["--batch", "0"], "invalid", ["--batch"])
    add("plan/--preset=bogus", ["plan", "--preset", "bogus", "--mem-budget", BUDGET], "invalid",
        ["bogus"])
    add("plan/--config-dir", ["plan", "--config", M, "--mem-budget", BUDGET], "invalid",
        [M, "--config"])
    add("plan/--weights-dtype=q4", ["plan", "--preset", "smollm2-135m", "--weights-dtype", "q4",
                                    "--mem-budget", BUDGET], "invalid", ["--weights-dtype", "q4"])

    # random-model must not destroy a folder that holds something.
    def real_model(d):
        materialize(base, os.path.join(d, "victim"))
        os.makedirs(os.path.join(d, "notes"))
        open(os.path.join(d, "notes", "thesis.txt"), "w").write("years of work")

    def unchanged(sub):
        def check(d, before):
            return None if snapshot(os.path.join(d, sub)) == before else \
                "%s was modified" % sub
        check.sub = sub
        return check
    rm = ["random-model", "--preset", "smollm2-135m", "--layers", "1", "--dtype", "f32"]
    add("random-model/-o-real-model", rm + ["-o", "{D}/victim"], "invalid",
        ["{D}/victim", "--force", "not empty"], budget=False, check=unchanged("victim"),
        setup=real_model)
    add("random-model/-o-other-folder", rm + ["-o", "{D}/notes"], "invalid",
        ["{D}/notes", "--force", "not empty"], budget=False, check=unchanged("notes"),
        setup=real_model)
    add("random-model/-o-file", rm + ["-o", "{D}/notes/thesis.txt"], "invalid", ["thesis.txt"],
        budget=False, check=unchanged("notes"), setup=real_model)
    add("random-model/--layers=-1", rm[:-4] + ["--layers", "-1", "-o", "{D}/x"], "invalid",
        ["--layers"], budget=False)
    add("random-model/--preset=bogus", ["random-model", "--preset", "bogus", "-o", "{D}/x"],
        "invalid", ["bogus"], budget=False)
    add("random-model/--dtype=q4", rm[:-2] + ["--dtype", "q4", "-o", "{D}/x"], "invalid",
        ["q4", "--dtype"], budget=False)
    add("random-model/--max-pos=-5", rm + ["--max-pos", "-5", "-o", "{D}/x"], "invalid",
        ["--max-pos"], budget=False)
    return cases


# ---------------------------------------------------------------------------------------------
# Running


# Runs argv[3:] with stdout and stderr to argv[1], killed after argv[2] seconds; prints
# [wait status, ru_maxrss in KiB, timed out].
SPAWN = r"""
import json, os, resource, signal, sys
out, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
pid = os.fork()
if pid == 0:
    try:
        os.setpgrp()
        # A safety net for this machine, far above any budget the cases give.
        resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
timed_out = []
def kill(*_):
    timed_out.append(1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
signal.signal(signal.SIGALRM, kill)
signal.setitimer(signal.ITIMER_REAL, timeout)
while True:
    try:
        _, status, ru = os.wait4(pid, 0)
        break
    except InterruptedError:
        continue
signal.setitimer(signal.ITIMER_REAL, 0)
print(json.dumps([status, ru.ru_maxrss, bool(timed_out)]))
"""


def run_case(binary, case, scratch, timeout):
    d = tempfile.mkdtemp(prefix="c-", dir=scratch)
    try:
        args = case.setup(d)
        before = None
        if case.check:
            before = snapshot(os.path.join(d, case.check.sub))
        out_path = os.path.join(d, ".out")
        # ru_maxrss survives exec: a child forked from this (large) interpreter would report this
        # process's resident size. A fresh, small interpreter forks the command instead.
        t0 = time.time()
        w = subprocess.run([sys.executable, "-S", "-c", SPAWN, out_path, str(timeout), binary] +
                           args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 30)
        secs = time.time() - t0
        status, maxrss_kib, timed_out = json.loads(w.stdout)
        output = open(out_path, "rb").read().decode("utf-8", "replace")
        problem = None
        if case.check:
            problem = case.check(d, before)
        rc = os.waitstatus_to_exitcode(status)
        return classify(case, args, rc, output, maxrss_kib * 1024, timed_out, problem,
                        d, secs)
    except Exception as e:  # a bug of this script, reported as such
        return {"case": case.name, "verdict": "script-error", "why": repr(e), "args": [],
                "rc": None, "rss": 0, "secs": 0, "output": ""}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def classify(case, args, rc, output, rss, timed_out, problem, d, secs):
    shown = output.replace(d, "{D}")
    r = {"case": case.name, "args": [a.replace(d, "{D}") for a in args], "rc": rc, "rss": rss,
         "secs": round(secs, 2), "output": shown[-1500:]}
    low = output.lower()
    names = [n.replace("{D}", d) for n in case.names]
    if timed_out:
        r.update(verdict="hang", why="no exit within the timeout")
    elif rc < 0:
        r.update(verdict="crash", why="killed by signal %d" % -rc)
    elif "error: internal" in low or "please report" in low:
        r.update(verdict="crash", why="internal error: " + shown.strip().splitlines()[-1][:200])
    elif case.budget and rss > BUDGET_BYTES:
        r.update(verdict="budget", why="peak RSS %.0f MiB > budget %s" % (rss / 2 ** 20, BUDGET))
    elif problem:
        r.update(verdict="unclear", why=problem)
    elif case.expect == "invalid" and rc == 0:
        r.update(verdict="unclear", why="invalid input accepted (exit 0)")
    elif case.expect == "valid" and rc != 0:
        r.update(verdict="unclear", why="valid input refused: " + last_error(shown))
    elif rc != 0 and names and not any(n.lower() in low for n in names):
        r.update(verdict="unclear", why="message names none of %s: %s" % (case.names,
                                                                          last_error(shown)))
    elif rc != 0 and "error" not in low:
        r.update(verdict="unclear", why="non-zero exit %d without an error message" % rc)
    else:
        r.update(verdict="ok", why="")
    return r


def last_error(out):
    lines = [l for l in out.strip().splitlines() if l.strip()]
    for l in reversed(lines):
        if "error" in l.lower():
            return l.strip()[:300]
    return (lines[-1].strip()[:300] if lines else "(no output)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "longctx"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--only", default="", help="run only cases whose name contains this")
    ap.add_argument("--json", default="", help="write every case's result here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    if not os.access(binary, os.X_OK):
        sys.exit("no longctx binary at %s; build it (cmake --build build --target longctx)" % binary)
    rng = random.Random(a.seed)
    scratch = tempfile.mkdtemp(prefix="hostile-inputs-")
    t0 = time.time()
    try:
        # Private copies: cases hard-link these, never the shared originals.
        shutil.copytree(os.path.join(SHARED, "models", "stories260K"),
                        os.path.join(scratch, "base-stories260K"))
        stories = Base("stories260K", os.path.join(scratch, "base-stories260K"))
        text_path = os.path.join(SHARED, "text", "stories.txt")
        # Tiny checkpoints of the other families, with stories260K's tokenizer.
        tiny = {}
        for mt in ("mistral", "qwen2", "phi3"):
            p = os.path.join(scratch, "base-" + mt)
            os.makedirs(p)
            cfg, st = tiny_checkpoint(mt)
            open(os.path.join(p, "config.json"), "w").write(json.dumps(cfg))
            open(os.path.join(p, "model.safetensors"), "wb").write(st)
            shutil.copyfile(os.path.join(stories.path, "tokenizer.model"),
                            os.path.join(p, "tokenizer.model"))
            tiny[mt] = Base(mt, p)
        # A random-model checkpoint with a BPE tokenizer.json; the shared smollm2 tokenizer
        # replaces its synthetic one (same vocabulary size).
        rnd = os.path.join(scratch, "base-random")
        subprocess.run([binary, "random-model", "--preset", "smollm2-135m", "--layers", "1",
                        "--dtype", "bf16", "-o", rnd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.copyfile(os.path.join(SHARED, "tokenizers", "smollm2-bpe", "tokenizer.json"),
                        os.path.join(rnd, "tokenizer.json"))
        if os.path.exists(os.path.join(rnd, "tokenizer.model")):
            os.remove(os.path.join(rnd, "tokenizer.model"))
        bpe = Base("random-smollm2", rnd)
        for b in [stories, bpe] + list(tiny.values()):
            for f in b.files:
                os.chmod(os.path.join(b.path, f), 0o444)

        cases = []
        cases += config_cases(stories, rng)
        cases += config_semantic_cases(stories, tiny)
        cases += config_file_cases(stories, rng)
        cases += safetensors_cases(stories, rng, 60)
        cases += tokenizer_cases(stories, bpe, rng, 45)
        cases += gguf_cases(rng, 22)
        cases += flag_cases(stories, text_path)
        if a.only:
            cases = [c for c in cases if a.only in c.name]
        print("%d cases, %d at a time, timeout %gs, budget %s" % (len(cases), a.jobs, a.timeout,
                                                                 BUDGET), file=sys.stderr)
        results = []
        with ThreadPoolExecutor(max_workers=a.jobs) as ex:
            for i, r in enumerate(ex.map(lambda c: run_case(binary, c, scratch, a.timeout),
                                         cases)):
                results.append(r)
                if (i + 1) % 100 == 0:
                    print("  %d/%d (%.0fs)" % (i + 1, len(cases), time.time() - t0),
                          file=sys.stderr)
    finally:
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print("scratch kept in " + scratch, file=sys.stderr)
    count = {k: sum(r["verdict"] == k for r in results)
             for k in ("crash", "hang", "unclear", "budget", "script-error")}
    print("| bad inputs tried | crashes | hangs | unclear messages | budget breaks |")
    print("|-----------------:|--------:|------:|-----------------:|--------------:|")
    print("| %16d | %7d | %5d | %16d | %13d |" % (len(results), count["crash"], count["hang"],
                                                count["unclear"], count["budget"]))
    if count["script-error"]:
        print("(%d cases hit an error of this script)" % count["script-error"])
    print("\nwall time %.0fs\n" % (time.time() - t0))
    for kind in ("crash", "hang", "budget", "unclear", "script-error"):
        for r in results:
            if r["verdict"] == kind:
                print("%-8s %s\n         %s\n         rc=%s rss=%.0fMiB: %s" % (
                    kind.upper(), r["case"], " ".join(r["args"])[:300], r["rc"],
                    r["rss"] / 2 ** 20, r["why"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 1 if any(count.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
