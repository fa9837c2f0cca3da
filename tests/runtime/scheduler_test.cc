// The continuous-batching scheduler on the real stories260K checkpoint: concurrent requests get
// the golden greedy tokens (llama2.c's reference run), shared prompts are prefilled once, and
// admission, cancellation, stop strings and log-probabilities behave as scheduler.h says.
#include "longctx/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "longctx/engine.h"
#include "model/test_util.h"
#include "runtime/stop_strings.h"

namespace longctx {
namespace {

EngineOptions stories(KvType kv = KvType::kF32, int64_t context = 512) {
  EngineOptions o;
  o.model_path = test::model_path("stories260K");
  o.context = context;
  o.kv = kv;
  o.threads = 2;
  o.mem_budget = "1GiB";
  o.prefill_chunk = 32;
  return o;
}

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  Finish fin;
};

Outcome drain(RequestStream& s) {
  Outcome o;
  SchedulerEvent ev;
  while (s.next(ev)) {
    if (ev.token >= 0) o.tokens.push_back(ev.token);
    o.text += ev.text;
  }
  o.fin = s.finish();
  return o;
}

CompletionRequest greedy(std::vector<int32_t> prompt, int max_tokens) {
  CompletionRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  return r;
}

ErrorKind submit_error(Scheduler& s, CompletionRequest r, std::string* msg = nullptr) {
  try {
    s.submit(std::move(r));
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "submit accepted the request";
  return ErrorKind::kInternal;
}

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ = new nlohmann::json(
        test::read_json(test::model_path("stories260K") + "/golden.json")["cases"]);
  }
  static void TearDownTestSuite() { delete golden_; }
  static const nlohmann::json& golden() { return *golden_; }
  static nlohmann::json* golden_;
};
nlohmann::json* SchedulerTest::golden_ = nullptr;

// Every golden case at once, plus a second copy of each started later (different lengths, prefill
// and decode in the same steps): each gets llama2.c's greedy tokens and text.
TEST_F(SchedulerTest, ConcurrentRequestsGetTheGoldenGreedyTokens) {
  for (KvType kv : {KvType::kF32, KvType::kF16}) {
    auto engine = Engine::open(stories(kv));
    SchedulerOptions so;
    so.parallel = 4;
    so.block_tokens = 16;
    Scheduler sched(*engine, so);
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<size_t> which;
    for (int round = 0; round < 2; ++round)
      for (size_t c = 0; c < golden().size(); ++c) {
        const auto& g = golden()[c];
        streams.push_back(sched.submit(greedy(g["prompt_ids"].get<std::vector<int32_t>>(),
                                              static_cast<int>(g["greedy_ids"].size()))));
        which.push_back(c);
      }
    for (size_t i = 0; i < streams.size(); ++i) {
      const auto& g = golden()[which[i]];
      const Outcome o = drain(*streams[i]);
      EXPECT_EQ(o.tokens, g["greedy_ids"].get<std::vector<int32_t>>()) << "request " << i;
      // The decoder has seen the prompt: the text keeps its leading space, except after a lone
      // BOS, where SentencePiece drops it as at the start of any text.
      const std::string lead = g["prompt_ids"].size() > 1 ? " " : "";
      EXPECT_EQ(o.text, lead + g["greedy_text"].get<std::string>()) << "request " << i;
      EXPECT_EQ(o.fin.reason, FinishReason::kLength);
      EXPECT_EQ(o.fin.completion_tokens, static_cast<int64_t>(g["greedy_ids"].size()));
      EXPECT_EQ(o.fin.prompt_tokens, static_cast<int64_t>(g["prompt_ids"].size()));
    }
    const SchedulerStats st = sched.stats();
    EXPECT_EQ(st.requests_ok, static_cast<int64_t>(streams.size()));
    EXPECT_EQ(st.running, 0);
    EXPECT_EQ(st.kv_blocks_used, 0);  // every sequence gave its blocks back
    EXPECT_GT(st.steps, 0);
  }
}

// A long shared prompt is prefilled once: the second request adopts its full blocks, and still
// gets the tokens it gets alone.
TEST_F(SchedulerTest, SharedPrefixIsPrefilledOnce) {
  auto engine = Engine::open(stories());
  SchedulerOptions so;
  so.parallel = 2;
  so.block_tokens = 16;
  Scheduler sched(*engine, so);
  std::vector<int32_t> doc = golden()[1]["prompt_ids"].get<std::vector<int32_t>>();
  for (int32_t i = 0; i < 100; ++i) doc.push_back(100 + (i * 37) % 300);
  std::vector<int32_t> a = doc, b = doc;
  a.push_back(50);
  b.push_back(60);
  const Outcome first = drain(*sched.submit(greedy(a, 8)));
  EXPECT_EQ(first.fin.cached_tokens, 0);
  const Outcome second = drain(*sched.submit(greedy(b, 8)));
  // doc has 116 tokens: 7 full blocks of 16 are shared.
  EXPECT_EQ(second.fin.cached_tokens, 112);
  // Alone, without the cache.
  SchedulerOptions off = so;
  off.prefix_cache = false;
  Scheduler plain(*engine, off);
  const Outcome alone = drain(*plain.submit(greedy(b, 8)));
  EXPECT_EQ(alone.fin.cached_tokens, 0);
  EXPECT_EQ(second.tokens, alone.tokens);
  EXPECT_EQ(sched.stats().cached_prompt_tokens, 112);
}

TEST_F(SchedulerTest, RefusesWhatCannotFitAndSaysWhatWould) {
  auto engine = Engine::open(stories(KvType::kF32, 128));
  SchedulerOptions so;
  so.parallel = 1;
  so.queue_limit = 1;
  Scheduler sched(*engine, so);
  std::string msg;
  EXPECT_EQ(submit_error(sched, greedy(std::vector<int32_t>(100, 5), 40), &msg),
            ErrorKind::kOutOfRange);
  EXPECT_NE(msg.find("the prompt has 100 tokens and max_tokens is 40"), std::string::npos) << msg;
  EXPECT_NE(msg.find("context of 128"), std::string::npos) << msg;
  EXPECT_NE(msg.find("max_tokens <= 28"), std::string::npos) << msg;
  EXPECT_EQ(submit_error(sched, greedy(std::vector<int32_t>(128, 5), 1), &msg),
            ErrorKind::kOutOfRange);
  EXPECT_EQ(submit_error(sched, greedy({}, 1)), ErrorKind::kInvalidArg);
  EXPECT_EQ(submit_error(sched, greedy({5}, 0)), ErrorKind::kInvalidArg);
  EXPECT_EQ(submit_error(sched, greedy({5, 1 << 20}, 1)), ErrorKind::kInvalidArg);

  // One running, one queued: the third is turned away (kBusy), the first two complete.
  auto r1 = sched.submit(greedy({1, 5, 6}, 100));
  auto r2 = sched.submit(greedy({1, 7}, 4));
  ErrorKind k = ErrorKind::kInternal;
  for (int tries = 0; tries < 3 && k != ErrorKind::kBusy; ++tries)
    k = submit_error(sched, greedy({1, 8}, 4), &msg);  // r1 may not be admitted yet
  EXPECT_EQ(k, ErrorKind::kBusy);
  EXPECT_NE(msg.find("retry later"), std::string::npos);
  EXPECT_EQ(drain(*r1).fin.reason, FinishReason::kLength);
  EXPECT_EQ(drain(*r2).fin.completion_tokens, 4);
  EXPECT_GE(sched.stats().rejected_busy, 1);
  EXPECT_GE(sched.stats().rejected_too_long, 2);
}

TEST_F(SchedulerTest, CancelFreesTheBlocksAtOnce) {
  auto engine = Engine::open(stories());
  SchedulerOptions so;
  so.parallel = 1;
  so.block_tokens = 16;
  Scheduler sched(*engine, so);
  auto s = sched.submit(greedy({1, 5, 6}, 400));
  SchedulerEvent ev;
  ASSERT_TRUE(s->next(ev));  // running
  s->cancel();
  while (s->next(ev)) {
  }
  EXPECT_EQ(s->finish().reason, FinishReason::kCancelled);
  EXPECT_LT(s->finish().completion_tokens, 400);
  EXPECT_EQ(sched.stats().kv_blocks_used, 0);
  EXPECT_EQ(sched.stats().requests_cancelled, 1);
  // A queued request cancelled before admission ends too, and the next one runs.
  auto busy = sched.submit(greedy({1, 5}, 300));
  auto queued = sched.submit(greedy({1, 6}, 5));
  queued->cancel();
  EXPECT_EQ(drain(*queued).fin.reason, FinishReason::kCancelled);
  busy->cancel();
  drain(*busy);
  EXPECT_EQ(drain(*sched.submit(greedy({1, 7}, 3))).fin.completion_tokens, 3);
}

TEST_F(SchedulerTest, StopStringsAndEndOfSequence) {
  auto engine = Engine::open(stories());
  Scheduler sched(*engine, SchedulerOptions{});
  const auto& g = golden()[1];
  const std::string want = " " + g["greedy_text"].get<std::string>();
  // Stop at the second word of the greedy text: the text ends right before it.
  const size_t cut = want.find(' ', 1);
  ASSERT_NE(cut, std::string::npos);
  const std::string stop = want.substr(cut, 4);
  CompletionRequest r = greedy(g["prompt_ids"].get<std::vector<int32_t>>(), 24);
  r.stop = {"never appears", stop};
  const Outcome o = drain(*sched.submit(r));
  EXPECT_EQ(o.text, want.substr(0, want.find(stop)));
  EXPECT_EQ(o.fin.reason, FinishReason::kStop);
  EXPECT_STREQ(finish_reason_name(o.fin.reason), "stop");
  // Without ignore_eos the first golden case ends at its end-of-sequence token (id 2) if the
  // greedy run reaches one, else at the limit.
  const auto& g0 = golden()[0];
  const auto ids = g0["greedy_ids"].get<std::vector<int32_t>>();
  CompletionRequest e = greedy(g0["prompt_ids"].get<std::vector<int32_t>>(),
                               static_cast<int>(ids.size()));
  e.ignore_eos = false;
  const Outcome eo = drain(*sched.submit(e));
  const auto eos_at = std::find(ids.begin(), ids.end(), 2);
  if (eos_at != ids.end()) {
    EXPECT_EQ(eo.fin.reason, FinishReason::kEndOfSequence);
    EXPECT_EQ(eo.tokens, std::vector<int32_t>(ids.begin(), eos_at));
  } else {
    EXPECT_EQ(eo.fin.reason, FinishReason::kLength);
  }
}

TEST_F(SchedulerTest, LogprobsAreTheModelsLogSoftmax) {
  auto engine = Engine::open(stories());
  Scheduler sched(*engine, SchedulerOptions{});
  CompletionRequest r = greedy({1, 400, 300}, 5);
  r.logprobs = 3;
  auto s = sched.submit(r);
  SchedulerEvent ev;
  int n = 0;
  while (s->next(ev)) {
    if (ev.token < 0) continue;
    ++n;
    ASSERT_EQ(ev.top.size(), 3u);
    EXPECT_EQ(ev.top[0].first, ev.token);  // greedy: the best token
    EXPECT_FLOAT_EQ(ev.top[0].second, ev.logprob);
    EXPECT_LE(ev.logprob, 0.f);
    EXPECT_GE(ev.top[0].second, ev.top[1].second);
    EXPECT_GE(ev.top[1].second, ev.top[2].second);
    double mass = 0;
    for (const auto& [id, lp] : ev.top) mass += std::exp(lp);
    EXPECT_LE(mass, 1.0 + 1e-5);
  }
  EXPECT_EQ(n, 5);
  // logprobs 0: each token's own log-probability, no list; -1 (the default): neither.
  r.logprobs = 0;
  auto zero = sched.submit(r);
  while (zero->next(ev))
    if (ev.token >= 0) {
      EXPECT_TRUE(ev.top.empty());
      EXPECT_LT(ev.logprob, 0.f);
    }
  r.logprobs = -1;
  auto none = sched.submit(r);
  while (none->next(ev))
    if (ev.token >= 0) EXPECT_EQ(ev.logprob, 0.f);
}

TEST(StopStrings, HoldsBackPossibleStartsAndCutsAtTheFirstMatch) {
  StopStrings s({"END", "\n\n"});
  auto r = s.push("Hello E");
  EXPECT_EQ(r.text, "Hello ");  // "E" may start END
  EXPECT_FALSE(r.matched);
  r = s.push("ND!");
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(s.push("more").text, "");  // nothing after a match

  StopStrings t({"END"});
  EXPECT_EQ(t.push("a E").text, "a ");
  EXPECT_EQ(t.push("x").text, "Ex");  // "Ex" does not start END: released
  EXPECT_EQ(t.push("EN").text, "");
  EXPECT_EQ(t.flush("D tail"), "");  // the tail completes END
  StopStrings u({"END"});
  u.push("EN");
  EXPECT_EQ(u.flush(), "EN");  // held text comes out at the end
  StopStrings none({});
  EXPECT_EQ(none.push("abc").text, "abc");
  StopStrings two({"xyz", "yq"});
  const auto m = two.push("axyq");  // "xy" could start xyz, but "yq" completes
  EXPECT_TRUE(m.matched);
  EXPECT_EQ(m.text, "ax");
}

}  // namespace
}  // namespace longctx
