#!/usr/bin/env python3
"""Writes the seed corpora of the harnesses added for issue 19 (fuzz/corpus/NAME): small valid
and near-valid inputs made here, or taken from the repository's own test fixtures. Deterministic;
rerun after editing and commit the output:  python3 fuzz/make_seeds.py
Harnesses: safetensors, safetensors_index, model_config, tokenizer_json, sentencepiece,
chat_template (the corpora of gguf, gguf_tokenizer, hook_spec and http_request are kept by hand).
"""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def write_corpus(name, seeds):
    d = os.path.join(CORPUS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for fname, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


def js(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- safetensors ---------------------------------------------------------------------------------

def safetensors(tensors, metadata=None, pad=True, extra=b""):
    """tensors: list of (name, dtype, shape, data bytes); offsets laid out in order."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = js(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob + extra


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def safetensors_seeds():
    s = {}
    s["f32_2x2"] = safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))])
    s["mixed_meta"] = safetensors(
        [("a.weight", "BF16", [3], b"\x80\x3f" * 3), ("b.bias", "F16", [2], b"\x00\x3c" * 2),
         ("c", "F32", [], f32(0.5))], metadata={"format": "pt"})
    s["unsupported_i8"] = safetensors([("ids", "I64", [2], struct.pack("<2q", 1, 2)),
                                       ("q", "I8", [4], b"\x01\x02\x03\x04"),
                                       ("w", "F32", [1], f32(1))])
    s["empty_tensors"] = safetensors([("e", "F32", [0, 4], b""), ("z", "F16", [2, 0], b""),
                                      ("w", "F32", [1, 1], f32(2))])
    s["no_tensors"] = safetensors([], metadata={})
    s["unpadded"] = safetensors([("x", "F16", [1], b"\x00\x3c")], pad=False)
    s["trailing_bytes"] = safetensors([("x", "F32", [1], f32(1))], extra=b"\0" * 7)
    # Near-valid (refused): truncated data, overlap, reversed offsets, wrong size, short file.
    s["truncated"] = safetensors([("w", "F32", [4], f32(1, 2, 3, 4))])[:-5]
    s["bad_len"] = struct.pack("<Q", 1 << 40) + b"{}"
    s["short"] = b"\x02\x00\x00"
    # Header only (the harness adds the length and 256 data bytes when the input starts with '{').
    s["h_overlap"] = js({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})
    s["h_reversed"] = js({"a": {"dtype": "F16", "shape": [1], "data_offsets": [8, 6]}})
    s["h_size_mismatch"] = js({"a": {"dtype": "BF16", "shape": [3, 5], "data_offsets": [0, 16]}})
    s["h_big_shape"] = js({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 0],
                                 "data_offsets": [0, 0]}})
    s["h_meta_types"] = js({"__metadata__": {"k": 1, "s": "v", "n": None},
                            "x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})
    s["h_not_object"] = '[{"dtype":"F32"}]'
    return s


# --- model.safetensors.index.json --------------------------------------------------------------

def index_seeds():
    s = {}
    s["two_shards"] = js({"metadata": {"total_size": 1024}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}})
    s["subdir"] = js({"weight_map": {"a": "shards/part-1.safetensors", "b": "./b.safetensors"}})
    s["dotdot"] = js({"weight_map": {"a": "../outside.safetensors"}})
    s["absolute"] = js({"weight_map": {"a": "/etc/passwd"}})
    s["empty_map"] = js({"weight_map": {}})
    s["not_string"] = js({"weight_map": {"a": 3, "b": None}})
    s["no_map"] = js({"metadata": {}})
    s["array"] = "[1,2]"
    s["truncated"] = js({"weight_map": {"a": "x.safetensors"}})[:-4]
    return s


# --- config.json -------------------------------------------------------------------------------

def config_seeds():
    base = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 300, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16"}

    def cfg(**kw):
        c = dict(base)
        for k, v in kw.items():
            if v is None and k.startswith("drop_"):
                c.pop(k[5:], None)
            else:
                c[k] = v
        return js(c)

    rot_half = 8  # head_dim 16
    s = {}
    s["llama"] = cfg()
    s["llama3"] = cfg(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 64},
                      eos_token_id=[2, 3], attention_bias=True, mlp_bias=True)
    s["linear"] = cfg(rope_scaling={"type": "linear", "factor": 2.0})
    s["dynamic"] = cfg(rope_scaling={"type": "dynamic", "factor": 4.0}, hidden_act="silu")
    s["yarn"] = cfg(model_type="qwen2", rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
        "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        use_sliding_window=True, sliding_window=32, max_window_layers=1)
    s["yarn_attn"] = cfg(rope_scaling={"rope_type": "yarn", "factor": 2.0,
                                       "attention_factor": 1.2, "truncate": False})
    s["phi3_longrope"] = cfg(model_type="phi3", drop_num_key_value_heads=None,
                             original_max_position_embeddings=64, sliding_window=128,
                             partial_rotary_factor=0.75,
                             rope_scaling={"type": "longrope",
                                           "short_factor": [1.0] * 6,
                                           "long_factor": [1.5 + i for i in range(6)]})
    s["phi3_su"] = cfg(model_type="phi3", rope_scaling={
        "type": "su", "short_factor": [1.0] * rot_half, "long_factor": [2.0] * rot_half,
        "factor": 4.0, "attention_factor": 1.1})
    s["mistral"] = cfg(model_type="mistral", sliding_window=None, head_dim=16,
                       drop_bos_token_id=None, drop_eos_token_id=None)
    s["qwen2_layer_types"] = cfg(model_type="qwen2", use_sliding_window=True, sliding_window=16,
                                 layer_types=["full_attention", "sliding_attention"])
    s["rope_parameters"] = cfg(drop_rope_theta=None, rope_parameters={
        "rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0,
        "partial_rotary_factor": 0.5})
    # Near-valid (refused).
    s["bad_heads"] = cfg(num_key_value_heads=3)
    s["bad_rope_type"] = cfg(rope_scaling={"type": "ntk-by-parts", "factor": 2})
    s["short_factors"] = cfg(model_type="phi3", rope_scaling={
        "type": "longrope", "short_factor": [1.0], "long_factor": [1.0]})
    s["huge_orig"] = cfg(rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 1e30})
    s["unknown_arch"] = cfg(model_type="gpt_neox")
    s["string_number"] = cfg(hidden_size="64")
    s["no_model_type"] = cfg(drop_model_type=None)
    s["bad_eos"] = cfg(eos_token_id=[2, 300])
    s["not_object"] = "[]"
    return s


# --- tokenizer.json ----------------------------------------------------------------------------

def tokenizer_json_seeds():
    s = {}
    with open(os.path.join(ROOT, "tests", "tokenizer", "fixtures", "mini_tokenizers.json")) as f:
        for t in json.load(f)["tokenizers"]:
            s["mini_" + t["name"]] = js(t["tokenizer"])
    # A hand-made byte-level BPE with merges, an added token and side files (NUL-separated).
    bl = {}
    chars = [chr(c) for c in range(33, 127)]
    for i, c in enumerate(chars):
        bl[c] = i
    bl["\u0120"] = len(bl)
    bl["he"] = len(bl)
    bl["\u0120w"] = len(bl)
    tiny = {"version": "1.0", "added_tokens": [
        {"id": len(bl), "content": "<|endoftext|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
                  "byte_fallback": False, "vocab": bl, "merges": ["h e", "\u0120 w"]}}
    s["tiny_bytelevel"] = js(tiny)
    s["tiny_side_files"] = (js(tiny) + "\0" + js({"bos_token": "<|endoftext|>",
                                                  "eos_token": {"content": "<|endoftext|>"}})
                            + "\0" + js({"bos_token_id": 5, "eos_token_id": [6, 7]}))
    s["side_out_of_range"] = js(tiny) + "\0{}\0" + js({"bos_token_id": 2147483647,
                                                        "eos_token_id": -5})
    # Metaspace with byte fallback and an unk token, merges as pairs.
    ms_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        ms_vocab["<0x%02X>" % b] = len(ms_vocab)
    for p in ["\u2581", "a", "b", "\u2581a", "ab"]:
        ms_vocab[p] = len(ms_vocab)
    s["metaspace_fallback"] = js({
        "added_tokens": [{"id": 1, "content": "<s>", "special": True, "normalized": False,
                          "lstrip": False, "rstrip": False, "single_word": False}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {
                               "<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ",
                                                         "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": ms_vocab, "merges": [["\u2581", "a"], ["a", "b"]]}})
    # Near-valid (refused).
    s["bad_merge"] = js({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a zz"]}})
    s["huge_id"] = js({"model": {"type": "BPE", "vocab": {"a": 0, "b": 20000000}, "merges": []}})
    s["wordpiece"] = js({"model": {"type": "WordPiece", "vocab": {"a": 0}}})
    s["truncated"] = js(tiny)[:200]
    return s


# --- tokenizer.model ---------------------------------------------------------------------------

def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    return varint((num << 3) | wire) + payload


def bytes_f(num, data):
    if isinstance(data, str):
        data = data.encode()
    return field(num, 2, varint(len(data)) + data)


def int_f(num, v):
    return field(num, 0, varint(v))


def float_f(num, x):
    return field(num, 5, struct.pack("<f", x))


def spm_model(pieces, model_type=2, byte_fallback=True, unk=0, bos=1, eos=2,
              normalizer="identity", dummy_prefix=True, trainer=True, norm=True):
    """pieces: list of (text, score, type); type 1 normal, 2 unknown, 3 control, 4 user, 6 byte."""
    out = b""
    for text, score, typ in pieces:
        out += bytes_f(1, bytes_f(1, text) + float_f(2, score) + int_f(3, typ))
    if trainer:
        t = int_f(3, model_type) + int_f(4, len(pieces)) + int_f(35, int(byte_fallback))
        t += int_f(40, unk) + int_f(41, bos) + int_f(42, eos) + int_f(43, -1)
        out += bytes_f(2, t)
    if norm:
        out += bytes_f(3, bytes_f(1, normalizer) + int_f(3, int(dummy_prefix)) + int_f(4, 0)
                       + int_f(5, 1))
    return out


def sentencepiece_seeds():
    base = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    byte_pieces = [("<0x%02X>" % b, 0.0, 6) for b in range(256)]
    words = [("\u2581", -1.0, 1)] + [(c, -2.0 - i * 0.01, 1) for i, c in
                                     enumerate("abcdefghijklmnopqrstuvwxyz")]
    words += [("\u2581a", -3.0, 1), ("ab", -3.5, 1), ("\u2581hello", -4.0, 1),
              ("<|user|>", 0.0, 4)]
    s = {}
    s["bpe_bytes"] = spm_model(base + byte_pieces + words)
    s["bpe_no_bytes"] = spm_model(base + words, byte_fallback=False)
    s["unigram"] = spm_model(base + words, model_type=1, byte_fallback=False)
    s["no_dummy_prefix"] = spm_model(base + words, byte_fallback=False, dummy_prefix=False)
    s["no_bos"] = spm_model([("<unk>", 0.0, 2), ("a", -1.0, 1), ("\u2581", -1.0, 1)],
                            bos=-1, eos=-1, byte_fallback=False)
    # Near-valid (refused, by longctx's framing check or by libsentencepiece).
    whole = spm_model(base + words, byte_fallback=False)
    s["truncated"] = whole[:-9]
    s["no_trainer"] = spm_model(base + words, trainer=False)
    s["no_pieces"] = spm_model([])
    s["bad_ids"] = spm_model(base + words, unk=1000, bos=2000, byte_fallback=False)
    s["dup_piece"] = spm_model(base + [("a", -1.0, 1), ("a", -2.0, 1)], byte_fallback=False)
    s["bad_normalizer"] = spm_model(base + words, normalizer="nfkc_made_up", byte_fallback=False)
    return s


# --- chat templates (tokenizer_config.json) ----------------------------------------------------

def chat_template_seeds():
    with open(os.path.join(ROOT, "tests", "runtime", "fixtures", "chat_templates.json")) as f:
        templates = json.load(f)["templates"]
    s = {}
    for i, t in enumerate(templates):
        s["%02d_%s" % (i, t["family"])] = js({"bos_token": "<s>", "eos_token": "</s>",
                                              "chat_template": t["template"]})
    t0 = templates[0]["template"]
    s["named_default"] = js({"chat_template": [{"name": "tool_use", "template": "{{ x }}"},
                                               {"name": "default", "template": t0}]})
    s["named_no_default"] = js({"chat_template": [{"name": "rag", "template": "{{ x }}"}]})
    s["named_bad_entry"] = js({"chat_template": [{"name": 1}]})
    s["not_a_string"] = js({"chat_template": 42})
    s["null"] = js({"chat_template": None})
    s["no_template"] = js({"model_max_length": 4096})
    s["raw_jinja_chatml"] = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                             "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
                             "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                             "{% endif %}")
    s["unknown_template"] = js({"chat_template": "{{ messages | tojson }}"})
    return s


def main():
    write_corpus("safetensors", safetensors_seeds())
    write_corpus("safetensors_index", index_seeds())
    write_corpus("model_config", config_seeds())
    write_corpus("tokenizer_json", tokenizer_json_seeds())
    write_corpus("sentencepiece", sentencepiece_seeds())
    write_corpus("chat_template", chat_template_seeds())


if __name__ == "__main__":
    main()
