// longctx._longctx.Model: load through the engine facade (plan first: a request that does not
// fit is refused before anything loads, with the CLI's message), tokenizer access, the config,
// the plan, and generation through the library's Generator.
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "hooks/hook_point.h"
#include "kernels/kv_quant.h"
#include "longctx/generator.h"
#include "model_handle.h"
#include "model/decoder.h"
#include "plan/plan_json.h"
#include "runtime/prompt_cache.h"

namespace longctx::py {

std::vector<PyHook> py_hooks_from(const ModelConfig& cfg, const py::list& list) {
  std::vector<PyHook> out;
  for (const py::handle item : list) {
    py::tuple t = py::reinterpret_borrow<py::tuple>(item);
    PyHook h;
    h.name = t[0].cast<std::string>();
    h.id = hooks::parse_hook_name(h.name, cfg.num_hidden_layers);
    h.fn = py::reinterpret_borrow<py::object>(t[1]);
    h.hook_point = py::reinterpret_borrow<py::object>(t[2]);
    out.push_back(std::move(h));
  }
  return out;
}

std::shared_ptr<Session> make_session(Engine& e, int64_t planned_tokens,
                                      hooks::ForwardHooks* hooks) {
  SessionOptions so = session_options(e.plan());
  so.planned_tokens = std::clamp<int64_t>(planned_tokens, 0, e.plan().context);
  so.on_notice = e.planned().options.on_notice;
  so.hooks = hooks;
  so.on_progress = [](int64_t, int64_t) { check_interrupt(); };
  return std::make_shared<Session>(e.model(), e.pool(), so);
}

void check_fits_context(const Engine& e, int64_t n, int64_t extra_new) {
  if (n <= 0) throw Error(ErrorKind::kInvalidArg, "the input has no tokens");
  const int64_t ctx = e.plan().context;
  if (n + extra_new > ctx)
    throw Error(ErrorKind::kOutOfRange,
                "the input has " + std::to_string(n) + " tokens" +
                    (extra_new ? " (+" + std::to_string(extra_new) + " to generate)" : "") +
                    " but the model was loaded with n_ctx " + std::to_string(ctx) +
                    "; load it with a larger n_ctx (at most max_position_embeddings " +
                    std::to_string(e.config().max_position_embeddings) +
                    ") or shorten the input");
}

namespace {

ModelHandle load(const std::string& path, int64_t n_ctx, const std::string& kv,
                 const std::string& budget, int64_t chunk, int threads) {
  if (!std::filesystem::is_directory(path) && !is_gguf_path(path))
    throw Error(ErrorKind::kIo, "no model folder or GGUF file at '" + path +
                                    "'; give a Hugging Face model folder (config.json, "
                                    "*.safetensors, tokenizer) or a .gguf file");
  EngineOptions o;
  o.model_path = path;
  o.context = n_ctx;
  o.kv = parse_kv_type(kv);
  o.prefill_chunk = chunk;
  o.mem_budget = budget;
  o.threads = threads;
  ModelHandle m;
  m.path = path;
  m.engine = std::shared_ptr<Engine>(Engine::load(Engine::plan_only(o)));
  return m;
}

py::dict config_dict(const ModelHandle& m) {
  const ModelConfig& c = m.engine->config();
  py::dict d;
  d["model_name"] = std::filesystem::path(m.path).lexically_normal().filename().string();
  if (d["model_name"].cast<std::string>().empty())
    d["model_name"] = std::filesystem::path(m.path).parent_path().filename().string();
  d["original_architecture"] = c.model_type;
  d["n_layers"] = c.num_hidden_layers;
  d["d_model"] = c.hidden_size;
  d["n_heads"] = c.num_attention_heads;
  d["n_key_value_heads"] = c.num_key_value_heads;
  d["d_head"] = c.head_dim;
  d["d_mlp"] = c.intermediate_size;
  d["d_vocab"] = c.vocab_size;
  d["d_vocab_out"] = c.vocab_size;
  d["n_ctx"] = m.engine->plan().context;
  d["max_position_embeddings"] = c.max_position_embeddings;
  d["act_fn"] = c.hidden_act;
  d["normalization_type"] = "RMS";
  d["positional_embedding_type"] = "rotary";
  char eps[32];
  std::snprintf(eps, sizeof eps, "%.7g", static_cast<double>(c.rms_norm_eps));  // f32 as written
  d["eps"] = std::stod(eps);
  d["rotary_base"] = c.rope_theta;
  d["rotary_dim"] = c.rot_dim();
  d["rope_scaling"] = c.rope_scaling_json;
  d["tie_word_embeddings"] = c.tie_word_embeddings;
  d["attention_bias"] = c.attention_bias;
  d["sliding_window"] = c.sliding_window;
  d["gated_mlp"] = true;
  d["final_rms"] = true;
  d["default_prepend_bos"] = m.engine->tokenizer().bos_id() >= 0;
  d["device"] = "cpu";
  d["dtype"] = "float32";
  d["kv_dtype"] = kv_setting_name(m.engine->plan().kv_k, m.engine->plan().kv_v);
  d["prefill_chunk"] = m.engine->plan().prefill_chunk;
  d["threads"] = m.engine->planned().request.threads;
  return d;
}

py::list generate(ModelHandle& m, const std::vector<int32_t>& prompt, int max_new,
                  float temperature, int top_k, float top_p, float min_p, bool stop_at_eos,
                  uint64_t seed, const py::list& hook_list, bool verbose,
                  const std::string& prompt_cache, bool cache_ro, bool cache_strict) {
  Engine& e = *m.engine;
  check_fits_context(e, static_cast<int64_t>(prompt.size()), 1);
  GenerateOptions go;
  go.n_predict = max_new;
  go.ignore_eos = !stop_at_eos;
  go.sampler.temperature = temperature;
  go.sampler.top_k = top_k;
  go.sampler.top_p = top_p;
  go.sampler.min_p = min_p;
  go.sampler.seed = seed;
  go.progress = verbose ? ProgressMode::kOn : ProgressMode::kOff;
  go.on_progress = [](const ProgressSnapshot&) { check_interrupt(); };
  validate(go);
  std::unique_ptr<PyHooks> ph;
  if (!hook_list.empty()) ph = std::make_unique<PyHooks>(e.config(), py_hooks_from(e.config(), hook_list));
  auto session = make_session(e, static_cast<int64_t>(prompt.size()) + max_new, ph.get());
  if (ph) ph->set_owner(own(new KeepAlive{m.engine, session}));
  // prompt_cache: as the CLI's --prompt-cache (docs/prompt-cache.md).
  PromptCacheLoad cached;
  if (!prompt_cache.empty()) {
    if (ph)
      throw Error(ErrorKind::kInvalidArg,
                  "prompt_cache with fwd_hooks: hooks see every position, and a cached prefix "
                  "is not run; drop one of them");
    {
      py::gil_scoped_release release;
      cached = load_prompt_cache(*session, prompt_cache, prompt);
    }
    if (!cached.refused.empty()) {
      const std::string why = "prompt_cache " + prompt_cache + " cannot be used: " + cached.refused;
      if (cache_strict) throw Error(ErrorKind::kFormat, why + " (prompt_cache_strict)");
      const std::string msg = why + "; the prompt is prefilled from scratch";
      if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
    }
  }
  GenerateResult r;
  {
    py::gil_scoped_release release;
    Generator g(e, *session, go);
    r = g.generate(
        prompt, [](const std::string&) { check_interrupt(); },
        [&] {
          if (!prompt_cache.empty() && !cache_ro && session->n_past() > cached.reused)
            save_prompt_cache(*session, prompt_cache);
        },
        cached.reused);
  }
  if (r.stop == StopReason::kContextFull) {
    const std::string msg = "generate stopped after " + std::to_string(r.tokens.size()) +
                            " of max_new_tokens=" + std::to_string(max_new) +
                            " tokens: the context (n_ctx=" + std::to_string(e.plan().context) +
                            ") is full; load the model with a larger n_ctx";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
  }
  py::list out;
  for (int32_t id : r.tokens) out.append(id);
  return out;
}

}  // namespace

void init_model(py::module_& mod) {
  py::class_<ModelHandle>(mod, "Model")
      .def(py::init([](const std::string& path, int64_t n_ctx, const std::string& kv,
                       const std::string& budget, int64_t chunk, int threads) {
             py::gil_scoped_release release;
             return load(path, n_ctx, kv, budget, chunk, threads);
           }),
           py::arg("path"), py::arg("n_ctx") = 0, py::arg("kv_dtype") = "f16",
           py::arg("mem_budget") = "auto", py::arg("prefill_chunk") = 0, py::arg("threads") = 0)
      .def_property_readonly("config", &config_dict)
      .def_property_readonly("plan_json",
                             [](const ModelHandle& m) {
                               const PlannedRun& r = m.engine->planned();
                               return plan_json(r.model, r.request, r.budget, r.plan);
                             })
      .def_property_readonly("context_message",
                             [](const ModelHandle& m) {
                               return context_choice_message(m.engine->planned());
                             })
      .def_property_readonly("headroom_bytes",
                             [](const ModelHandle& m) { return m.engine->plan().headroom(); })
      .def_property_readonly("bos_id",
                             [](const ModelHandle& m) { return m.engine->tokenizer().bos_id(); })
      .def_property_readonly("eos_ids", [](const ModelHandle& m) { return m.engine->eos_ids(); })
      .def("encode",
           [](const ModelHandle& m, const std::string& text, bool prepend_bos) {
             const Tokenizer& t = m.engine->tokenizer();
             std::vector<int32_t> ids = t.encode(text, false);
             std::vector<int64_t> out;
             if (prepend_bos && t.bos_id() >= 0) out.push_back(t.bos_id());
             out.insert(out.end(), ids.begin(), ids.end());
             const int64_t n = static_cast<int64_t>(out.size());
             return to_array(std::move(out), {n});
           })
      .def("decode",
           [](const ModelHandle& m, const std::vector<int32_t>& ids, bool skip_special) {
             return m.engine->tokenizer().decode(ids, skip_special);
           })
      .def("token_strs",
           [](const ModelHandle& m, const std::vector<int32_t>& ids) {
             const Tokenizer& t = m.engine->tokenizer();
             py::list out;
             for (int32_t id : ids) {
               if (id < 0 || id >= t.vocab_size())
                 throw Error(ErrorKind::kOutOfRange, "token id " + std::to_string(id) +
                                                         " is outside the vocabulary (0.." +
                                                         std::to_string(t.vocab_size() - 1) + ")");
               const std::string s = t.is_special(id) ? t.decode({id}, false) : t.token_bytes(id);
               out.append(py::bytes(s).attr("decode")("utf-8", "replace"));
             }
             return out;
           })
      .def("hook_names",
           [](const ModelHandle& m) {
             std::vector<std::string> out;
             for (hooks::HookId id : hooks::all_hooks(m.engine->config().num_hidden_layers))
               out.push_back(hooks::hook_name(id));
             return out;
           })
      .def("expand_hooks",
           [](const ModelHandle& m, const std::string& list) {
             std::vector<std::string> out;
             for (hooks::HookId id :
                  hooks::expand_hook_list(list, m.engine->config().num_hidden_layers))
               out.push_back(hooks::hook_name(id));
             return out;
           })
      .def(
          "run",
          [](ModelHandle& m, const std::vector<int32_t>& tokens, bool want_logits, bool want_loss,
             const py::list& hooks, const py::object& capture) {
            std::optional<CaptureSpec> cap;
            if (!capture.is_none()) {
              py::dict d = capture.cast<py::dict>();
              CaptureSpec c;
              c.names = d["names"].cast<std::string>();
              if (!d["pos_start"].is_none()) c.pos_start = d["pos_start"].cast<int64_t>();
              if (!d["pos_stop"].is_none()) c.pos_stop = d["pos_stop"].cast<int64_t>();
              c.pattern_queries = d["pattern_queries"].cast<std::vector<int64_t>>();
              if (!d["cache_path"].is_none()) c.cache_path = d["cache_path"].cast<std::string>();
              cap = c;
            }
            return run_forward(m, tokens, want_logits, want_loss, hooks, cap);
          },
          py::arg("tokens"), py::arg("want_logits"), py::arg("want_loss"), py::arg("hooks"),
          py::arg("capture"))
      .def("generate", &generate, py::arg("tokens"), py::arg("max_new_tokens"),
           py::arg("temperature"), py::arg("top_k"), py::arg("top_p"), py::arg("min_p"),
           py::arg("stop_at_eos"), py::arg("seed"), py::arg("hooks"), py::arg("verbose"),
           py::arg("prompt_cache") = "", py::arg("prompt_cache_ro") = false,
           py::arg("prompt_cache_strict") = false);
}

}  // namespace longctx::py
