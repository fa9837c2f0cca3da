// The MPI runtime as longctx uses it (Debian's OpenMPI): which rank this process is, and blocking
// and non-blocking byte transfers. Built without MPI (LONGCTX_MPI off) every process is rank 0 of
// 1, and a start under mpirun with more ranks is refused with a message instead of running the
// whole model N times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace longctx::dist {

// The number of ranks an MPI launcher (mpirun, srun) started this process among; 1 when none did.
int launcher_ranks();
// Starts MPI when the process runs under mpirun (or any MPI launcher) and keeps argv for the
// ranks' fingerprint. Safe to call once per process, before anything else of this namespace.
void init(int* argc, char*** argv);
// Ends MPI (sends the workers their exit first, runtime/pipeline.h); a no-op without MPI.
void finalize();
int rank();
int size();
// True on every rank of a run with more than one rank.
inline bool pipelined() { return size() > 1; }
// The host this rank runs on (for messages).
std::string host();
// The command line's arguments with the value of --mem-budget left out (each rank may have its
// own budget), joined by NUL: ranks compare its hash to refuse a mismatched start.
std::string argv_key();

// Transfers of raw bytes (any size; split into pieces MPI's int counts can carry). `tag`
// separates kinds of messages between one pair of ranks.
void send(const void* data, size_t bytes, int dest, int tag);
void recv(void* data, size_t bytes, int src, int tag);
// A receive that completes later (wait_all); the buffer must stay valid until then.
void irecv(void* data, size_t bytes, int src, int tag);
// Waits for every irecv this process posted.
void wait_all();
// Every rank's `mine` (fixed size, the same on every rank), in rank order.
std::vector<uint8_t> allgather(const void* mine, size_t bytes);
// Rank 0's `data` to every rank (`bytes` the same on every rank).
void bcast(void* data, size_t bytes);
// Ends every rank of the job (after this rank printed why).
[[noreturn]] void abort_all(int code);

}  // namespace longctx::dist
