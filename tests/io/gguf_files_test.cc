// GgufFile on real files written by llama.cpp's convert_hf_to_gguf.py and llama-quantize
// (../shared/gguf): metadata against the checkpoints' config.json, tensor directories against
// shapes, block sizes and bytes worked out by hand, tensor bytes against the source safetensors.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/gguf.h"
#include "io/test_util.h"
#include "io/weights.h"

namespace longctx::io {
namespace {

using testing::expect_error;

const std::string kGguf = std::string(LONGCTX_SHARED_DIR) + "/gguf/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Expected bytes of a tensor of `rows` x `cols` in a block type of (elems, bytes) per block.
uint64_t blocks_bytes(int64_t rows, int64_t cols, int64_t elems, int64_t bytes) {
  return static_cast<uint64_t>(rows * (cols / elems) * bytes);
}

// Every tensor's data lies in the file's data section, at data_offset + offset.
void expect_data_in_file(const GgufFile& g) {
  ASSERT_NE(g.file(), nullptr);
  const uint8_t* base = g.file()->data();
  for (const GgufTensor& t : g.tensors()) {
    EXPECT_EQ(t.data, base + g.data_offset() + t.offset) << t.name;
    EXPECT_LE(g.data_offset() + t.offset + t.nbytes, g.file()->size()) << t.name;
    EXPECT_EQ(t.offset % g.alignment(), 0u) << t.name;
  }
}

TEST(GgufFiles, Stories260KF32MetadataMatchesConfig) {
  const nlohmann::json cfg =
      read_json(std::string(LONGCTX_SHARED_DIR) + "/models/stories260K/config.json");
  auto g = GgufFile::open(kGguf + "stories260K-f32.gguf");
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->data_offset() % 32, 0u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_int("llama.block_count"), cfg["num_hidden_layers"].get<int64_t>());
  EXPECT_EQ(g->get_int("llama.block_count"), 5);
  EXPECT_EQ(g->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g->get_int("llama.embedding_length"), cfg["hidden_size"].get<int64_t>());
  EXPECT_EQ(g->get_int("llama.feed_forward_length"), cfg["intermediate_size"].get<int64_t>());
  EXPECT_EQ(g->get_int("llama.attention.head_count"), cfg["num_attention_heads"].get<int64_t>());
  EXPECT_EQ(g->get_int("llama.attention.head_count_kv"), cfg["num_key_value_heads"].get<int64_t>());
  EXPECT_EQ(g->get_int("llama.context_length"), 512);
  EXPECT_EQ(g->get_int("llama.context_length"), cfg["max_position_embeddings"].get<int64_t>());
  EXPECT_NEAR(g->get_float("llama.attention.layer_norm_rms_epsilon"),
              cfg["rms_norm_eps"].get<double>(), 1e-12);
  EXPECT_EQ(g->get_float("llama.rope.freq_base"), cfg["rope_theta"].get<double>());
  EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), cfg["bos_token_id"].get<int64_t>());
  EXPECT_EQ(g->get_int("tokenizer.ggml.eos_token_id"), cfg["eos_token_id"].get<int64_t>());
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");  // SentencePiece

  const auto tokens = g->get_strings("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(static_cast<int64_t>(tokens.size()), cfg["vocab_size"].get<int64_t>());
  // SentencePiece with byte fallback: <unk>, <s>, </s>, then the 256 byte pieces <0x00>..<0xFF>.
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[2], "</s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  EXPECT_EQ(tokens[3 + 0x41], "<0x41>");
  EXPECT_EQ(tokens[258], "<0xFF>");
  const auto types = g->get_ints("tokenizer.ggml.token_type");
  ASSERT_EQ(types.size(), 512u);
  // llama.cpp's token types: 1 normal, 2 unknown, 3 control, 6 byte.
  EXPECT_EQ(types[0], 2);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(types[2], 3);
  EXPECT_EQ(types[3], 6);
  EXPECT_EQ(types[258], 6);
  EXPECT_EQ(types[300], 1);
  const auto scores = g->get_floats("tokenizer.ggml.scores");
  ASSERT_EQ(scores.size(), 512u);
  EXPECT_GT(scores[300], scores[500]);  // merges are ranked: earlier pieces score higher

  // Optional forms: absent keys give nullopt, present ones their value.
  EXPECT_FALSE(g->opt_int("llama.rope.scaling.factor").has_value());
  EXPECT_EQ(g->opt_int("llama.block_count"), 5);
  EXPECT_EQ(g->opt_string("general.architecture"), "llama");
}

TEST(GgufFiles, Stories260KF32TensorsMatchSafetensors) {
  auto g = GgufFile::open(kGguf + "stories260K-f32.gguf");
  // 9 tensors per block, token embedding, final norm; the output matrix is tied (absent).
  ASSERT_EQ(g->tensors().size(), 5u * 9 + 2);
  EXPECT_EQ(g->find_tensor("output.weight"), nullptr);
  EXPECT_EQ(g->find_tensor("no.such.tensor"), nullptr);
  const std::map<std::string, std::vector<int64_t>> shapes = {
      {"token_embd.weight", {512, 64}},     {"output_norm.weight", {64}},
      {"blk.0.attn_q.weight", {64, 64}},    {"blk.0.attn_k.weight", {32, 64}},  // 4 kv heads x 8
      {"blk.4.attn_v.weight", {32, 64}},    {"blk.4.attn_output.weight", {64, 64}},
      {"blk.2.ffn_gate.weight", {172, 64}}, {"blk.2.ffn_up.weight", {172, 64}},
      {"blk.2.ffn_down.weight", {64, 172}}, {"blk.3.attn_norm.weight", {64}},
      {"blk.3.ffn_norm.weight", {64}}};
  for (const auto& [name, shape] : shapes) {
    const GgufTensor* t = g->find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, shape) << name;
    EXPECT_EQ(t->ggml_type, 0u);
    EXPECT_EQ(t->ggml_type_name, "F32");
    EXPECT_EQ(t->type, TensorType::kF32);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    EXPECT_EQ(t->nbytes, static_cast<uint64_t>(n) * 4) << name;
  }
  expect_data_in_file(*g);

  // Tensors the converter copies unchanged (no q/k permutation) hold the checkpoint's bytes.
  auto st = WeightSource::open_dir(std::string(LONGCTX_SHARED_DIR) + "/models/stories260K");
  const std::map<std::string, std::string> same = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight"},
      {"blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj.weight"},
      {"blk.4.attn_norm.weight", "model.layers.4.input_layernorm.weight"}};
  for (const auto& [gname, hname] : same) {
    const GgufTensor* t = g->find_tensor(gname);
    const TensorInfo& h = st->get(hname);
    ASSERT_EQ(t->nbytes, h.nbytes) << gname;
    EXPECT_EQ(std::memcmp(t->data, h.data, h.nbytes), 0) << gname;
    EXPECT_EQ(t->shape, h.shape) << gname;
  }
}

// Stories260K quantized by llama-quantize: matrices in the file type, except rows of 172 (not a
// multiple of 32), which fall back to F16, and the tied embedding, kept in Q8_0.
TEST(GgufFiles, Stories260KQuantizedTypesAndSizes) {
  struct Case {
    const char* file;
    uint32_t ggml_type;
    TensorType type;
    int64_t block_bytes;
  };
  for (const Case& c : {Case{"stories260K-q8_0.gguf", 8, TensorType::kQ8_0, 34},
                        Case{"stories260K-q4_0.gguf", 2, TensorType::kQ4_0, 18}}) {
    SCOPED_TRACE(c.file);
    auto g = GgufFile::open(kGguf + c.file);
    ASSERT_EQ(g->tensors().size(), 47u);
    EXPECT_EQ(g->get_int("general.file_type"), c.ggml_type == 8 ? 7 : 2);  // LLAMA_FTYPE_*
    for (int l = 0; l < 5; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"}) {
        const GgufTensor* t = g->find_tensor(b + m + ".weight");
        ASSERT_NE(t, nullptr) << b << m;
        EXPECT_EQ(t->ggml_type, c.ggml_type) << t->name;
        EXPECT_EQ(t->type, c.type) << t->name;
        EXPECT_EQ(t->nbytes, blocks_bytes(t->shape[0], t->shape[1], 32, c.block_bytes)) << t->name;
      }
      const GgufTensor* down = g->find_tensor(b + "ffn_down.weight");
      EXPECT_EQ(down->ggml_type_name, "F16");
      EXPECT_EQ(down->type, TensorType::kF16);
      EXPECT_EQ(down->nbytes, 64u * 172 * 2);
      EXPECT_EQ(g->find_tensor(b + "attn_norm.weight")->type, TensorType::kF32);
    }
    const GgufTensor* emb = g->find_tensor("token_embd.weight");
    EXPECT_EQ(emb->ggml_type_name, "Q8_0");
    EXPECT_EQ(emb->nbytes, 512u * 2 * 34);
    expect_data_in_file(*g);
  }
}

// Q4_K_M: Q4_K for most matrices, Q6_K for the output and some attn_v / ffn_down (llama-quantize
// spends more bits there); rows of 256 are one super-block.
TEST(GgufFiles, KQuantTinyModels) {
  for (const char* model : {"llama", "qwen2"}) {
    SCOPED_TRACE(model);
    const std::string dir = kGguf + model + "-kq-tiny/";
    const nlohmann::json cfg = read_json(dir + "config.json");
    auto g = GgufFile::open(dir + model + "-kq-tiny-q4_k_m.gguf");
    const std::string arch = model;
    EXPECT_EQ(g->get_string("general.architecture"), arch);
    EXPECT_EQ(g->get_int(arch + ".embedding_length"), cfg["hidden_size"].get<int64_t>());
    EXPECT_EQ(g->get_int(arch + ".block_count"), cfg["num_hidden_layers"].get<int64_t>());
    EXPECT_EQ(g->get_int(arch + ".attention.head_count_kv"),
              cfg["num_key_value_heads"].get<int64_t>());
    EXPECT_EQ(g->get_float(arch + ".rope.freq_base"), cfg["rope_theta"].get<double>());
    std::set<std::string> types;
    for (const GgufTensor& t : g->tensors()) {
      types.insert(t.ggml_type_name);
      if (t.ggml_type == 12) {
        EXPECT_EQ(t.type, TensorType::kQ4_K);
        EXPECT_EQ(t.nbytes, blocks_bytes(t.shape[0], t.shape[1], 256, 144)) << t.name;
      } else if (t.ggml_type == 14) {
        EXPECT_EQ(t.type, TensorType::kQ6_K);
        EXPECT_EQ(t.nbytes, blocks_bytes(t.shape[0], t.shape[1], 256, 210)) << t.name;
      } else {
        EXPECT_EQ(t.ggml_type_name, "F32") << t.name;
        EXPECT_EQ(t.shape.size(), 1u) << t.name;  // norms and biases
      }
    }
    EXPECT_EQ(types, (std::set<std::string>{"F32", "Q4_K", "Q6_K"}));
    const GgufTensor* out = g->find_tensor("output.weight");
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(out->ggml_type_name, "Q6_K");
    EXPECT_EQ(out->shape, (std::vector<int64_t>{512, 256}));
    EXPECT_EQ(out->nbytes, 512u * 210);
    EXPECT_EQ(g->find_tensor("blk.0.attn_q.weight")->ggml_type_name, "Q4_K");
    EXPECT_EQ(g->find_tensor("blk.0.attn_q.bias") != nullptr, arch == "qwen2");
    expect_data_in_file(*g);
  }
}

TEST(GgufFiles, VocabOnlyFilesHaveNoTensors) {
  struct Case {
    const char* file;
    const char* model;
    size_t n_tokens;
    bool merges;
  };
  for (const Case& c : {Case{"ggml-vocab-llama-spm.gguf", "llama", 32000, false},
                        Case{"ggml-vocab-llama-bpe.gguf", "gpt2", 128256, true},
                        Case{"ggml-vocab-phi-3.gguf", "llama", 32064, false},
                        Case{"ggml-vocab-qwen2.gguf", "gpt2", 151936, true}}) {
    SCOPED_TRACE(c.file);
    auto g = GgufFile::open(kGguf + "vocab/" + c.file);
    EXPECT_TRUE(g->tensors().empty());
    EXPECT_EQ(g->get_string("tokenizer.ggml.model"), c.model);
    EXPECT_EQ(g->get_strings("tokenizer.ggml.tokens").size(), c.n_tokens);
    EXPECT_EQ(g->get_ints("tokenizer.ggml.token_type").size(), c.n_tokens);
    EXPECT_EQ(g->has("tokenizer.ggml.merges"), c.merges);
    if (c.merges) {
      EXPECT_GT(g->get_strings("tokenizer.ggml.merges").size(), 100000u);
    } else {
      EXPECT_EQ(g->get_floats("tokenizer.ggml.scores").size(), c.n_tokens);
    }
  }
}

TEST(GgufFiles, MissingFileIsAnIoError) {
  expect_error([] { GgufFile::open(kGguf + "no-such-file.gguf"); }, ErrorKind::kIo,
               {"no-such-file.gguf"});
}

// The block layouts of every ggml type, as listed by gguf-py's GGML_QUANT_SIZES (block
// elements, block bytes), written out here by hand.
TEST(GgmlTypeInfo, EveryTypeTheFormatDefines) {
  struct Row {
    uint32_t type;
    const char* name;
    int64_t elems, bytes;
  };
  const Row rows[] = {{0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
                      {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
                      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 40},      {10, "Q2_K", 256, 84},
                      {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
                      {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
                      {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
                      {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
                      {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
                      {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
                      {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
                      {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17}};
  std::set<uint32_t> defined;
  for (const Row& r : rows) {
    const auto info = ggml_type_info(r.type);
    ASSERT_TRUE(info.has_value()) << r.name;
    EXPECT_STREQ(info->name, r.name);
    EXPECT_EQ(info->block_elems, r.elems) << r.name;
    EXPECT_EQ(info->block_bytes, r.bytes) << r.name;
    defined.insert(r.type);
  }
  for (uint32_t t = 0; t < 64; ++t)
    if (!defined.count(t)) {
      EXPECT_FALSE(ggml_type_info(t).has_value()) << t;
    }
  EXPECT_FALSE(ggml_type_info(UINT32_MAX).has_value());
  // The types longctx computes with agree with core/tensor_type.h.
  for (auto [ggml, t] : std::vector<std::pair<uint32_t, TensorType>>{{0, TensorType::kF32},
                                                                     {1, TensorType::kF16},
                                                                     {30, TensorType::kBF16},
                                                                     {8, TensorType::kQ8_0},
                                                                     {2, TensorType::kQ4_0},
                                                                     {12, TensorType::kQ4_K},
                                                                     {13, TensorType::kQ5_K},
                                                                     {14, TensorType::kQ6_K},
                                                                     {6, TensorType::kQ5_0},
                                                                     {7, TensorType::kQ5_1}}) {
    EXPECT_EQ(ggml_type_info(ggml)->block_elems, block_layout(t).elems);
    EXPECT_EQ(ggml_type_info(ggml)->block_bytes, block_layout(t).bytes);
    EXPECT_EQ(ggml_compute_type(ggml), t);
    EXPECT_EQ(ggml_type_number(t), ggml);
  }
  for (uint32_t other : {3u, 9u, 10u, 11u, 15u, 20u, 23u, 24u, 26u, 28u, 39u})
    EXPECT_FALSE(ggml_compute_type(other).has_value()) << other;
}

TEST(GgufTypeName, EveryValueType) {
  const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                         "bool", "string", "array", "u64", "i64", "f64"};
  for (uint32_t t = 0; t <= 12; ++t)
    EXPECT_STREQ(gguf_type_name(static_cast<GgufType>(t)), names[t]);
}

}  // namespace
}  // namespace longctx::io
