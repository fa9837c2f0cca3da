// How the longctx front ends answer a command line they cannot use: one "error:" line naming the
// command, option or value, exit code 2 (a usage error, as for most Unix tools).
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"

namespace longctx::cli {

namespace {

// Options whose empty value means something (an empty prompt is a text).
bool empty_allowed(const std::string& opt) {
  return opt == "-p" || opt == "--prompt" || opt == "--system" || opt == "--stop";
}

std::string command_list(const CLI::App& app) {
  std::string list;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    list += (list.empty() ? "" : ", ") + sub->get_name();
  return list;
}

}  // namespace

int refuse_bad_command_line(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "error: say which command to run: longctx COMMAND [options], one of %s "
                 "(longctx --help for more)\n",
                 command_list(app).c_str());
    return 2;
  }
  const std::string first = argv[1];
  if (first.size() > 1 && first[0] == '-' && first != "-h" && first != "--help") {
    std::fprintf(stderr,
                 "error: unknown option '%s' before the command; options go after it: "
                 "longctx COMMAND [options], COMMAND one of %s\n",
                 first.c_str(), command_list(app).c_str());
    return 2;
  }
  if (!first.empty() && first[0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      known = known || sub->check_name(first);
    if (!known) {
      std::fprintf(stderr,
                   "error: unknown command '%s'; longctx's commands are %s "
                   "(longctx --help for more)\n",
                   first.c_str(), command_list(app).c_str());
      return 2;
    }
  }
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i], prev = argv[i - 1];
    std::string opt;
    if (a.empty() && prev.size() > 1 && prev[0] == '-' && prev.find('=') == std::string::npos)
      opt = prev;
    else if (a.size() > 2 && a[0] == '-' && a.back() == '=')
      opt = a.substr(0, a.size() - 1);
    if (!opt.empty() && !empty_allowed(opt)) {
      std::fprintf(stderr,
                   "error: %s was given an empty value; give it a value or leave it out "
                   "(longctx %s --help)\n",
                   opt.c_str(), first.c_str());
      return 2;
    }
  }
  return 0;
}

int usage_error(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
  std::fprintf(stderr, "error: %s (longctx --help, or longctx COMMAND --help)\n", e.what());
  return 2;
}

}  // namespace longctx::cli
