// The messages of a pipeline run (docs/distributed.md). Rank 0 drives; every message goes down
// the chain rank r -> r + 1 as a fixed-size Header, followed for some ops by a payload; the last
// rank sends logits straight back to rank 0.
#pragma once

#include <cstdint>

namespace longctx::dist {

enum Tag : int { kTagHeader = 1, kTagPayload = 2, kTagLogits = 3 };

enum class Op : int32_t {
  kPlan = 1,  // payload: the job (JSON); then every rank plans (collective)
  kLoad,      // every rank loads its stage (collective)
  kOpen,      // a session: context, chunk, KV types
  kForward,   // payload: [n][hidden] activations (the previous stage's output)
  kTruncate,  // a session keeps its first n tokens
  kClose,     // a session ends
  kStats,     // every rank reports its peak RSS (collective)
  kExit,      // the run ends
};

// Which logits the last rank sends back for a forward chunk.
enum class LogitsWanted : int32_t { kNone = 0, kLast = 1, kAll = 2 };

struct Header {
  Op op = Op::kExit;
  int32_t session = 0;
  int64_t n = 0;          // kForward: rows; kTruncate: tokens kept; kPlan: payload bytes
  int64_t pos0 = 0;       // kForward: position of the first row
  int64_t rope_len = 0;   // kForward: as Model::forward's
  LogitsWanted logits = LogitsWanted::kNone;
  int32_t kv_k = 0, kv_v = 0;          // kOpen: KvType values
  int64_t context = 0, chunk = 0;      // kOpen
};
// Sent as raw bytes: every rank runs the same build on the same architecture (docs/distributed.md).
static_assert(sizeof(Header) == 64, "the header's layout is part of the protocol");

}  // namespace longctx::dist
