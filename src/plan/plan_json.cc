#include "plan/plan_json.h"

#include <nlohmann/json.hpp>

#include "kernels/kv_quant.h"
#include "model/rope_freqs.h"

namespace longctx {

namespace {

nlohmann::ordered_json bytes_json(size_t b) { return {{"bytes", b}, {"human", format_size(b)}}; }

}  // namespace

std::string plan_json(const PlanModel& m, const PlanRequest& req, const MemoryBudget& budget,
                      const MemoryPlan& p, int indent) {
  const ModelConfig& c = m.cfg;
  nlohmann::ordered_json largest = nlohmann::ordered_json::object();
  for (KvType t : kAllKvTypes) {
    PlanRequest one = req;
    one.batch = 1;
    largest[kv_type_name(t)] = {{"context", largest_context(m, one, t, budget)}};
  }
  nlohmann::ordered_json j;
  j["model"] = m.name;
  j["model_type"] = c.model_type;
  j["layers"] = c.num_hidden_layers;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope"] = {{"type", rope_type_name(c.rope_scaling.type)}, {"summary", rope_summary(c, 0)}};
  j["context"] = p.context;
  j["batch"] = p.batch;
  j["kv_dtype"] = kv_setting_name(p.kv_k, p.kv_v);
  j["kv_dtype_k"] = kv_type_name(p.kv_k);
  j["kv_dtype_v"] = kv_type_name(p.kv_v);
  j["prefill_chunk"] = p.prefill_chunk;
  j["prefill_chunk_auto"] = p.chunk_auto;
  j["weights"] = bytes_json(p.weights);
  j["kv_cache"] = {{"bytes_per_token", p.kv_bytes_per_token},
                   {"full_attention_layers", p.full_layers},
                   {"sliding_window_layers", p.window_layers},
                   {"full_attention", bytes_json(p.kv_full)},
                   {"sliding_window", bytes_json(p.kv_window)},
                   {"total", bytes_json(p.kv_total)}};
  j["activations"] = bytes_json(p.activations);
  j["scratch"] = bytes_json(p.scratch);
  j["overhead"] = bytes_json(p.overhead);
  j["total"] = bytes_json(p.total);
  j["budget"] = bytes_json(p.budget.bytes);
  j["budget_source"] = p.budget.source;
  j["headroom_bytes"] = p.headroom();
  j["fits"] = p.fits();
  j["largest_context_batch1"] = largest;
  j["mask_avoided"] = {{"context", p.context},
                       {"elements", mask_elements(c, p.context)},
                       {"max_context", c.max_position_embeddings},
                       {"elements_at_max_context", mask_elements(c, c.max_position_embeddings)}};
  if (!p.fits()) j["refusal"] = refusal_message(m, req, p);
  return j.dump(indent);
}

}  // namespace longctx
