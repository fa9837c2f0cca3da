// One forward pass for model(...), run_with_cache and run_with_hooks: prices what the call holds
// beside the plan (logits of every position, captured tensors, the hook runner's buffers) and
// refuses before running when that does not fit, then runs a fresh Session with the GIL released.
#include <map>

#include "core/error.h"
#include "hooks/file_sink.h"
#include "hooks/hook_files.h"
#include "model_handle.h"

namespace longctx::py {

namespace {

// The head computes hooked logits 16 rows at a time (Model::head).
constexpr int64_t kHeadRows = 16;

void refuse_extra(const Engine& e, size_t extra, const std::string& what,
                  const std::string& alternatives) {
  const MemoryPlan& p = e.plan();
  if (p.total + extra <= p.budget.bytes) return;
  const size_t left = p.headroom() > 0 ? static_cast<size_t>(p.headroom()) : 0;
  throw Error(ErrorKind::kMemory,
              what + " take " + format_size(extra) + ", but the memory budget (" +
                  format_size(p.budget.bytes) + ") leaves " + format_size(left) +
                  " beside the model's plan (" + format_size(p.total) + ", context " +
                  std::to_string(p.context) + "); " + alternatives);
}

}  // namespace

py::dict run_forward(ModelHandle& m, const std::vector<int32_t>& tokens, bool want_logits,
                     bool want_loss, const py::list& hook_list,
                     const std::optional<CaptureSpec>& cap) {
  Engine& e = *m.engine;
  const ModelConfig& cfg = e.config();
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t V = cfg.vocab_size;
  check_fits_context(e, T);
  const int64_t chunk = e.plan().prefill_chunk;
  const int threads = e.planned().request.threads;

  // What the call holds beside the plan, checked before anything runs.
  size_t extra = 0;
  if (want_logits || want_loss) extra += static_cast<size_t>(std::min(T, kHeadRows) * V) * 4;
  if (want_loss) extra += static_cast<size_t>(T) * 8;
  if (want_logits) {
    const size_t lb = static_cast<size_t>(T * V) * 4;
    refuse_extra(e, extra + lb,
                 "the logits of " + std::to_string(T) + " positions x " + std::to_string(V) +
                     " (float32)",
                 "use return_type=None or \"loss\" (the loss is computed chunk by chunk), or "
                 "capture the logits of chosen positions with run_with_cache(names_filter="
                 "\"logits\", pos_slice=-1, return_type=None)");
    extra += lb;
  }

  std::unique_ptr<hooks::HookRunner> runner;
  std::unique_ptr<io::SafetensorsWriter> writer;
  if (cap) {
    hooks::HookRequest req;
    req.capture = hooks::expand_hook_list(cap->names, cfg.num_hidden_layers);
    req.pos.start = cap->pos_start;
    req.pos.stop = cap->pos_stop;
    req.pattern_queries = cap->pattern_queries;
    runner = std::make_unique<hooks::HookRunner>(cfg, req, T);
    const size_t runner_bytes = hooks::HookRunner::memory_bytes(cfg, runner->request(), T, chunk, threads);
    uint64_t cache_bytes = 0, pattern_bytes = 0;
    std::string largest;
    uint64_t largest_bytes = 0;
    for (const hooks::CaptureTensor& t : runner->tensors()) {
      const uint64_t b = static_cast<uint64_t>(t.numel()) * (t.is_int64 ? 8 : 4);
      cache_bytes += b;
      if (t.name.ends_with("hook_pattern") || t.name.ends_with("hook_attn_scores"))
        pattern_bytes += b;
      if (b > largest_bytes) largest_bytes = b, largest = t.name;
    }
    const std::string span = std::to_string(runner->last() - runner->first()) + " of " +
                             std::to_string(T) + " positions";
    if (cap->cache_path.empty()) {
      refuse_extra(e, extra + runner_bytes + cache_bytes,
                   "the cache of " + std::to_string(runner->tensors().size()) + " tensors over " +
                       span + " (largest: " + largest + ", " + format_size(largest_bytes) + ")",
                   "narrow names_filter to the hooks you need, capture fewer positions with "
                   "pos_slice (e.g. pos_slice=-1), choose attention-pattern rows with "
                   "pattern_queries (e.g. [-1]) or use the reductions pattern_key_mass / "
                   "pattern_entropy, or write the cache to disk with cache_dir=...");
      extra += runner_bytes + cache_bytes;
    } else {
      if (cap->pattern_queries.empty() && pattern_bytes > e.budget().bytes)
        throw Error(ErrorKind::kMemory,
                    "full attention patterns over " + span + " take " +
                        format_size(pattern_bytes) + ", more than the memory budget (" +
                        format_size(e.budget().bytes) +
                        "); choose rows with pattern_queries (e.g. [-1, -2]), or the reductions "
                        "blocks.*.attn.pattern_key_mass / pattern_entropy, or narrow pos_slice");
      refuse_extra(e, extra + runner_bytes + hooks::FileSink::memory_bytes(),
                   "the hook runner's buffers", "narrow names_filter or pos_slice");
      extra += runner_bytes + hooks::FileSink::memory_bytes();
      std::vector<io::TensorSpec> specs = {{"tokens", "I64", {1, T}}};
      for (const hooks::CaptureTensor& t : runner->tensors())
        specs.push_back({t.name, t.is_int64 ? "I64" : "F32", t.shape});
      const std::map<std::string, std::string> meta = {
          {hooks::kPosFirstKey, std::to_string(runner->first())}};
      const uint64_t file_bytes = io::SafetensorsWriter::bytes_for(specs, meta);
      const uint64_t free_bytes = io::free_bytes_at(cap->cache_path);
      if (file_bytes > free_bytes)
        throw Error(ErrorKind::kIo, cap->cache_path + " would take " + format_size(file_bytes) +
                                        " but its file system has " + format_size(free_bytes) +
                                        " free; free space, choose another cache_dir, or narrow "
                                        "names_filter or pos_slice");
      writer = std::make_unique<io::SafetensorsWriter>(cap->cache_path, specs, meta);
      std::vector<int64_t> t64(tokens.begin(), tokens.end());
      writer->write(0, 0, t64.data(), t64.size() * 8);
    }
  }

  // Buffers, hooks and the session; Python objects are made while the GIL is held.
  std::vector<float> logits;
  if (want_logits) logits.resize(static_cast<size_t>(T * V));
  std::unique_ptr<LogitsCollector> collector;
  if (want_logits || want_loss)
    collector = std::make_unique<LogitsCollector>(cfg, want_logits ? logits.data() : nullptr,
                                                  want_loss ? &tokens : nullptr);
  std::unique_ptr<PyHooks> ph;
  if (!hook_list.empty()) ph = std::make_unique<PyHooks>(cfg, py_hooks_from(cfg, hook_list));
  std::unique_ptr<NumpySink> mem_sink;
  std::unique_ptr<hooks::FileSink> file_sink;
  if (runner) {
    if (writer) {
      file_sink = std::make_unique<hooks::FileSink>(*writer, DType::kF32);
      runner->set_sink(file_sink.get());
    } else {
      mem_sink = std::make_unique<NumpySink>(runner->tensors());
      runner->set_sink(mem_sink.get());
    }
  }
  std::vector<hooks::ForwardHooks*> parts;
  if (ph) parts.push_back(ph.get());  // first: captures and logits see what the callables left
  if (runner) parts.push_back(runner.get());
  if (collector) parts.push_back(collector.get());
  std::unique_ptr<CompositeHooks> all;
  hooks::ForwardHooks* fh = nullptr;
  if (parts.size() == 1) fh = parts[0];
  if (parts.size() > 1) fh = (all = std::make_unique<CompositeHooks>(cfg.num_hidden_layers, parts)).get();
  auto session = make_session(e, T, fh);
  if (ph) ph->set_owner(own(new KeepAlive{m.engine, session}));
  {
    py::gil_scoped_release release;
    session->append(tokens);
    if (runner) runner->finish();
    if (writer) writer->commit();
  }

  py::dict out;
  out["logits"] = want_logits ? py::object(to_array(std::move(logits), {1, T, V})) : py::none();
  if (want_loss) {
    std::vector<double> nll = collector->nll();
    const int64_t n = static_cast<int64_t>(nll.size());
    auto* held_nll = new std::vector<double>(std::move(nll));
    out["nll"] = view_array(py::dtype::of<double>(), {n}, held_nll->data(), own(held_nll));
  } else {
    out["nll"] = py::none();
  }
  out["cache"] = py::none();
  out["cache_path"] = py::none();
  if (runner) {
    if (mem_sink) {
      py::list items;
      for (size_t i = 0; i < runner->tensors().size(); ++i)
        items.append(py::make_tuple(runner->tensors()[i].name, mem_sink->arrays()[i]));
      out["cache"] = items;
    } else {
      out["cache_path"] = cap->cache_path;
    }
  }
  out["pos_first"] = runner ? runner->first() : 0;
  out["pos_last"] = runner ? runner->last() : T;
  return out;
}

}  // namespace longctx::py
