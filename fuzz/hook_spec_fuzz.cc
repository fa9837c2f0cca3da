// libFuzzer harness for the hook options' parsers (--hooks names and globs, --pos slices,
// --pattern-queries positions): any input either parses or throws longctx::Error; never a crash,
// a hang or another exception. The input's first line is the text; it is fed to every parser.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "hooks/hook_files.h"
#include "hooks/hook_point.h"
#include "hooks/hook_runner.h"

using namespace longctx;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  constexpr int kLayers = 4;
  try {
    for (const hooks::HookId& id : hooks::expand_hook_list(s, kLayers))
      if (hooks::parse_hook_name(hooks::hook_name(id), kLayers) != id) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    const hooks::PosSlice p = hooks::PosSlice::parse(s);
    const auto [a, b] = p.resolve(100);
    if (a < 0 || b > 100 || a >= b) __builtin_trap();
  } catch (const Error&) {
  }
  try {
    hooks::parse_positions(s, "--pattern-queries");
  } catch (const Error&) {
  }
  return 0;
}
