// What the build knows about its sources (generated at build time by cmake/build_info.cmake).
#pragma once

namespace longctx {

// The short git commit the binary was built from, or "unknown" outside a git checkout.
const char* build_commit();

}  // namespace longctx
