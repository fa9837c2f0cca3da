#include "core/error.h"

namespace longctx {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kIo: return "io";
    case ErrorKind::kFormat: return "format";
    case ErrorKind::kConfig: return "config";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kShape: return "shape";
    case ErrorKind::kInvalidArg: return "invalid argument";
    case ErrorKind::kOutOfRange: return "out of range";
    case ErrorKind::kMemory: return "memory";
    case ErrorKind::kBusy: return "busy";
    case ErrorKind::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace longctx
