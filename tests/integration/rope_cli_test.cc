// longctx run and plan with RoPE scaling: the LongRoPE choice from prompt + -n, the plan's rope
// line, and malformed rope_scaling refused with the field named (issue 4).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "integration/cli_util.h"
#include "model/random_checkpoint.h"
#include "model/test_util.h"

namespace longctx {
namespace {

nlohmann::json tiny_longrope_config() {
  const auto fx =
      test::read_json(std::string(LONGCTX_SOURCE_DIR) + "/tests/model/fixtures/rope_freqs.json");
  for (const auto& c : fx["cases"])
    if (c["name"] == "tiny-phi3-longrope") return c["config"];
  throw std::runtime_error("fixture lacks tiny-phi3-longrope");
}

std::string checkpoint(const std::string& name, const nlohmann::json& cfg) {
  RandomCheckpointOptions o;
  o.config_json = cfg.dump();
  o.dtype = DType::kF32;
  return test::random_checkpoint_dir(name, o);
}

TEST(RopeCli, RunChoosesLongRopeFactorsFromPromptPlusN) {
  // original_max_position_embeddings 40.
  const std::string dir = checkpoint("rope-cli-longrope", tiny_longrope_config());
  const auto shortrun = test::run_cli("run -m " + dir + " -p 'hello world' -n 8 --ignore-eos -t 1");
  ASSERT_EQ(shortrun.exit_code, 0) << shortrun.output;
  EXPECT_NE(shortrun.output.find("rope: longrope, short factors"), std::string::npos)
      << shortrun.output;
  const auto longrun = test::run_cli("run -m " + dir + " -p 'hello world' -n 50 --ignore-eos -t 1");
  ASSERT_EQ(longrun.exit_code, 0) << longrun.output;
  EXPECT_NE(longrun.output.find("rope: longrope, long factors"), std::string::npos)
      << longrun.output;
  EXPECT_NE(longrun.output.find("> original_max_position_embeddings 40"), std::string::npos);
  // Known up front: no recompute when the generation passes 40 tokens.
  EXPECT_EQ(longrun.output.find("recomputing"), std::string::npos) << longrun.output;
  EXPECT_NE(longrun.output.find("generated 50 tok"), std::string::npos) << longrun.output;
}

TEST(RopeCli, PlanPrintsTheScaling) {
  const auto phi = test::run_cli("plan --preset phi-3.5-mini --mem-budget 64GiB");
  EXPECT_NE(phi.output.find("rope: longrope, short factors up to 4096 tokens, long factors "
                            "beyond, attention factor 1.1902"),
            std::string::npos)
      << phi.output;
  const auto llama = test::run_cli("plan --preset llama-3.1-8b --mem-budget 64GiB --json");
  EXPECT_NE(llama.output.find("\"type\": \"llama3\""), std::string::npos) << llama.output;
}

TEST(RopeCli, MalformedRopeScalingRefusedNamingTheField) {
  auto cfg = tiny_longrope_config();
  cfg["rope_scaling"]["long_factor"].erase(0);  // 7 entries instead of rot_dim / 2 = 8
  const std::string dir = checkpoint("rope-cli-good", tiny_longrope_config());
  std::ofstream(dir + "/config.json") << cfg.dump();
  const auto run = test::run_cli("run -m " + dir + " -p hi -n 2");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("error: "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("\"rope_scaling.long_factor\" has 7 entries but must have rot_dim / 2 = 8"),
            std::string::npos)
      << run.output;
  const auto plan = test::run_cli("plan --config " + dir + "/config.json");
  EXPECT_EQ(plan.exit_code, 1) << plan.output;
  EXPECT_NE(plan.output.find("\"rope_scaling.long_factor\""), std::string::npos) << plan.output;
  cfg = tiny_longrope_config();
  cfg["rope_scaling"]["type"] = "ntk-by-parts";
  std::ofstream(dir + "/config.json") << cfg.dump();
  const auto unknown = test::run_cli("plan --config " + dir + "/config.json");
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("\"rope_scaling.type\" is \"ntk-by-parts\""), std::string::npos)
      << unknown.output;
}

}  // namespace
}  // namespace longctx
