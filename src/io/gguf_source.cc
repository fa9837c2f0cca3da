// WeightSource::from_gguf: a GGUF file's tensor directory as the decoder's weight source.
#include "core/error.h"
#include "io/gguf.h"
#include "io/weights.h"

namespace longctx::io {

std::unique_ptr<WeightSource> WeightSource::from_gguf(const GgufFile& file) {
  auto w = std::unique_ptr<WeightSource>(new WeightSource());
  w->origin_ = file.path();
  w->gguf_ = true;
  if (!file.file())
    throw Error(ErrorKind::kInternal, "WeightSource::from_gguf needs a GGUF file opened from disk");
  w->files_.push_back(file.file());
  const uint8_t* base = file.file()->data();
  for (const GgufTensor& g : file.tensors()) {
    if (!g.type) {
      w->unsupported_.emplace(g.name, g.ggml_type_name);
      w->unsupported_file_.emplace(g.name, file.path());
      continue;
    }
    TensorInfo t;
    t.name = g.name;
    t.type = *g.type;
    t.shape = g.shape;
    t.data = g.data;
    t.nbytes = static_cast<size_t>(g.nbytes);
    t.file = file.path();
    t.offset = static_cast<size_t>(g.data - base);
    w->tensors_.emplace(g.name, std::move(t));
  }
  return w;
}

}  // namespace longctx::io
