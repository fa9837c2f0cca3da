// The decoder refuses checkpoints that do not match their config, with messages naming the tensor,
// and maps architectures (fused Phi-3 projections) onto the same computation.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/weights.h"
#include "model/decoder.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"
#include "runtime/session.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

const char* kTinyLlama =
    R"({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 64, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2})";

std::string make_tiny(const std::string& name, DType dtype = DType::kF32) {
  RandomCheckpointOptions o;
  o.config_json = kTinyLlama;
  o.dtype = dtype;
  o.seed = 7;
  return test::random_checkpoint_dir(name, o);
}

// Rewrites DIR/model.safetensors keeping the tensors `keep` accepts, renaming/merging via `edit`.
void rewrite_weights(const std::string& dir,
                     const std::function<void(const io::WeightSource&,
                                              std::vector<io::TensorToWrite>&,
                                              std::vector<std::vector<uint8_t>>&)>& edit) {
  std::vector<io::TensorToWrite> out;
  std::vector<std::vector<uint8_t>> store;
  {
    auto src = io::WeightSource::open_dir(dir);
    edit(*src, out, store);
    // Copy data now: the source mapping goes away before writing.
    for (auto& t : out) {
      bool owned = false;
      for (auto& s : store) owned |= s.data() == t.data;
      if (!owned) {
        size_t n = dtype_size(t.dtype);
        for (int64_t d : t.shape) n *= d;
        store.emplace_back(static_cast<const uint8_t*>(t.data),
                           static_cast<const uint8_t*>(t.data) + n);
        t.data = store.back().data();
      }
    }
  }
  io::write_safetensors(dir + "/model.safetensors.new", out);
  fs::rename(dir + "/model.safetensors.new", dir + "/model.safetensors");
}

template <class F>
void expect_error(F&& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    FAIL() << "no error; expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(ModelErrors, MissingTensorIsNamed) {
  const std::string dir = make_tiny("missing_tensor");
  rewrite_weights(dir, [](const io::WeightSource& w, auto& out, auto&) {
    for (const auto& [name, t] : w.tensors())
      if (name != "model.layers.1.mlp.up_proj.weight")
        out.push_back({name, *float_dtype(t.type), t.shape, t.data});
  });
  expect_error([&] { Model::load(dir); }, ErrorKind::kShape, "model.layers.1.mlp.up_proj.weight");
}

TEST(ModelErrors, ShapeMismatchNamesTensorAndShapes) {
  const std::string dir = make_tiny("shape_mismatch");
  std::string cfg = kTinyLlama;
  cfg.replace(cfg.find("\"intermediate_size\": 64"), 23, "\"intermediate_size\": 48");
  std::ofstream(dir + "/config.json") << cfg;
  expect_error([&] { Model::load(dir); }, ErrorKind::kShape, "[48, 32]");
}

TEST(ModelErrors, MissingLmHeadWithoutTying) {
  const std::string dir = make_tiny("no_lm_head");
  rewrite_weights(dir, [](const io::WeightSource& w, auto& out, auto&) {
    for (const auto& [name, t] : w.tensors())
      if (name != "lm_head.weight") out.push_back({name, *float_dtype(t.type), t.shape, t.data});
  });
  expect_error([&] { Model::load(dir); }, ErrorKind::kShape, "tie_word_embeddings");
}

TEST(ModelErrors, OutOfRangeTokenAndFullContext) {
  const std::string dir = make_tiny("token_range");
  const auto model = Model::load(dir);
  ThreadPool pool(1);
  SessionOptions so;
  so.context = 8;
  so.kv_k = so.kv_v = KvType::kF32;
  Session s(*model, pool, so);
  expect_error([&] { s.append({1, 64}); }, ErrorKind::kOutOfRange, "outside the vocabulary");
  expect_error([&] { s.append({1, -3}); }, ErrorKind::kOutOfRange, "-3");
  s.reset();
  s.append({1, 2, 3, 4, 5});
  expect_error([&] { s.append({1, 2, 3, 4}); }, ErrorKind::kOutOfRange, "-c N");
  EXPECT_EQ(s.n_past(), 5);  // the refused request ran nothing
}

// Phi-3 stores [q; k; v] and [gate; up] fused. The same weights fused must give the same logits.
TEST(Architectures, FusedPhi3ProjectionsEqualSeparateOnes) {
  const std::string dir = make_tiny("llama_ref");
  const std::string phi = test::scratch_dir("phi3_fused");
  fs::copy(dir + "/model.safetensors", phi + "/model.safetensors");
  fs::copy(dir + "/tokenizer.json", phi + "/tokenizer.json");
  std::string cfg = kTinyLlama;
  cfg.replace(cfg.find("\"llama\""), 7, "\"phi3\"");
  std::ofstream(phi + "/config.json") << cfg;
  rewrite_weights(phi, [](const io::WeightSource& w, auto& out, auto& store) {
    auto cat = [&](const std::string& name, std::initializer_list<std::string> parts) {
      std::vector<uint8_t> buf;
      int64_t rows = 0, cols = 0;
      for (const auto& p : parts) {
        const auto& t = w.get(p);
        buf.insert(buf.end(), static_cast<const uint8_t*>(t.data),
                   static_cast<const uint8_t*>(t.data) + t.nbytes);
        rows += t.shape[0];
        cols = t.shape[1];
      }
      store.push_back(std::move(buf));
      out.push_back({name, DType::kF32, {rows, cols}, store.back().data()});
    };
    for (const auto& [name, t] : w.tensors()) {
      if (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos ||
          name.find("v_proj") != std::string::npos || name.find("gate_proj") != std::string::npos ||
          name.find("up_proj") != std::string::npos)
        continue;
      out.push_back({name, *float_dtype(t.type), t.shape, t.data});
    }
    store.reserve(16);
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l);
      cat(p + ".self_attn.qkv_proj.weight",
          {p + ".self_attn.q_proj.weight", p + ".self_attn.k_proj.weight",
           p + ".self_attn.v_proj.weight"});
      cat(p + ".mlp.gate_up_proj.weight", {p + ".mlp.gate_proj.weight", p + ".mlp.up_proj.weight"});
    }
  });
  const auto a = Model::load(dir);
  const auto b = Model::load(phi);
  ThreadPool pool(1);
  SessionOptions so;
  so.context = 64;
  so.kv_k = so.kv_v = KvType::kF32;
  Session sa(*a, pool, so), sb(*b, pool, so);
  const std::vector<int32_t> prompt = {1, 5, 9, 33, 60, 2, 17};
  const auto la = sa.append(prompt);
  const auto lb = sb.append(prompt);
  for (size_t i = 0; i < la.size(); ++i) ASSERT_FLOAT_EQ(la[i], lb[i]) << i;
}

}  // namespace
}  // namespace longctx
