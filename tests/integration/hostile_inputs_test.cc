// Issue 19, items 3 and 4: nothing destroyed, nothing silently wrong, and messages that name the
// real cause. Each test is one class of hostile input, run through the binary as a user would;
// scripts/hostile-inputs.py tries about a thousand of them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "integration/cli_util.h"
#include "io/weights.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

namespace fs = std::filesystem;

const char* kTiny =
    R"({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2})";

std::string tiny_model(const std::string& name, const std::string& config = kTiny) {
  RandomCheckpointOptions o;
  o.config_json = config;
  o.dtype = DType::kF32;
  return test::random_checkpoint_dir(name, o);
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = test::read_json(dir + "/config.json");
  edit(j);
  std::ofstream(dir + "/config.json", std::ios::trunc) << j.dump();
}

bool has(const test::CliResult& r, const std::string& s) {
  return r.output.find(s) != std::string::npos;
}

// A refusal: exit 1 (2 for a command line), no crash, no internal error, every needle present.
void expect_refusal(const test::CliResult& r, std::initializer_list<std::string> needles,
                    int code = 1) {
  EXPECT_EQ(r.exit_code, code) << r.output;
  EXPECT_FALSE(has(r, "internal")) << r.output;
  EXPECT_FALSE(has(r, "please report")) << r.output;
  for (const std::string& n : needles)
    EXPECT_TRUE(has(r, n)) << "missing '" << n << "' in\n" << r.output;
}

std::string run_args(const std::string& dir) {
  return "run -m " + dir + " -p hi -n 2 -t 1 --no-progress --mem-budget 256MiB";
}
std::string plan_args(const std::string& dir) { return "plan -m " + dir + " --mem-budget 256MiB"; }

// --- item 3: nothing destroyed ----------------------------------------------------------------

TEST(HostileInputs, RandomModelRefusesAFolderThatHoldsSomethingUnlessForced) {
  const std::string victim = tiny_model("rm_victim");
  const std::string weights_before = [&] {
    std::ifstream f(victim + "/model.safetensors", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  const std::string args = "random-model --preset smollm2-135m --layers 1 --dtype bf16 -o ";
  auto r = test::run_cli(args + victim);
  expect_refusal(r, {victim, "not empty", "config.json", "--force"});
  std::ifstream f(victim + "/model.safetensors", std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), weights_before)
      << "the refused run changed the folder";
  EXPECT_EQ(test::read_json(victim + "/config.json")["hidden_size"], 32);
  for (const auto& e : fs::directory_iterator(fs::path(victim).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".longctx-tmp"), std::string::npos) << e.path();

  // --force replaces the checkpoint's files and leaves other files alone.
  std::ofstream(victim + "/notes.txt") << "mine";
  r = test::run_cli(args + victim + " --force");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::read_json(victim + "/config.json")["hidden_size"], 576);
  EXPECT_TRUE(fs::exists(victim + "/notes.txt"));
  // A new folder is written whole (and runs).
  const std::string fresh = test::scratch_dir("rm_fresh") + "/new";
  ASSERT_EQ(test::run_cli(args + fresh).exit_code, 0);
  EXPECT_TRUE(fs::exists(fresh + "/config.json"));
  expect_refusal(test::run_cli(args + victim + "/notes.txt"), {"notes.txt", "not a folder"});
}

// --- item 3: every field that changes the numbers is honoured or refused ----------------------

TEST(HostileInputs, HiddenActIsHonouredOrRefusedByPlanAndRunAlike) {
  const std::string dir = tiny_model("gelu");
  edit_config(dir, [](nlohmann::json& j) { j["hidden_act"] = "gelu"; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"\"hidden_act\"", "gelu", "\"silu\""});
  edit_config(dir, [](nlohmann::json& j) { j["hidden_act"] = "swish"; });
  EXPECT_EQ(test::run_cli(run_args(dir)).exit_code, 0);
}

TEST(HostileInputs, MlpBiasAndForeignVariantsAreRefusedByPlanAndRun) {
  const std::string dir = tiny_model("variants");
  edit_config(dir, [](nlohmann::json& j) { j["mlp_bias"] = true; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"\"mlp_bias\""});
  edit_config(dir, [](nlohmann::json& j) {
    j["mlp_bias"] = false;
    j["final_logit_softcapping"] = 30.0;
  });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"\"final_logit_softcapping\"", "does not compute"});
}

TEST(HostileInputs, BiasTensorsTheConfigDoesNotDeclareAreRefused) {
  nlohmann::json cfg = nlohmann::json::parse(kTiny);
  cfg["attention_bias"] = true;  // the writer stores q/k/v/o biases
  const std::string dir = tiny_model("undeclared_bias", cfg.dump());
  ASSERT_EQ(test::run_cli(run_args(dir)).exit_code, 0);
  edit_config(dir, [](nlohmann::json& j) { j["attention_bias"] = false; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"self_attn", ".bias", "attention_bias"});
}

TEST(HostileInputs, ConfigWithFewerOrMoreLayersThanTheCheckpointIsRefused) {
  const std::string dir = tiny_model("layers");
  edit_config(dir, [](nlohmann::json& j) { j["num_hidden_layers"] = 1; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"num_hidden_layers = 1", "2 layers", "model.layers.1"});
  edit_config(dir, [](nlohmann::json& j) { j["num_hidden_layers"] = 3; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"num_hidden_layers = 3", "only 2 layers"});
}

TEST(HostileInputs, PlanReadsAFolderThroughTheSameValidationAsRun) {
  const std::string dir = tiny_model("plan_same");
  // A shape that disagrees with config.json, named by field.
  edit_config(dir, [](nlohmann::json& j) { j["intermediate_size"] = 96; });
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"mlp.gate_proj", "intermediate_size", "config.json"});
  edit_config(dir, [](nlohmann::json& j) { j["intermediate_size"] = 64; });
  ASSERT_EQ(test::run_cli(plan_args(dir)).exit_code, 0);
  // A non-JSON safetensors header.
  const std::string w = dir + "/model.safetensors";
  const std::string saved = dir + "/saved.bin";
  fs::copy_file(w, saved);
  {
    std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f << "not json!";
  }
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"model.safetensors", "JSON"});
  // A shard listed in the index but missing.
  fs::rename(saved, dir + "/model-00001-of-00002.safetensors");
  fs::remove(w);
  nlohmann::json index;
  const auto shard = io::WeightSource::open_file(dir + "/model-00001-of-00002.safetensors");
  for (const auto& [name, t] : shard->tensors())
    index["weight_map"][name] = "model-00001-of-00002.safetensors";
  index["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"model-00002-of-00002.safetensors", "missing"});
}

// Writes `value` over the first elements of an F32 tensor of the folder's model.safetensors.
void poison(const std::string& dir, const std::string& tensor, float value) {
  size_t offset = 0;
  {
    const auto w = io::WeightSource::open_dir(dir);
    offset = w->get(tensor).offset;
  }
  std::fstream f(dir + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  for (int i = 0; i < 8; ++i) f.write(reinterpret_cast<const char*>(&value), sizeof value);
}

TEST(HostileInputs, NonFiniteWeightsAreReportedNotPrintedAsText) {
  const std::string dir = tiny_model("nan");
  poison(dir, "model.layers.1.mlp.down_proj.weight", std::numeric_limits<float>::quiet_NaN());
  // Loaded resident: the scan at load names the tensor.
  expect_refusal(test::run_cli(run_args(dir)),
                 {"model.layers.1.mlp.down_proj.weight", "NaN", "model.safetensors"});
  // --mmap skips the scan; the logits check stops it before any text.
  auto r = test::run_cli(run_args(dir) + " --mmap");
  expect_refusal(r, {"logits", "NaN", "not finite"});
  EXPECT_FALSE(has(r, "\xE2\x81\x87")) << r.output;  // "⁇", what garbage used to look like

  const std::string inf = tiny_model("inf");
  poison(inf, "model.norm.weight", std::numeric_limits<float>::infinity());
  expect_refusal(test::run_cli(run_args(inf)), {"model.norm.weight", "Inf"});
}

TEST(HostileInputs, PromptAndNumberFlagsFollowOneStatedRule) {
  const std::string dir = tiny_model("flags19");
  const std::string scratch = test::scratch_dir("flags19_files");
  std::ofstream(scratch + "/p.txt") << "hello";
  const std::string base = "run -m " + dir + " -n 2 -t 1 --no-progress --mem-budget 256MiB";
  expect_refusal(test::run_cli(base + " -p hi -f " + scratch + "/p.txt"), {"-p", "-f", "not both"});
  expect_refusal(test::run_cli(base + " -f " + scratch), {scratch, "is a folder", "-f"});
  expect_refusal(test::run_cli("trace -m " + dir + " -f " + scratch + " -o " + scratch +
                               "/t.st --hooks blocks.0.hook_resid_post"),
                 {scratch, "is a folder"});
  expect_refusal(test::run_cli("tokenize -m " + dir + " -f " + scratch), {"is a folder"});
  // 0 is automatic, negatives are refused, and --help says so.
  EXPECT_EQ(test::run_cli(base + " -p hi -c 0").exit_code, 0);
  EXPECT_EQ(test::run_cli(base + " -p hi --prefill-chunk 0").exit_code, 0);
  expect_refusal(test::run_cli(base + " -p hi -c -1"), {"-c must be a positive", "0 = auto"});
  const std::string text = test::shared_dir() + "/text/stories.txt";
  const std::string ppl = "perplexity -m " + test::model_path("stories260K") + " -f " + text +
                          " -c 64 -t 1 --no-progress --mem-budget 256MiB";
  EXPECT_EQ(test::run_cli(ppl + " --stride 0").exit_code, 0);
  expect_refusal(test::run_cli(ppl + " --stride -1"), {"--stride must be a positive"});
  for (const char* cmd : {"run", "perplexity", "plan"}) {
    const auto help = test::run_cli(std::string(cmd) + " --help");
    EXPECT_EQ(help.exit_code, 0);
    EXPECT_TRUE(has(help, "0 means automatic")) << help.output;
    EXPECT_TRUE(has(help, "negative values are refused")) << help.output;
  }
  // An empty value is not a silent default.
  expect_refusal(test::run_cli(base + " -p hi -c ''"), {"-c was given an empty value"}, 2);
}

// --- item 4: messages that name the real cause -----------------------------------------------

TEST(HostileInputs, SymbolicLinkLoopsAreNamed) {
  const std::string dir = tiny_model("loop");
  fs::remove(dir + "/config.json");
  fs::create_symlink("config.json", dir + "/config.json");
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"config.json", "symbolic link that loops"});
  const std::string w = tiny_model("loop_weights");
  fs::remove(w + "/model.safetensors");
  fs::create_symlink("model.safetensors", w + "/model.safetensors");
  for (const std::string& args : {run_args(w), plan_args(w)})
    expect_refusal(test::run_cli(args), {"model.safetensors", "symbolic link that loops"});
}

TEST(HostileInputs, TooManyThreadsNamesPerThreadScratch) {
  const std::string dir = tiny_model("threads");
  expect_refusal(test::run_cli("run -m " + dir + " -p hi -t 100000"),
                 {"-t 100000", "per-thread scratch", "Use -t"});
  // Within the cap but past the budget: the refusal blames the threads, not the weights.
  auto r = test::run_cli("plan -m " + dir + " -t 1000 --mem-budget 64MiB");
  expect_refusal(r, {"per-thread scratch for -t 1000", "or fewer fits"});
  EXPECT_FALSE(has(r, "weights and fixed costs alone")) << r.output;
}

TEST(HostileInputs, PerplexityOnAShortTextDoesNotSpeakOfAFlagNotGiven) {
  const std::string scratch = test::scratch_dir("ppl_short");
  std::ofstream(scratch + "/short.txt") << "Once upon";
  std::ofstream(scratch + "/empty.txt") << "";
  const std::string m = test::model_path("stories260K");
  auto r = test::run_cli("perplexity -m " + m + " -f " + scratch + "/short.txt -t 1");
  expect_refusal(r, {"short.txt", "tokens", "longer text"});
  EXPECT_FALSE(has(r, "-c")) << r.output;
  r = test::run_cli("perplexity -m " + m + " -f " + scratch + "/empty.txt -t 1");
  expect_refusal(r, {"empty.txt", "is empty"});
  EXPECT_FALSE(has(r, "-c")) << r.output;
}

TEST(HostileInputs, EmptyVocabularyBlamesTheTokenizer) {
  const std::string dir = tiny_model("empty_vocab");
  fs::remove(dir + "/tokenizer.model");
  nlohmann::json t = test::read_json(dir + "/tokenizer.json");
  t["model"]["vocab"] = nlohmann::json::object();
  t["model"]["merges"] = nlohmann::json::array();
  t["added_tokens"] = nlohmann::json::array();
  std::ofstream(dir + "/tokenizer.json", std::ios::trunc) << t.dump();
  for (const std::string& args : {run_args(dir), "tokenize -m " + dir + " -p hi"}) {
    auto r = test::run_cli(args);
    expect_refusal(r, {"tokenizer.json", "vocabulary is empty"});
    EXPECT_FALSE(has(r, "prompt is empty")) << r.output;
  }
}

TEST(HostileInputs, MemBudgetZeroMustBePositive) {
  const std::string dir = tiny_model("budget0");
  const std::string run = "run -m " + dir + " -p hi -n 2 -t 1 --no-progress";
  for (const char* v : {"0", "0MiB", "-1"})
    expect_refusal(test::run_cli(run + " --mem-budget=" + v), {"--mem-budget must be positive"});
  expect_refusal(test::run_cli(run + " --mem-budget lots"), {"--mem-budget: cannot read 'lots'"});
}

TEST(HostileInputs, ConfigJsonThatIsAFolderOrADevice) {
  const std::string dir = tiny_model("cfgdir");
  fs::remove(dir + "/config.json");
  fs::create_directory(dir + "/config.json");
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"config.json is a folder"});
  fs::remove(dir + "/config.json");
  fs::create_symlink("/dev/zero", dir + "/config.json");  // once read forever
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"config.json is not a regular file"});
}

TEST(HostileInputs, FolderWithOnlyPytorchWeightsShowsTheConvertHint) {
  const std::string dir = tiny_model("pytorch");
  fs::remove(dir + "/model.safetensors");
  std::ofstream(dir + "/pytorch_model.bin") << "PK";
  for (const std::string& args : {run_args(dir), plan_args(dir)})
    expect_refusal(test::run_cli(args), {"pytorch_model.bin", "safe_serialization=True"});
}

TEST(HostileInputs, UnknownCommandsAndOptionsAreUsageErrors) {
  expect_refusal(test::run_cli("frobnicate -m x"), {"unknown command 'frobnicate'", "run, plan"},
                 2);
  expect_refusal(test::run_cli("--frob"), {"unknown option '--frob'"}, 2);
  expect_refusal(test::run_cli("run --frobnicate"), {"error:", "--frobnicate"}, 2);
  expect_refusal(test::run_cli("run -c many"), {"error:", "--ctx", "many"}, 2);
  EXPECT_EQ(test::run_cli("--help").exit_code, 0);
}

}  // namespace
}  // namespace longctx
