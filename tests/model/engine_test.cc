// The engine facade end to end on a real checkpoint (plan -> load -> session -> generate), and the
// progress line's wording and throttling.
#include "longctx/engine.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "longctx/generator.h"
#include "model/test_util.h"
#include "runtime/progress.h"

namespace longctx {
namespace {

EngineOptions stories(int64_t context = 0) {
  EngineOptions o;
  o.model_path = test::model_path("stories260K");
  o.context = context;
  o.kv = KvType::kF32;
  o.threads = 2;
  o.mem_budget = "1GiB";
  return o;
}

TEST(Engine, PlansWithoutLoadingAndSaysWhyTheContextWasChosen) {
  const PlannedRun run = Engine::plan_only(stories());
  EXPECT_TRUE(run.plan.fits());
  EXPECT_EQ(run.plan.context, run.config().max_position_embeddings);  // 512 fits in 1 GiB
  EXPECT_EQ(context_choice_message(run),
            "context 512: the model's maximum, which fits the budget (1.0 GiB)");
  EXPECT_EQ(context_choice_message(Engine::plan_only(stories(256))), "");  // -c given
  const SessionOptions so = session_options(run.plan);
  EXPECT_EQ(so.kv_k, KvType::kF32);
  EXPECT_EQ(so.kv_v, KvType::kF32);
  EXPECT_EQ(so.memory_limit, run.plan.kv_total + run.plan.activations);
}

TEST(Engine, RefusesBeforeLoadingNamingTheCallersBuffers) {
  EngineOptions o = stories();
  o.extra_bytes = size_t{2} << 30;
  o.extra_what = "hook captures";
  try {
    Engine::plan_only(o);
    FAIL() << "a plan over the budget was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kMemory);
    EXPECT_NE(std::string(e.what()).find("2.0 GiB for hook captures"), std::string::npos)
        << e.what();
  }
  o = stories(4096);
  try {
    Engine::plan_only(o);
    FAIL() << "a context past max_position_embeddings was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kOutOfRange);
    EXPECT_NE(std::string(e.what()).find("--force-ctx"), std::string::npos) << e.what();
  }
}

// Issue 19: a tokenizer whose ids reach past the model's vocab_size is refused when the engine
// loads (before the weights), naming both numbers, instead of when such a token first appears.
TEST(Engine, RefusesATokenizerLargerThanTheModelsVocabulary) {
  RandomCheckpointOptions ro;
  ro.config_json = R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
      "head_dim": 16, "vocab_size": 300, "max_position_embeddings": 256})";
  const std::string dir = test::random_checkpoint_dir("engine_tokenizer_past_vocab", ro);
  EngineOptions o;
  o.model_path = dir;
  o.threads = 1;
  o.mem_budget = "1GiB";
  EXPECT_NO_THROW(Engine::open(o));  // as written: the tokenizer matches vocab_size
  nlohmann::json tok = test::read_json(dir + "/tokenizer.json");
  tok["added_tokens"].push_back({{"id", 310}, {"content", "<extra>"}, {"special", true}});
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  try {
    Engine::open(o);
    FAIL() << "a tokenizer with ids past vocab_size was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kConfig);
    const std::string m = e.what();
    EXPECT_NE(m.find("token ids up to 310"), std::string::npos) << m;
    EXPECT_NE(m.find("vocab_size is 300"), std::string::npos) << m;
  }
}

TEST(Generator, GreedyIdsMatchGoldenAndStopAtTheLimit) {
  const auto golden = test::read_json(test::model_path("stories260K") + "/golden.json");
  const auto& c = golden["cases"][1];
  const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
  const auto engine = Engine::open(stories());
  Session session = engine->new_session(static_cast<int64_t>(prompt.size() + greedy.size()));
  GenerateOptions go;
  go.n_predict = static_cast<int>(greedy.size());
  go.ignore_eos = true;
  go.progress = ProgressMode::kOff;
  int64_t last_done = 0, updates = 0;
  go.on_progress = [&](const ProgressSnapshot& s) {
    last_done = s.done;
    ++updates;
    EXPECT_EQ(s.total, static_cast<int64_t>(prompt.size()));
    EXPECT_GT(s.plan, 0u);
  };
  Generator gen(*engine, session, go);
  EXPECT_FALSE(gen.shows_progress());
  std::string text;
  bool prefilled = false;
  const GenerateResult r = gen.generate(
      prompt, [&](const std::string& t) { text += t; }, [&] { prefilled = true; });
  EXPECT_TRUE(prefilled);
  EXPECT_EQ(r.tokens, greedy);
  EXPECT_EQ(r.stop, StopReason::kLimit);
  EXPECT_EQ(r.decode_steps, static_cast<int>(greedy.size()) - 1);
  EXPECT_EQ(r.prompt_tokens, static_cast<int64_t>(prompt.size()));
  // The decoder has seen the prompt: the continuation keeps its leading space.
  EXPECT_EQ(text, " " + c["greedy_text"].get<std::string>());
  EXPECT_EQ(last_done, static_cast<int64_t>(prompt.size()));
  EXPECT_GE(updates, 1);
  EXPECT_STREQ(stop_reason_text(r.stop), "limit (-n)");
}

TEST(Generator, StopsWhenTheContextIsFull) {
  const auto engine = Engine::open(stories(16));
  Session session = engine->new_session(16);
  GenerateOptions go;
  go.n_predict = 100;
  go.ignore_eos = true;
  go.progress = ProgressMode::kOff;
  Generator gen(*engine, session, go);
  const GenerateResult r = gen.generate({1, 403, 407, 261, 378}, nullptr);
  EXPECT_EQ(r.stop, StopReason::kContextFull);
  EXPECT_EQ(session.n_past(), 16);
  EXPECT_THROW(check_prompt_fits(16, 16), Error);
}

TEST(Progress, LineWording) {
  ProgressSnapshot s;
  s.label = "prefill";
  s.done = 12288;
  s.total = 29000;
  s.seconds = 30;
  s.rss = size_t{1229} << 20;
  s.plan = size_t{1946} << 20;
  EXPECT_EQ(format_progress(s),
            "prefill 12288/29000 tok | 410 tok/s | ETA 41 s | RSS 1.2 GiB of plan 1.9 GiB");
  s.done = s.total;
  s.seconds = 125;
  s.plan = 0;
  s.note = "PPL 5.4321";
  EXPECT_EQ(format_progress(s),
            "prefill 29000/29000 tok | 232 tok/s | in 2 min 05 s | RSS 1.2 GiB | PPL 5.4321");
}

// Forced on, into a file: a quick step draws only its final state, once, ended by a newline;
// forced off draws nothing.
TEST(Progress, QuickStepDrawsOnlyItsEnd) {
  for (const ProgressMode mode : {ProgressMode::kOn, ProgressMode::kOff}) {
    FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    {
      Progress p("prefill", 0, mode, f);
      EXPECT_EQ(p.enabled(), mode == ProgressMode::kOn);
      for (int64_t i = 1; i <= 100; ++i) p.update(i, 100);
    }  // the destructor finishes the line
    std::rewind(f);
    std::string out(4096, '\0');
    out.resize(std::fread(out.data(), 1, out.size(), f));
    std::fclose(f);
    if (mode == ProgressMode::kOff) {
      EXPECT_EQ(out, "");
      continue;
    }
    EXPECT_EQ(out.rfind("\rprefill 100/100 tok | ", 0), 0u) << out;
    EXPECT_EQ(out.find('\r', 1), std::string::npos) << out;
    EXPECT_EQ(out.back(), '\n');
  }
}

}  // namespace
}  // namespace longctx
