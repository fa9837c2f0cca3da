#include "dist/mpi.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "dist/protocol.h"

#ifdef LONGCTX_HAVE_MPI
#include <mpi.h>
#endif

namespace longctx::dist {

namespace {
int g_rank = 0, g_size = 1;
std::vector<std::string> g_args;
#ifdef LONGCTX_HAVE_MPI
bool g_started = false;
std::vector<MPI_Request> g_pending;
constexpr size_t kPiece = size_t{1} << 30;  // bytes per MPI call (counts are ints)
#endif
}  // namespace

// A launcher's rank count, when this process was started by one (OpenMPI, MPICH/Hydra, Slurm).
int launcher_ranks() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::max(1, std::atoi(v));
  return 1;
}

void init(int* argc, char*** argv) {
  if (argc && argv)
    for (int i = 1; i < *argc; ++i) g_args.emplace_back((*argv)[i]);
  const int launched = launcher_ranks();
#ifdef LONGCTX_HAVE_MPI
  if (launched > 1 && !g_started) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_started = true;
  }
#else
  if (launched > 1)
    throw Error(ErrorKind::kUnsupported,
                "started by an MPI launcher with " + std::to_string(launched) +
                    " ranks, but this longctx was built without MPI, so every rank would run the "
                    "whole model on its own. Install libopenmpi-dev (bash scripts/install-deps.sh) "
                    "and rebuild, or run without mpirun");
#endif
}

void finalize() {
#ifdef LONGCTX_HAVE_MPI
  if (!g_started) return;
  wait_all();
  if (g_rank == 0 && g_size > 1) {
    Header h;
    h.op = Op::kExit;
    send(&h, sizeof h, 1, kTagHeader);
  }
  MPI_Finalize();
  g_started = false;
#endif
}

int rank() { return g_rank; }
int size() { return g_size; }

std::string host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "?";
  return buf;
}

std::string argv_key() {
  std::string key;
  for (size_t i = 0; i < g_args.size(); ++i) {
    const std::string& a = g_args[i];
    if (a == "--mem-budget") {
      ++i;  // its value is per rank
      continue;
    }
    if (a.rfind("--mem-budget=", 0) == 0) continue;
    key += a;
    key += '\0';
  }
  return key;
}

#ifdef LONGCTX_HAVE_MPI
namespace {
// Calls fn(piece, count) over [data, data + bytes) in pieces MPI's int counts can carry (at
// least one call, for a zero-byte message too).
template <typename T, typename Fn>
void in_pieces(T* data, size_t bytes, Fn&& fn) {
  auto* p = reinterpret_cast<std::conditional_t<std::is_const_v<T>, const uint8_t, uint8_t>*>(data);
  do {
    const size_t n = std::min(bytes, kPiece);
    fn(p, static_cast<int>(n));
    p += n;
    bytes -= n;
  } while (bytes > 0);
}
}  // namespace

void send(const void* data, size_t bytes, int dest, int tag) {
  in_pieces(data, bytes, [&](const uint8_t* p, int n) {
    MPI_Send(p, n, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
  });
}

void recv(void* data, size_t bytes, int src, int tag) {
  in_pieces(data, bytes, [&](uint8_t* p, int n) {
    MPI_Recv(p, n, MPI_BYTE, src, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  });
}

void irecv(void* data, size_t bytes, int src, int tag) {
  in_pieces(data, bytes, [&](uint8_t* p, int n) {
    g_pending.emplace_back();
    MPI_Irecv(p, n, MPI_BYTE, src, tag, MPI_COMM_WORLD, &g_pending.back());
  });
}

void wait_all() {
  if (g_pending.empty()) return;
  MPI_Waitall(static_cast<int>(g_pending.size()), g_pending.data(), MPI_STATUSES_IGNORE);
  g_pending.clear();
}

std::vector<uint8_t> allgather(const void* mine, size_t bytes) {
  if (bytes > static_cast<size_t>(INT_MAX / std::max(1, g_size)))
    throw Error(ErrorKind::kInternal, "allgather of more than 2 GiB");
  std::vector<uint8_t> all(bytes * static_cast<size_t>(g_size));
  MPI_Allgather(mine, static_cast<int>(bytes), MPI_BYTE, all.data(), static_cast<int>(bytes),
                MPI_BYTE, MPI_COMM_WORLD);
  return all;
}

void bcast(void* data, size_t bytes) {
  if (bytes > static_cast<size_t>(INT_MAX)) throw Error(ErrorKind::kInternal, "bcast of > 2 GiB");
  MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, 0, MPI_COMM_WORLD);
}

void abort_all(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}
#else
namespace {
[[noreturn]] void no_peers() {
  throw Error(ErrorKind::kInternal, "a transfer between ranks in a build without MPI");
}
}  // namespace
void send(const void*, size_t, int, int) { no_peers(); }
void recv(void*, size_t, int, int) { no_peers(); }
void irecv(void*, size_t, int, int) { no_peers(); }
void wait_all() {}
std::vector<uint8_t> allgather(const void* mine, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(mine);
  return std::vector<uint8_t>(p, p + bytes);
}
void bcast(void*, size_t) {}
void abort_all(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}
#endif

}  // namespace longctx::dist
