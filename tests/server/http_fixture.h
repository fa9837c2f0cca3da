// The fixture of the HTTP tests: a server on a free loopback port over the scripted backend.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <thread>

#include "server/fake_backend.h"
#include "server/http_test_util.h"
#include "server/server.h"

namespace longctx::server {

using nlohmann::json;
using test::FakeBackend;
using test::FakeScript;

// Waits until `pred` holds, at most `limit`.
template <typename P>
bool eventually(P pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

class HttpServerTest : public ::testing::Test {
 protected:
  // Starts a server on a free loopback port with `backend` (null: still loading).
  void start(std::shared_ptr<FakeBackend> backend, ServerOptions o = {}) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.model_id = "fake-model";
    if (o.threads == 0) o.threads = 8;
    server_ = std::make_unique<HttpServer>(o);
    port_ = server_->start();
    backend_ = backend;
    if (backend) server_->set_backend(backend);
  }
  void TearDown() override {
    if (server_) server_->stop();
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(10, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& h = {}) {
    return client().Post(path.c_str(), h, body, "application/json");
  }
  // A normal completion succeeds: the server still serves.
  void expect_serving() {
    const auto r = post("/v1/completions", R"({"prompt": "hi", "max_tokens": 2})");
    ASSERT_TRUE(r) << "no response: " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body)["choices"][0]["text"], "ab");
  }
  static json body_of(const httplib::Result& r) { return json::parse(r->body); }

  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<FakeBackend> backend_;
  int port_ = 0;
};

}  // namespace longctx::server
