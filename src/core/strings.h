// Small string helpers shared by the parsers that suggest what the user may have meant.
#pragma once

#include <cstddef>
#include <string_view>

namespace longctx {

// Levenshtein distance (insertions, deletions, substitutions) between a and b.
size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace longctx
