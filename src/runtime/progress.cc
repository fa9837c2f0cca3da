#include "runtime/progress.h"

#include <unistd.h>

#include <cmath>

#include "core/proc_stats.h"
#include "plan/memory_budget.h"

namespace longctx {

namespace {
constexpr double kRedrawSeconds = 0.25;  // at most 4 redraws a second

// "41 s", "12 min 05 s".
std::string format_seconds(double s) {
  char buf[48];
  if (s < 100)
    std::snprintf(buf, sizeof buf, s < 10 ? "%.1f s" : "%.0f s", s);
  else
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", static_cast<long long>(s) / 60,
                  static_cast<long long>(s) % 60);
  return buf;
}
}  // namespace

bool progress_enabled(ProgressMode mode) {
  if (mode == ProgressMode::kAuto) return isatty(2) != 0;
  return mode == ProgressMode::kOn;
}

double ProgressSnapshot::eta_s() const {
  const double rate = tok_per_s();
  if (done >= total || rate <= 0) return 0;
  return static_cast<double>(total - done) / rate;
}

std::string format_progress(const ProgressSnapshot& s) {
  char head[160];
  std::snprintf(head, sizeof head, "%s %lld/%lld tok | %.0f tok/s | ", s.label.c_str(),
                static_cast<long long>(s.done), static_cast<long long>(s.total), s.tok_per_s());
  std::string line = head;
  if (s.done >= s.total)
    line += "in " + format_seconds(s.seconds);
  else if (s.done > 0 && s.seconds > 0)
    line += "ETA " + format_seconds(s.eta_s());
  else
    line += "ETA ?";
  if (s.rss > 0) {
    line += " | RSS " + format_size(s.rss);
    if (s.plan > 0) line += " of plan " + format_size(s.plan);
  }
  if (!s.note.empty()) line += " | " + s.note;
  return line;
}

Progress::Progress(std::string label, size_t plan_bytes, ProgressMode mode, FILE* out)
    : label_(std::move(label)),
      plan_(plan_bytes),
      enabled_(progress_enabled(mode)),
      forced_(mode == ProgressMode::kOn),
      out_(out),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {
  }
}

ProgressSnapshot Progress::snapshot(int64_t done, int64_t total, const std::string& note) const {
  ProgressSnapshot s;
  s.label = label_;
  s.done = done;
  s.total = total;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  s.rss = current_rss_bytes();
  s.plan = plan_;
  s.note = note;
  return s;
}

void Progress::update(int64_t done, int64_t total, const std::string& note) {
  if (finished_) return;
  done_ = done;
  total_ = total;
  note_ = note;
  recorded_ = true;
  const auto now = std::chrono::steady_clock::now();
  const bool due = std::chrono::duration<double>(now - last_draw_).count() >= kRedrawSeconds;
  if (!observer_ && !(enabled_ && due)) return;  // nothing to do: skip reading /proc
  const ProgressSnapshot s = snapshot(done, total, note);
  if (observer_) observer_(s);
  if (enabled_ && due) {
    draw(s);
    last_draw_ = now;
  }
}

void Progress::draw(const ProgressSnapshot& s) {
  std::string line = format_progress(s);
  const size_t n = line.size();
  if (n < width_) line.append(width_ - n, ' ');  // cover the rest of a longer previous line
  width_ = n;
  std::fprintf(out_, "\r%s", line.c_str());
  std::fflush(out_);
  drawn_ = true;
  drawn_done_ = s.done;
  drawn_note_ = s.note;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_ || !recorded_ || (!drawn_ && !forced_)) return;
  if (!drawn_ || drawn_done_ != done_ || drawn_note_ != note_) draw(snapshot(done_, total_, note_));
  std::fputs("\n", out_);
  std::fflush(out_);
}

}  // namespace longctx
