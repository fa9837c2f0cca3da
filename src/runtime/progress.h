// A live progress line for long steps (a 29k-token prefill runs for minutes): tokens done / total,
// tok/s, ETA and resident memory against the plan, rewritten in place with '\r' on stderr
// ("prefill 12288/29000 tok | 410 tok/s | ETA 41 s | RSS 1.2 GiB of plan 1.9 GiB"). Shown when
// stderr is a terminal unless forced either way (--progress / --no-progress). The same figures
// reach any observer (Python's verbose output, the server's metrics) as ProgressSnapshots.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace longctx {

// Whether a progress line is shown: kAuto when stderr is a terminal.
enum class ProgressMode { kAuto, kOn, kOff };

// kOn / kOff as given; kAuto: isatty(2).
bool progress_enabled(ProgressMode mode);

// One update of a step: what it is, how far it got, and the memory it holds.
struct ProgressSnapshot {
  std::string label;   // "prefill", "perplexity", "trace"
  int64_t done = 0;    // tokens done so far
  int64_t total = 0;   // tokens of the whole step
  double seconds = 0;  // since the step began
  size_t rss = 0;      // current resident memory (VmRSS), bytes; 0: unknown
  size_t plan = 0;     // what the memory plan allows in all, bytes; 0: no plan
  std::string note;    // appended as " | note" (e.g. a running perplexity); may be empty

  double tok_per_s() const { return seconds > 0 ? static_cast<double>(done) / seconds : 0; }
  // Seconds left at the rate so far; 0 when done or when no rate is known yet.
  double eta_s() const;
};

// "prefill 12288/29000 tok | 410 tok/s | ETA 41 s | RSS 1.2 GiB of plan 1.9 GiB"; once done is
// total the ETA becomes the time taken ("in 70.7 s").
std::string format_progress(const ProgressSnapshot& s);

class Progress {
 public:
  // `plan_bytes`: the plan's total (0: none, the line shows RSS alone). `out`: where the line goes.
  Progress(std::string label, size_t plan_bytes, ProgressMode mode, FILE* out = stderr);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether the line is shown at all.
  bool enabled() const { return enabled_; }
  // Records `done` of `total` tokens. The line is redrawn at most 4 times a second; the observer
  // (when set) is called every time.
  void update(int64_t done, int64_t total, const std::string& note = "");
  // Ends the line: draws the last state and a newline when anything was drawn (or, when forced
  // on, always); a no-op when called again or when nothing was recorded.
  void finish();
  // Called with every update, whether or not the line is shown.
  void set_observer(std::function<void(const ProgressSnapshot&)> f) { observer_ = std::move(f); }

 private:
  void draw(const ProgressSnapshot& s);
  ProgressSnapshot snapshot(int64_t done, int64_t total, const std::string& note) const;

  std::string label_;
  size_t plan_;
  bool enabled_, forced_;
  FILE* out_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false, finished_ = false, recorded_ = false;
  size_t width_ = 0;        // length of the line last drawn (a shorter one is padded over it)
  int64_t drawn_done_ = 0;  // what the line shows now
  std::string drawn_note_;
  int64_t done_ = 0, total_ = 0;
  std::string note_;
  std::function<void(const ProgressSnapshot&)> observer_;
};

}  // namespace longctx
