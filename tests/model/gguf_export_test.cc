// export_gguf (longctx quantize) against llama.cpp's own files (../shared/gguf, made by its
// convert_hf_to_gguf.py and llama-quantize from the same folders): the same tensors (names,
// shapes, types, bytes), model metadata and tokenizer arrays. And per family, a random-weight
// checkpoint written as GGUF runs as the folder does (logits at every position of a prompt).
#include "model/gguf_export.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/thread_pool.h"
#include "io/gguf.h"
#include "model/decoder.h"
#include "model/reference_model.h"
#include "model/test_util.h"
#include "runtime/session.h"
#include "tokenizer/gguf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace longctx {
namespace {

std::string shared(const std::string& p) { return test::shared_dir() + "/" + p; }

std::string export_to(const std::string& dir, ExportType t, const std::string& name) {
  const std::string out = test::scratch_dir("export-" + name) + "/" + name + ".gguf";
  GgufExportOptions o;
  o.type = t;
  export_gguf(dir, out, o);
  return out;
}

size_t elem_size(io::GgufType t) {
  switch (t) {
    case io::GgufType::kU8:
    case io::GgufType::kI8:
    case io::GgufType::kBool:
      return 1;
    case io::GgufType::kU16:
    case io::GgufType::kI16:
      return 2;
    case io::GgufType::kU64:
    case io::GgufType::kI64:
    case io::GgufType::kF64:
      return 8;
    default:
      return 4;
  }
}

// The same type and value (arrays element by element).
void expect_same_value(const std::string& key, const io::GgufValue& a, const io::GgufValue& b) {
  ASSERT_EQ(a.type, b.type) << key;
  if (a.type == io::GgufType::kString) {
    EXPECT_EQ(a.str, b.str) << key;
  } else if (a.type == io::GgufType::kArray) {
    ASSERT_EQ(a.elem, b.elem) << key;
    ASSERT_EQ(a.count, b.count) << key;
    if (a.elem == io::GgufType::kString) {
      for (size_t i = 0; i < a.strs.size(); ++i)
        ASSERT_EQ(a.strs[i], b.strs[i]) << key << "[" << i << "]";
    } else {
      EXPECT_EQ(0, std::memcmp(a.array_data, b.array_data, a.count * elem_size(a.elem))) << key;
    }
  } else {
    EXPECT_EQ(a.i, b.i) << key;
    EXPECT_EQ(a.u, b.u) << key;
    EXPECT_EQ(a.f, b.f) << key;
  }
}

struct Case {
  const char* folder;  // under ../shared
  ExportType type;
  const char* reference;  // llama.cpp's file, under ../shared/gguf
  const char* name;
};

class AgainstLlamaCpp : public ::testing::TestWithParam<Case> {};

TEST_P(AgainstLlamaCpp, SameTensorsMetadataAndVocabulary) {
  const Case c = GetParam();
  const std::string out = export_to(shared(c.folder), c.type, c.name);
  const auto ours = io::GgufFile::open(out);
  const auto ref = io::GgufFile::open(shared(std::string("gguf/") + c.reference));

  // Metadata: every key of llama.cpp's file with the same value, and no other key. (general.name
  // and size_label are llama.cpp's guesses from the folder's name and parameter count.)
  const std::set<std::string> free_keys = {"general.name", "general.size_label"};
  for (const auto& [key, value] : ref->metadata()) {
    if (free_keys.count(key)) continue;
    const io::GgufValue* v = ours->find(key);
    ASSERT_NE(v, nullptr) << "missing " << key;
    expect_same_value(key, value, *v);
  }
  for (const auto& [key, value] : ours->metadata())
    if (!free_keys.count(key)) {
      EXPECT_TRUE(ref->has(key)) << "extra key " << key;
    }

  // Tensors: names, shapes and types exactly; bytes counted per tensor.
  ASSERT_EQ(ours->tensors().size(), ref->tensors().size());
  size_t differing = 0;
  for (const io::GgufTensor& r : ref->tensors()) {
    const io::GgufTensor* t = ours->find_tensor(r.name);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->shape, r.shape) << r.name;
    ASSERT_EQ(t->ggml_type_name, r.ggml_type_name) << r.name;
    ASSERT_EQ(t->nbytes, r.nbytes) << r.name;
    if (std::memcmp(t->data, r.data, r.nbytes) != 0) {
      ++differing;
      ADD_FAILURE() << r.name << " (" << r.ggml_type_name << ") differs from llama.cpp's bytes";
    }
  }
  EXPECT_EQ(differing, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Shared, AgainstLlamaCpp,
    ::testing::Values(
        Case{"models/stories260K", ExportType::kF32, "stories260K-f32.gguf", "stories_f32"},
        Case{"models/stories260K", ExportType::kQ8_0, "stories260K-q8_0.gguf", "stories_q8_0"},
        Case{"models/stories260K", ExportType::kQ4_0, "stories260K-q4_0.gguf", "stories_q4_0"},
        Case{"gguf/llama-kq-tiny", ExportType::kF32, "llama-kq-tiny/llama-kq-tiny-f32.gguf",
             "kq_f32"},
        Case{"gguf/llama-kq-tiny", ExportType::kQ8_0, "llama-kq-tiny/llama-kq-tiny-q8_0.gguf",
             "kq_q8_0"},
        Case{"gguf/llama-kq-tiny", ExportType::kQ4_0, "llama-kq-tiny/llama-kq-tiny-q4_0.gguf",
             "kq_q4_0"},
        Case{"gguf/llama-kq-tiny", ExportType::kQ4_K_M, "llama-kq-tiny/llama-kq-tiny-q4_k_m.gguf",
             "kq_q4_k_m"},
        Case{"gguf/qwen2-kq-tiny", ExportType::kQ8_0, "qwen2-kq-tiny/qwen2-kq-tiny-q8_0.gguf",
             "qwen2_q8_0"},
        Case{"gguf/qwen2-kq-tiny", ExportType::kQ4_K_M, "qwen2-kq-tiny/qwen2-kq-tiny-q4_k_m.gguf",
             "qwen2_q4_k_m"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ---- Round trip per family ----

// Worst |a - b| over a row of logits relative to that row's largest |b| (the logit scale: a tied
// embedding of amplitude 1 gives logits 8x those of a 1/sqrt(hidden) head).
double worst_scaled(const std::vector<float>& a, const std::vector<float>& b, size_t vocab) {
  double w = 0;
  for (size_t r = 0; r + vocab <= b.size(); r += vocab) {
    double scale = 0, err = 0;
    for (size_t i = r; i < r + vocab; ++i) {
      scale = std::max(scale, std::abs(double(b[i])));
      err = std::max(err, std::abs(double(a[i]) - b[i]));
    }
    w = std::max(w, err / scale);
  }
  return w;
}

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids) {
  ThreadPool pool(2);
  SessionOptions so;
  so.context = static_cast<int64_t>(ids.size());
  so.prefill_chunk = 16;
  so.kv_k = so.kv_v = KvType::kF32;
  Session s(m, pool, so);
  std::vector<float> logits;
  s.append(ids, &logits);
  return logits;
}

// Worst |a - b| / (1 + |b|).
double worst_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i)
    w = std::max(w, std::abs(double(a[i]) - b[i]) / (1.0 + std::abs(double(b[i]))));
  return w;
}

struct Family {
  const char* fixture;  // a fixture case of tests/model (gen_rope_fixture.py)
  size_t prompt;
};

class RoundTrip : public ::testing::TestWithParam<Family> {};

TEST_P(RoundTrip, GgufGivesTheFoldersLogits) {
  const Family f = GetParam();
  nlohmann::json cfg = test::fixture_case(f.fixture)["config"];
  // GGUF holds one sliding window for every layer: give qwen2 none.
  if (cfg["model_type"] == "qwen2") cfg.erase("use_sliding_window");
  RandomCheckpointOptions o;
  o.config_json = cfg.dump();
  o.dtype = DType::kF32;
  o.seed = 11;
  const std::string dir = test::random_checkpoint_dir(std::string("rt-") + f.fixture, o);
  const auto folder = Model::load(dir, WeightMemory::kMapped);
  const std::vector<int32_t> ids = test::tokens(f.prompt, 5);
  const std::vector<float> want = all_logits(*folder, ids);

  const std::string f32 = export_to(dir, ExportType::kF32, std::string(f.fixture) + "-f32");
  const auto g = Model::load(f32, WeightMemory::kMapped);
  EXPECT_EQ(g->config().rope_scaling.type, folder->config().rope_scaling.type);
  EXPECT_EQ(g->config().layer_window, folder->config().layer_window);
  const std::vector<float> got = all_logits(*g, ids);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(worst_rel(got, want), 1e-4);

  // Q8_0: each weight within half a step of 1/127 of its block's largest magnitude, activations
  // rounded to Q8_0 too (as llama.cpp does): measured 0.7-1.2% of the row's largest logit.
  const std::string q8 = export_to(dir, ExportType::kQ8_0, std::string(f.fixture) + "-q8");
  const std::vector<float> gq = all_logits(*Model::load(q8, WeightMemory::kMapped), ids);
  const double wq = worst_scaled(gq, want, static_cast<size_t>(folder->config().vocab_size));
  EXPECT_LT(wq, 2.5e-2) << "Q8_0 logits vs the folder's";
  RecordProperty("q8_0_worst_rel", std::to_string(wq));
  std::printf("%s: Q8_0 worst logit error / row max |logit| %.4g\n", f.fixture, wq);

  // The tokenizer in the file encodes as the folder's tokenizer.json does.
  const auto tj = load_tokenizer(dir);
  const auto tg = load_gguf_tokenizer(f32);
  for (const char* text : {"hello world, the quick brown fox", " leading space and 123 digits",
                           "mixed\nlines\tand  spaces"})
    EXPECT_EQ(tg->encode(text, true), tj->encode(text, true)) << text;
}

INSTANTIATE_TEST_SUITE_P(Families, RoundTrip,
                         ::testing::Values(Family{"tiny-llama31", 40}, Family{"tiny-mistral", 40},
                                           Family{"tiny-qwen2-yarn", 40},
                                           Family{"tiny-phi3-longrope", 60},
                                           Family{"tiny-phi3-mini-4k", 30}),
                         [](const ::testing::TestParamInfo<Family>& i) {
                           std::string n = i.param.fixture;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// The GGUF tokenizer of stories260K's export encodes as the folder's tokenizer.model does.
TEST(Export, SentencePieceTokenizerEncodesAsTheFolder) {
  const std::string out = export_to(shared("models/stories260K"), ExportType::kQ8_0, "spm");
  const auto tg = load_gguf_tokenizer(out);
  const auto ts = load_tokenizer(shared("models/stories260K"));
  for (const char* text : {"Once upon a time, there was a little girl.", "Lily said \"hi!\" 42"})
    EXPECT_EQ(tg->encode(text, true), ts->encode(text, true)) << text;
}

TEST(Export, ParsesTypesAndNamesThem) {
  EXPECT_EQ(parse_export_type("Q4_K_M"), ExportType::kQ4_K_M);
  EXPECT_EQ(parse_export_type("f16"), ExportType::kF16);
  EXPECT_FALSE(parse_export_type("q5_k_m"));
  EXPECT_EQ(export_file_type(ExportType::kQ8_0), 7u);  // llama_ftype MOSTLY_Q8_0
  EXPECT_EQ(export_file_type(ExportType::kQ4_K_M), 15u);
}

// Rows that 256 does not divide: llama-quantize's Q4_K_M makes Q4_K rows Q5_0 (Q6_K rows Q8_0, and
// F16 where not even 32 divides the row); its Q5_0 / Q5_1 put every matrix in that type with a
// Q6_K output head (stories260K ties it to the 64-column embedding: Q8_0). The file types are
// llama.cpp's numbers.
TEST(Export, Q5TypesAndTheQ4_K_MFallbacks) {
  struct Want {
    ExportType type;
    int64_t file_type;
    const char* attn_q;  // 64 columns
    const char* ffn_down;  // 172 columns
  };
  for (const Want& w : {Want{ExportType::kQ4_K_M, 15, "Q5_0", "F16"},
                        Want{ExportType::kQ5_0, 8, "Q5_0", "F16"},
                        Want{ExportType::kQ5_1, 9, "Q5_1", "F16"}}) {
    const std::string out = export_to(shared("models/stories260K"), w.type,
                                      std::string("fb-") + export_type_name(w.type));
    const auto f = io::GgufFile::open(out);
    SCOPED_TRACE(export_type_name(w.type));
    EXPECT_EQ(f->get_int("general.file_type"), w.file_type);
    EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->ggml_type_name, w.attn_q);
    EXPECT_EQ(f->find_tensor("blk.4.ffn_up.weight")->ggml_type_name, w.attn_q);
    EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->ggml_type_name, w.ffn_down);
    EXPECT_EQ(f->find_tensor("token_embd.weight")->ggml_type_name, "Q8_0");
  }
  EXPECT_EQ(parse_export_type("Q5_1"), ExportType::kQ5_1);
}

TEST(Export, F16KeepsNormsInF32) {
  const std::string out = export_to(shared("models/stories260K"), ExportType::kF16, "f16");
  const auto f = io::GgufFile::open(out);
  EXPECT_EQ(f->get_int("general.file_type"), 1);
  EXPECT_EQ(f->find_tensor("token_embd.weight")->ggml_type_name, "F16");
  EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->ggml_type_name, "F16");
  EXPECT_EQ(f->find_tensor("blk.0.attn_norm.weight")->ggml_type_name, "F32");
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

// What llama.cpp's convert_hf_to_gguf.py needs of a random-model folder beyond the weights:
// "architectures" in config.json (it picks the converter class from it) and a tokenizer.model
// (Phi-3's converter requires one; a synthetic tokenizer.json's pre-tokenizer hash is unknown to
// it). The SentencePiece model must load in libsentencepiece, hold vocab_size pieces with the
// special ids of config.json, and round-trip text.
TEST(RandomModelForLlamaCpp, HasArchitecturesAndASentencePieceModel) {
  for (const char* fixture : {"tiny-phi3-mini-4k", "tiny-qwen2-yarn"}) {
    RandomCheckpointOptions o;
    o.config_json = test::fixture_case(fixture)["config"].dump();
    o.dtype = DType::kF32;
    const std::string dir = test::random_checkpoint_dir(std::string("lcpp-") + fixture, o);
    const nlohmann::json cfg = test::read_json(dir + "/config.json");
    ASSERT_TRUE(cfg.contains("architectures")) << fixture;
    if (cfg["model_type"] == "phi3") {  // Phi3MiniModel reads it unconditionally
      EXPECT_TRUE(cfg.contains("original_max_position_embeddings"));
    }
    EXPECT_EQ(cfg["architectures"][0],
              cfg["model_type"] == "phi3" ? "Phi3ForCausalLM" : "Qwen2ForCausalLM");
    const auto spm = load_sentencepiece(dir + "/tokenizer.model");
    EXPECT_EQ(spm->vocab_size(), cfg["vocab_size"].get<int64_t>()) << fixture;
    const std::string text = "the quick brown fox, 42 times";
    const std::vector<int32_t> ids = spm->encode(text, false);
    EXPECT_LT(ids.size(), text.size()) << "some pieces merge letters";
    EXPECT_EQ(spm->decode(ids), text);
    EXPECT_EQ(spm->token_bytes(0x41 + 3), "A");  // byte pieces <0x00>.. start at id 3
  }
}

}  // namespace
}  // namespace longctx
