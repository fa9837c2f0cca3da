// The one error type of longctx (DESIGN.md decision 8). Every fallible boundary (files, parsing,
// planning, allocation, user input) throws longctx::Error with a message that names the problem
// and the fix. Asserts are for internal invariants only.
#pragma once

#include <stdexcept>
#include <string>

namespace longctx {

enum class ErrorKind {
  kIo,           // a file is missing, unreadable or truncated
  kFormat,       // a file is malformed (bad JSON, bad safetensors header, bad tokenizer)
  kConfig,       // config.json lacks a field or has an impossible value
  kUnsupported,  // a valid input that longctx does not handle (architecture, dtype)
  kShape,        // tensor shapes or dtypes disagree with the config
  kInvalidArg,   // a bad flag or argument from the user
  kOutOfRange,   // a token id, position or context outside what the model allows
  kMemory,       // a request does not fit the memory budget
  kBusy,         // the server cannot take the request now (queue full); retry later
  kInternal,     // a broken invariant (a bug)
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace longctx
