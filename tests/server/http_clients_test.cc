// Clients that misbehave (disconnect mid-answer, trickle their headers, open and drop hundreds of
// connections, outnumber the workers) and stopping with streams open; the server must go on.
#include "server/http_fixture.h"

namespace longctx::server {
namespace {

TEST_F(HttpServerTest, ClientThatDisconnectsMidStreamIsCancelledAtOnce) {
  FakeScript s;
  s.token_delay = std::chrono::milliseconds(20);
  start(std::make_shared<FakeBackend>(s));
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(
      fd,
      test::http_post("/v1/completions", R"({"prompt": "hi", "max_tokens": 50, "stream": true})")));
  // Two tokens arrive, then the client goes.
  const std::string got = test::read_until(fd, "\"text\":\"b\"", std::chrono::seconds(5));
  ASSERT_NE(got.find("\"text\":\"b\""), std::string::npos) << got;
  close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(eventually([&] { return backend_->cancels.load() == 1; }, std::chrono::seconds(3)));
  // Far sooner than the 50 tokens x 20 ms the request would have run.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(600));
  expect_serving();
}

TEST_F(HttpServerTest, ClientThatDisconnectsWhileWaitingIsCancelled) {
  FakeScript s;
  s.token_delay = std::chrono::milliseconds(50);
  start(std::make_shared<FakeBackend>(s));
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(
      fd, test::http_post("/v1/completions", R"({"prompt": "hi", "max_tokens": 60})")));
  ASSERT_TRUE(eventually([&] { return backend_->submitted.load() == 1; }, std::chrono::seconds(3)));
  close(fd);
  EXPECT_TRUE(eventually([&] { return backend_->cancels.load() == 1; }, std::chrono::seconds(1)));
  expect_serving();
}

TEST_F(HttpServerTest, SlowHeadersAreDroppedAtTheDeadline) {
  ServerOptions o;
  o.read_deadline = std::chrono::milliseconds(800);
  o.io_timeout = std::chrono::milliseconds(5000);  // each byte comes well within this
  start(std::make_shared<FakeBackend>(), o);
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  const std::string req = test::http_post("/v1/completions", R"({"prompt": "hi"})");
  const auto t0 = std::chrono::steady_clock::now();
  bool closed = false;
  for (size_t i = 0; i < req.size() && !closed; ++i) {
    if (!test::send_all(fd, req.substr(i, 1))) break;
    test::read_until(fd, "", std::chrono::milliseconds(100), &closed);
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  close(fd);
  EXPECT_TRUE(closed) << "the server kept reading a request trickling in byte by byte";
  EXPECT_LT(took, std::chrono::milliseconds(2500));
  EXPECT_EQ(backend_->submitted, 0);
  expect_serving();
  const auto m = client().Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("longctx_http_dropped_connections_total 1\n"), std::string::npos)
      << m->body;
}

TEST_F(HttpServerTest, TwoHundredConnectionsOpenedAndDroppedAtOnce) {
  start(std::make_shared<FakeBackend>());
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);  // in progress; no wait
    // Half of them send the start of a request first.
    if (i % 2) send(fd, "POST /v1/completions HTTP/1.1\r\n", 31, MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  for (int fd : fds) close(fd);
  const auto t0 = std::chrono::steady_clock::now();
  expect_serving();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(backend_->submitted, 1);
}

TEST_F(HttpServerTest, TooManyWaitingConnectionsGet503) {
  ServerOptions o;
  o.threads = 1;
  o.max_pending_connections = 1;
  o.read_deadline = std::chrono::milliseconds(3000);
  start(std::make_shared<FakeBackend>(), o);
  // The only worker is held by a connection that sends nothing; the next one waits; the third
  // is turned away at once.
  const int hold = test::connect_local(port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int wait = test::connect_local(port_);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const int third = test::connect_local(port_);
  ASSERT_GE(third, 0);
  const std::string got = test::read_until(third, "}}", std::chrono::seconds(2));
  EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
  EXPECT_NE(got.find("too many open connections"), std::string::npos) << got;
  for (int fd : {hold, wait, third}) close(fd);
  // The worker is free again once it has read the end of both idle connections.
  ASSERT_TRUE(eventually(
      [&] {
        const auto h = client().Get("/health");
        return h && h->status == 200;
      },
      std::chrono::seconds(3)));
  expect_serving();
}

TEST_F(HttpServerTest, StopEndsRunningStreams) {
  FakeScript s;
  s.token_delay = std::chrono::milliseconds(50);
  start(std::make_shared<FakeBackend>(s));
  const int fd = test::connect_local(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(test::send_all(
      fd,
      test::http_post("/v1/completions", R"({"prompt": "hi", "max_tokens": 60, "stream": true})")));
  const std::string got = test::read_until(fd, "\"text\":\"a\"", std::chrono::seconds(3));
  ASSERT_NE(got.find("\"text\":\"a\""), std::string::npos) << got;
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(backend_->cancels, 1);
  close(fd);
}

}  // namespace
}  // namespace longctx::server
