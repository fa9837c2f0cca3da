// WeightSource::open_dir: model.safetensors, or model.safetensors.index.json and its shards.
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/json_util.h"
#include "io/weights.h"

namespace longctx::io {

namespace {

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A weight file that is there but cannot be read as one: a looping or dangling symbolic link, a
// folder, a device. Error(kIo) naming it; nothing when it is a regular file or absent.
void refuse_odd_entry(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;  // absent
  struct stat target;
  if (::stat(path.c_str(), &target) != 0) {
    if (errno == ELOOP)
      throw Error(ErrorKind::kIo, path +
                                      " is a symbolic link that loops (too many levels of "
                                      "symbolic links); point it at the real weight file");
    throw Error(ErrorKind::kIo, path + " is a symbolic link to " +
                                    (errno == ENOENT ? std::string("a file that does not exist")
                                                     : std::string(std::strerror(errno))) +
                                    "; point it at the real weight file");
  }
  if (!S_ISREG(target.st_mode))
    throw Error(ErrorKind::kIo,
                path + (S_ISDIR(target.st_mode) ? " is a folder" : " is not a regular file") +
                    "; it must be the safetensors weight file");
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof())
    throw Error(ErrorKind::kIo, "cannot read " + path + "; check permissions");
  return ss.str();
}

// A shard name must stay inside the model folder.
bool safe_shard_name(const std::string& s) {
  if (s.empty() || s.front() == '/') return false;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, '/'))
    if (part == "..") return false;
  return true;
}

}  // namespace

std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& origin) {
  const nlohmann::json index = parse_json_or_throw(text, origin);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object() ||
      index["weight_map"].empty())
    throw Error(ErrorKind::kFormat, origin +
                                        ": expected an object with a non-empty \"weight_map\" "
                                        "object (tensor name -> shard file); re-download it");
  // shard file -> tensors the index says it holds
  std::map<std::string, std::vector<std::string>> shards;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    if (!it->is_string() || !safe_shard_name(it->get<std::string>()))
      throw Error(ErrorKind::kFormat, origin + ": weight_map entry for " + it.key() + " is " +
                                          it->dump() +
                                          "; expected a shard file name inside the folder");
    shards[it->get<std::string>()].push_back(it.key());
  }
  return shards;
}

std::unique_ptr<WeightSource> WeightSource::open_dir(const std::string& dir) {
  if (!is_directory(dir))
    throw Error(ErrorKind::kIo, "model folder " + dir +
                                    " does not exist or is not a folder; give the folder that "
                                    "holds config.json and the .safetensors weights");
  std::unique_ptr<WeightSource> w(new WeightSource());
  w->origin_ = dir;
  const std::string single = join(dir, "model.safetensors");
  refuse_odd_entry(single);
  refuse_odd_entry(join(dir, "model.safetensors.index.json"));
  if (is_regular_file(single)) {
    w->add_file(single);
    return w;
  }
  const std::string index_path = join(dir, "model.safetensors.index.json");
  if (!is_regular_file(index_path)) {
    // A folder of PyTorch weights is the common case: say so first, with the conversion.
    for (const char* bin : {"pytorch_model.bin", "pytorch_model.bin.index.json"})
      if (is_regular_file(join(dir, bin)))
        throw Error(ErrorKind::kUnsupported,
                    "model folder " + dir + " holds " + bin +
                        " (PyTorch weights), which longctx does not read: it reads safetensors "
                        "only. Convert the checkpoint, e.g. in Python: AutoModelForCausalLM."
                        "from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True), or "
                        "download the model.safetensors files of the checkpoint");
    throw Error(ErrorKind::kIo, "model folder " + dir +
                                    " has neither model.safetensors nor "
                                    "model.safetensors.index.json (with its shards); download "
                                    "the safetensors weights of the checkpoint into it");
  }

  const std::map<std::string, std::vector<std::string>> shards =
      parse_safetensors_index(read_text(index_path), index_path);
  for (const auto& [shard, names] : shards) {
    const std::string path = join(dir, shard);
    refuse_odd_entry(path);
    if (!is_regular_file(path))
      throw Error(ErrorKind::kIo, "shard " + shard + " (listed in " + index_path + " for " +
                                      std::to_string(names.size()) + " tensors, e.g. " +
                                      names.front() + ") is missing from " + dir +
                                      "; download all shard files of the checkpoint");
    std::vector<std::string> got = w->add_file(path);
    std::set<std::string> present(got.begin(), got.end());
    for (const std::string& n : names)
      if (!present.count(n))
        throw Error(ErrorKind::kFormat, path + ": tensor " + n + " is listed in " + index_path +
                                            " for this shard but the shard does not contain it; "
                                            "the index and the shards come from different "
                                            "downloads, re-download them together");
  }
  return w;
}

}  // namespace longctx::io
