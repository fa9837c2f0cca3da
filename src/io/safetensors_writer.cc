// SafetensorsWriter (io/weights.h): a safetensors file written as its data is produced, through a
// temporary that is renamed into place only when complete.
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/weights.h"

namespace longctx::io {

namespace {

// The header JSON, padded to 8 bytes, with each tensor's offset and size.
std::string make_header(const std::string& path, const std::vector<TensorSpec>& tensors,
                        const std::map<std::string, std::string>& metadata,
                        std::vector<uint64_t>& offsets, std::vector<size_t>& sizes,
                        uint64_t& data_bytes) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> seen;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !seen.insert(t.name).second)
      throw Error(ErrorKind::kInvalidArg,
                  "write_safetensors(" + path + "): tensor name '" + t.name +
                      "' is empty, reserved or repeated; give each tensor a unique name");
    uint64_t bytes = safetensors_elem_size(t.dtype);
    if (bytes == 0)
      throw Error(ErrorKind::kInvalidArg, "write_safetensors(" + path + "): tensor " + t.name +
                                              " has unknown dtype " + t.dtype);
    for (int64_t d : t.shape)
      if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
        throw Error(ErrorKind::kInvalidArg, "write_safetensors(" + path + "): tensor " + t.name +
                                                " has a negative or too large dimension");
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offsets.push_back(offset);
    sizes.push_back(static_cast<size_t>(bytes));
    offset += bytes;
  }
  data_bytes = offset;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  return h;
}

}  // namespace

uint64_t SafetensorsWriter::bytes_for(const std::vector<TensorSpec>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  std::vector<uint64_t> offsets;
  std::vector<size_t> sizes;
  uint64_t data = 0;
  return 8 + make_header("", tensors, metadata, offsets, sizes, data).size() + data;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path,
                                     const std::vector<TensorSpec>& tensors,
                                     const std::map<std::string, std::string>& metadata) {
  const std::string h = make_header(path, tensors, metadata, offsets_, sizes_, data_bytes_);
  const uint64_t hlen = h.size();
  data_start_ = 8 + hlen;
  file_ = std::make_unique<AtomicFileWriter>(path, file_bytes());
  file_->write_at(0, &hlen, 8);
  file_->write_at(8, h.data(), h.size());
}

// Without commit(), file_'s destructor removes the temporary.
SafetensorsWriter::~SafetensorsWriter() = default;

void SafetensorsWriter::write(size_t index, uint64_t offset, const void* data, size_t bytes) {
  if (!file_->open()) throw Error(ErrorKind::kInternal, "SafetensorsWriter used after commit");
  if (offset + bytes > sizes_.at(index))
    throw Error(ErrorKind::kInternal, "SafetensorsWriter: write past the end of a tensor");
  file_->write_at(data_start_ + offsets_[index] + offset, data, bytes);
}

void SafetensorsWriter::commit() { file_->commit(); }

}  // namespace longctx::io
