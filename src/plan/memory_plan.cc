#include "plan/memory_plan.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "config/gguf_config.h"
#include "core/error.h"
#include "core/huge_pages.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "kernels/ops.h"
#include "model/checkpoint_check.h"
#include "model/decoder.h"
#include "model/quant_scheme.h"
#include "plan/stage_plan.h"

namespace longctx {

namespace fs = std::filesystem;

size_t kv_bytes_per_token_layer(const ModelConfig& c, KvType k, KvType v) {
  return size_t(c.num_key_value_heads) *
         (kernels::kv_row_bytes(k, c.head_dim, true) + kernels::kv_row_bytes(v, c.head_dim, false));
}

std::string kv_setting_name(KvType k, KvType v) {
  if (k == v) return kv_type_name(k);
  return std::string("k ") + kv_type_name(k) + ", v " + kv_type_name(v);
}

size_t count_parameters(const ModelConfig& c) {
  const size_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const size_t qd = size_t(c.num_attention_heads) * c.head_dim;
  const size_t kvd = size_t(c.num_key_value_heads) * c.head_dim;
  size_t layer = qd * H + 2 * kvd * H + H * qd + 3 * I * H + 2 * H;
  if (c.attention_bias) layer += qd + 2 * kvd;
  if (c.o_bias) layer += H;
  size_t n = V * H + layer * c.num_hidden_layers + H;
  if (!c.tie_word_embeddings) n += V * H;
  return n;
}

namespace {

size_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  const auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<size_t>(n);
}

// Activation buffers, logits copies and kernel scratch for one forward pass of `chunk` tokens.
void chunk_memory(const ModelConfig& c, KvType k, KvType v, int64_t chunk, int threads, size_t& act,
                  size_t& scratch) {
  // Session and CLI hold up to 4 vectors of vocab floats (logits, a copy, sampler index/probs).
  act = Activations::bytes_for(c, chunk) + 4 * size_t(c.vocab_size) * sizeof(float);
  ThreadPool pool(1);
  kernels::AttentionParams p;
  p.n_heads = c.num_attention_heads;
  const kernels::KVView view = kernels::coded_kv_view(
      k, v, static_cast<int>(kKvBlockTokens), c.num_key_value_heads, c.head_dim, nullptr, nullptr, 0);
  // Attention scratch per thread, times threads; matmul keeps a converted activation panel
  // per thread (at most chunk x max(hidden, intermediate) bf16 values).
  const size_t attn = kernels::attention_scratch_bytes(pool, p, chunk, view);
  const size_t widest = static_cast<size_t>(std::max(c.hidden_size, c.intermediate_size));
  scratch = size_t(threads) * (attn + size_t(chunk) * widest * 2);
}

void fill_layout(PlanModel& m, const io::WeightSource& w, WeightFormat format) {
  const WeightLayout l = weight_layout(m.cfg, w, format);
  m.layer_bytes = l.layer_bytes;
  m.embed_bytes = l.embed_bytes;
  m.head_bytes = l.other_bytes;
  m.fingerprint = model_fingerprint(m.cfg, w);
}

}  // namespace

PlanModel plan_model_from_path(const std::string& dir) {
  PlanModel m;
  // The same validation as loading (headers and tensor directory; no tensor data is read), so a
  // plan never prices a folder that `run` would refuse.
  if (is_gguf_path(dir)) {
    // Config from the metadata; weights priced per tensor as stored (block types included).
    const auto g = io::GgufFile::open(dir);
    m.cfg = config_from_gguf(*g);
    const auto weights = io::WeightSource::from_gguf(*g);
    check_checkpoint(m.cfg, *weights, WeightFormat::kGguf);
    fill_layout(m, *weights, WeightFormat::kGguf);
    for (const io::GgufTensor& t : g->tensors()) m.weight_bytes += static_cast<size_t>(t.nbytes);
    // The tokenizer's tables come from the metadata, which precedes the tensor data.
    m.tokenizer_bytes = static_cast<size_t>(g->data_offset());
    m.name = dir;
    return m;
  }
  m.cfg = load_model_config(dir);
  const auto weights = io::WeightSource::open_dir(dir);
  check_checkpoint(m.cfg, *weights, WeightFormat::kHuggingFace);
  fill_layout(m, *weights, WeightFormat::kHuggingFace);
  m.weight_bytes = weights->mapped_bytes();
  m.weight_files = std::max<int>(1, static_cast<int>(weights->files().size()));
  const fs::path d(dir);
  m.tokenizer_bytes = std::max(file_size_or_zero(d / "tokenizer.json"),
                               file_size_or_zero(d / "tokenizer.model"));
  m.name = dir;
  return m;
}

PlanModel plan_model_from_config(const ModelConfig& cfg, size_t weights_dtype_bytes,
                                 const std::string& name) {
  PlanModel m;
  m.cfg = cfg;
  m.weight_bytes = count_parameters(cfg) * weights_dtype_bytes;
  // Per stage: the embeddings, the final norm and an untied head, and equal layers.
  const size_t H = cfg.hidden_size, V = cfg.vocab_size;
  m.embed_bytes = V * H * weights_dtype_bytes;
  m.head_bytes = (H + (cfg.tie_word_embeddings ? 0 : V * H)) * weights_dtype_bytes;
  if (cfg.num_hidden_layers > 0)
    m.layer_bytes.assign(size_t(cfg.num_hidden_layers),
                         (m.weight_bytes - m.embed_bytes - m.head_bytes) / cfg.num_hidden_layers);
  // A tokenizer.json is about 30 bytes per vocabulary entry (vocab + merges).
  m.tokenizer_bytes = size_t(cfg.vocab_size) * 30;
  m.name = name;
  return m;
}

namespace {

MemoryPlan price(const PlanModel& m, int64_t context, int batch, KvType kk, KvType kv,
                 int64_t chunk, int threads, const MemoryBudget& budget,
                 StageRange stage = StageRange::all()) {
  const ModelConfig& c = m.cfg;
  const bool whole = stage.whole(c);
  const int first = stage.first, end = stage.end_layer(c), layers = end - first;
  MemoryPlan p;
  p.context = context;
  p.batch = batch;
  p.kv_k = kk;
  p.kv_v = kv;
  p.prefill_chunk = chunk;
  p.budget = budget;
  p.weights = whole ? m.weight_bytes : stage_weight_bytes(m, stage);
  const size_t per_token_layer = kv_bytes_per_token_layer(c, kk, kv);
  p.kv_bytes_per_token = per_token_layer * layers;
  KVCacheShape shape;
  shape.layer_window = c.layer_window;
  for (int l = first; l < end; ++l) {
    // Whole blocks; a sliding-window layer only the blocks its window and a chunk can span.
    const size_t tokens = size_t(shape.max_blocks(l, context, chunk)) * kKvBlockTokens;
    const size_t b = per_token_layer * tokens * size_t(batch);
    // A window at least as long as the context never bites (Phi-3.5: 262144): full attention.
    if (shape.window(l) > 0 && shape.window(l) < context) {
      ++p.window_layers;
      p.kv_window += b;
    } else {
      ++p.full_layers;
      p.kv_full += b;
    }
  }
  // int4 keys hold their newest, incomplete group of 16 tokens in f32 (KVCacheShape::fixed_bytes).
  const size_t pending = kernels::kv_per_channel(kk, true)
                             ? size_t(layers) * c.num_key_value_heads *
                                   kernels::kKvChannelGroup * c.head_dim * sizeof(float)
                             : 0;
  p.kv_total = p.kv_full + p.kv_window + pending * size_t(batch);
  chunk_memory(c, kk, kv, std::min(chunk, context), threads, p.activations, p.scratch);
  // Fixed, calibrated against VmHWM of `longctx run` (docs/memory-planner.md): program and
  // libraries (~6 MiB resident), tokenizer tables (~5.5x the tokenizer file), f32 copies of norms
  // and biases, thread stacks touched, per KV cache the huge page its newest blocks have touched
  // but not yet filled (KVCache carves blocks from huge-page slabs), and per weight file the
  // huge page its resident copy ends in. A pipeline stage holds the tokenizer on the first rank
  // only, and its weights stay in the file mapping (no copy).
  const size_t small = (size_t(2 * layers + 1) * c.hidden_size +
                        size_t(layers) *
                            (size_t(c.num_attention_heads) + 2 * c.num_key_value_heads) *
                            c.head_dim) * sizeof(float);
  p.overhead = kProgramBytes + (stage.has_embed() ? m.tokenizer_bytes * 11 / 2 : 0) + small +
               size_t(threads) * (256 << 10) +
               size_t(batch + (whole ? m.weight_files : 0)) * HugePageBuffer::kHugePage;
  p.total = p.weights + p.kv_total + p.activations + p.scratch + p.overhead;
  return p;
}

int64_t auto_chunk(const PlanModel& m, int64_t context, int batch, KvType k, KvType v, int threads,
                   const MemoryBudget& budget) {
  int64_t chunk = std::min<int64_t>(kMaxAutoChunk, context);
  while (chunk > kMinAutoChunk &&
         !price(m, context, batch, k, v, chunk, threads, budget).fits())
    chunk /= 2;
  return chunk;
}

}  // namespace

int64_t largest_context(const PlanModel& m, const PlanRequest& req, KvType kv,
                        const MemoryBudget& budget) {
  return largest_context(m, req, kv, kv, budget);
}

int64_t largest_context(const PlanModel& m, const PlanRequest& req, KvType k, KvType v,
                        const MemoryBudget& budget) {
  const int64_t maxpos = m.cfg.max_position_embeddings;
  auto fits = [&](int64_t ctx) {
    const int64_t chunk = req.prefill_chunk > 0 ? req.prefill_chunk
                                                : std::min<int64_t>(kMaxAutoChunk, ctx);
    return price(m, ctx, req.batch, k, v, chunk, req.threads, budget).fits();
  };
  if (fits(maxpos)) return maxpos;
  int64_t lo = 0, hi = (maxpos - 1) / kKvBlockTokens;  // blocks; lo fits (or is 0)
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (fits(mid * kKvBlockTokens)) lo = mid;
    else hi = mid - 1;
  }
  return lo * kKvBlockTokens;
}

size_t stage_weight_bytes(const PlanModel& m, StageRange stage) {
  const ModelConfig& c = m.cfg;
  const int end = stage.end_layer(c);
  size_t b = 0;
  if (m.layer_bytes.size() == static_cast<size_t>(c.num_hidden_layers))
    for (int l = stage.first; l < end; ++l) b += m.layer_bytes[static_cast<size_t>(l)];
  if (stage.has_embed()) b += m.embed_bytes;
  if (stage.has_head(c)) {
    b += m.head_bytes;
    if (c.tie_word_embeddings && !stage.has_embed()) b += m.embed_bytes;
  }
  return b;
}

MemoryPlan price_stage(const PlanModel& m, StageRange stage, const PlanRequest& req,
                       const MemoryBudget& budget, size_t extra) {
  MemoryPlan p = price(m, req.context, req.batch, req.key_type(), req.value_type(),
                       std::min(req.prefill_chunk, req.context), req.threads, budget, stage);
  p.activations += extra;
  p.total += extra;
  return p;
}

MemoryPlan make_plan(const PlanModel& m, const PlanRequest& req, const MemoryBudget& budget) {
  int64_t context = req.context;
  if (context <= 0) {
    context = largest_context(m, req, req.key_type(), req.value_type(), budget);
    if (context == 0) context = std::min<int64_t>(m.cfg.max_position_embeddings, kKvBlockTokens);
  }
  const bool chunk_auto = req.prefill_chunk <= 0;
  const KvType k = req.key_type(), v = req.value_type();
  const int64_t chunk = chunk_auto ? auto_chunk(m, context, req.batch, k, v, req.threads, budget)
                                   : std::min(req.prefill_chunk, context);
  MemoryPlan p = price(m, context, req.batch, k, v, chunk, req.threads, budget);
  p.chunk_auto = chunk_auto;
  return p;
}

namespace {
int64_t round_for_humans(int64_t ctx) {
  return ctx >= 4096 ? ctx / 1024 * 1024 : ctx;
}
}  // namespace

std::string refusal_message(const PlanModel& m, const PlanRequest& req, const MemoryPlan& p) {
  std::string s = "context " + std::to_string(p.context);
  if (p.batch > 1) s += " x batch " + std::to_string(p.batch);
  s += " needs " + format_size(p.kv_total) + " of KV cache (" + kv_setting_name(p.kv_k, p.kv_v) +
       ") + " + format_size(p.weights) + " of weights + " +
       format_size(p.activations + p.scratch + p.overhead) + " of activations and overhead = " +
       format_size(p.total) + "; " + format_size(p.budget.bytes) + " available (" +
       p.budget.source + ").";
  // Kernel scratch and thread stacks grow with -t: when they weigh, say so and how many fit.
  const size_t per_thread = p.scratch / size_t(std::max(1, req.threads)) + (256 << 10);
  const size_t thread_bytes = per_thread * size_t(std::max(1, req.threads));
  bool threads_blamed = false;
  if (req.threads > 1 && thread_bytes * 4 > p.total) {
    threads_blamed = true;
    int lo = 0, hi = req.threads - 1;  // the most threads that fit at this context, 0: none
    while (lo < hi) {
      const int mid = lo + (hi - lo + 1) / 2;
      PlanRequest r = req;
      r.threads = mid;
      r.context = p.context;
      if (make_plan(m, r, p.budget).fits())
        lo = mid;
      else
        hi = mid - 1;
    }
    s += " Of that, " + format_size(thread_bytes) + " is per-thread scratch for -t " +
         std::to_string(req.threads) + " threads (" + format_size(per_thread) + " each)";
    s += lo > 0 ? "; -t " + std::to_string(lo) + " or fewer fits." : "; use fewer threads (-t).";
  }
  // The asked setting at a smaller context, then each smaller uniform KV type (f16, int8, int4).
  std::vector<std::string> fit;
  const size_t asked = kv_bytes_per_token_layer(m.cfg, p.kv_k, p.kv_v);
  const std::pair<KvType, KvType> options[] = {{p.kv_k, p.kv_v},
                                               {KvType::kF16, KvType::kF16},
                                               {KvType::kInt8, KvType::kInt8},
                                               {KvType::kInt4, KvType::kInt4}};
  for (size_t i = 0; i < std::size(options); ++i) {
    const auto [k, v] = options[i];
    if (i > 0 && kv_bytes_per_token_layer(m.cfg, k, v) >= asked) continue;  // not smaller
    if (i > 0 && k == KvType::kF16 && p.kv_k == KvType::kBF16 && p.kv_v == KvType::kBF16) continue;
    const int64_t ctx = round_for_humans(largest_context(m, req, k, v, p.budget));
    if (ctx <= 0) continue;
    const std::string item =
        i == 0 ? "-c " + std::to_string(ctx) + " (" + kv_setting_name(k, v) + ")"
               : "--kv-dtype " + std::string(kv_type_name(k)) + " -c " + std::to_string(ctx);
    if (std::find(fit.begin(), fit.end(), item) == fit.end()) fit.push_back(item);
  }
  // Smaller weights: GGUF files of the quantized schemes (model/quant_scheme.h) at the asked KV
  // setting.
  for (const QuantScheme q : all_quant_schemes()) {
    const size_t bytes = quantized_weight_bytes(m.cfg, q);
    if (bytes >= m.weight_bytes * 9 / 10) continue;
    PlanModel smaller = m;
    smaller.weight_bytes = bytes;
    const int64_t ctx = round_for_humans(largest_context(smaller, req, p.kv_k, p.kv_v, p.budget));
    if (ctx <= 0) continue;
    std::string lower = quant_scheme_name(q);
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    fit.push_back(std::string("with ") + quant_scheme_name(q) + " weights (about " +
                  format_size(bytes) + ": longctx quantize --type " + lower + ") -c " +
                  std::to_string(std::min(ctx, p.context)));
  }
  // More machines: a pipeline of ranks of this budget each holds only its layers (mpirun).
  if (p.batch == 1) {
    PlanRequest r = req;
    r.context = p.context;
    r.kv_k = p.kv_k;
    r.kv_v = p.kv_v;
    if (const int n = ranks_needed(m, r, p.budget); n > 0)
      fit.push_back("the asked context on " + std::to_string(n) + " ranks of this budget (mpirun -np " +
                    std::to_string(n) + ", docs/distributed.md)");
  }
  if (!fit.empty()) {
    s += " These fit:";
    for (size_t i = 0; i < fit.size(); ++i) s += (i ? "; " : " ") + fit[i];
    s += ".";
  } else {
    if (threads_blamed)
      s += " No context fits with this many threads: lower -t, free memory or raise "
           "--mem-budget.";
    else
      s += " No context fits: the weights and fixed costs alone need " +
           format_size(p.weights + p.overhead) +
           "; free memory, raise --mem-budget, or use a smaller model.";
  }
  return s;
}

size_t mask_elements(const ModelConfig& cfg, int64_t context) {
  return size_t(cfg.num_hidden_layers) * size_t(context) * size_t(context);
}

}  // namespace longctx
