// Shared by the harnesses: what counts as a clean refusal of bad input.
#pragma once

#include "core/error.h"

namespace longctx::fuzz {

// Bad input must end in a longctx::Error with a message, never an internal one (an internal
// Error means an invariant broke: a bug that the input reached). Anything else escapes to
// libFuzzer, which reports it as a crash.
inline void check_error(const Error& e) {
  if (e.kind() == ErrorKind::kInternal || *e.what() == '\0') __builtin_trap();
}

// Runs fn; a clean Error is fine.
template <typename Fn>
void quietly(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    check_error(e);
  }
}

}  // namespace longctx::fuzz
