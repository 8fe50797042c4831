// A team of threads for one kernel call: the calling thread plus the XLA intra-op pool threads that arrive in
// time, synchronised by a barrier (spin, then futex sleep) once per time step.
//
// Why not a fixed team: XLA may run other work (another FFI call, a matmul) on the pool at the same moment, and
// a task scheduled there may start late or only after this call returns. So the team closes its membership
// once the calling thread has prepared the call (packed the weights) or a short wait has passed; helpers that
// arrive later leave at once, and the work is split among the members actually present. Results do not depend
// on the team size: every output element is computed by one thread in a fixed order.
#pragma once

#include <atomic>
#include <chrono>
#include <climits>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace rnnlab {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(_M_X64)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins a little, then yields the core: on an oversubscribed machine a waiting member must let the member it
// waits for run.
inline void Backoff(int& spins) {
  if (++spins < 2000)
    CpuRelax();
  else
    std::this_thread::yield();
}

// Sleeps while *word == expected (Linux futex; at most `ns` nanoseconds), or yields elsewhere.
inline void WaitWhile(std::atomic<int>* word, int expected, long ns) {
#if defined(__linux__)
  timespec ts{0, ns};
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
#else
  (void)word, (void)expected, (void)ns;
  std::this_thread::yield();
#endif
}

inline void WakeAll(std::atomic<int>* word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
#else
  (void)word;
#endif
}

// A sense-reversing barrier; each member keeps its own `sense`, starting at 0. A waiting member spins for a
// while (on a quiet machine the others arrive within microseconds), then sleeps on a futex until the last
// member's release wakes it, rather than yielding in a loop. The spin length is a trade (measured, LSTM): 200
// pauses halved the time of two processes sharing 2 cores at (32, 200, 1, 64) (27 instead of 48 ms a step;
// the JAX kernels 23 ms, one thread per call 24 ms) but slowed `make bench` at T = 2000 (GRU at
// (16, 2000, 2, 64): 102 instead of 48 ms). So the spin stays long, and where processes share the cores
// they should share out the threads (RNNLAB_NATIVE_THREADS; `rnnlab experiment --jobs N` does it).
class Barrier {
 public:
  static constexpr int kSpins = 2000;
  static constexpr long kSleepNs = 2'000'000;  // a bound on one sleep, so that no lost wake-up can hang

  explicit Barrier(int n = 1) : n_(n) {}
  void Wait(int& sense) {
    if (n_ == 1) return;
    sense ^= 1;
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      flag_.store(sense, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) WakeAll(&flag_);
      return;
    }
    for (int spins = 0; flag_.load(std::memory_order_acquire) != sense;) {
      if (++spins < kSpins) {
        CpuRelax();
        continue;
      }
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (flag_.load(std::memory_order_seq_cst) != sense) WaitWhile(&flag_, sense ^ 1, kSleepNs);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

 private:
  int n_;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<int> flag_{0};
  alignas(64) std::atomic<int> sleepers_{0};
};

struct TeamState {
  static constexpr int kClosed = 1 << 30;
  std::atomic<int> joined{0};   // helpers that joined; kClosed is or-ed in when membership is final
  std::atomic<int> members{0};  // team size, published after closing (0 before)
  std::atomic<int> finished{0};
  std::unique_ptr<Barrier> barrier;
  std::thread::id caller;
  void (*work)(void*, int, int, Barrier&) = nullptr;
  void* ctx = nullptr;
};

// Runs prep() on the calling thread, then work(member, members, barrier) on the team (member 0 is the
// caller), and returns when every member is done. want: the team size asked for (<= 1: the caller alone).
template <class Prep, class Work>
void RunTeam(xla::ffi::ThreadPool& pool, int want, Prep&& prep, Work&& work) {
  if (want <= 1) {
    prep();
    Barrier solo;
    work(0, 1, solo);
    return;
  }
  auto st = std::make_shared<TeamState>();
  st->caller = std::this_thread::get_id();
  using Fn = std::remove_reference_t<Work>;
  st->work = [](void* ctx, int m, int n, Barrier& bar) { (*static_cast<Fn*>(ctx))(m, n, bar); };
  st->ctx = const_cast<void*>(static_cast<const void*>(&work));
  for (int i = 1; i < want; ++i) {
    pool.Schedule([st]() {
      if (std::this_thread::get_id() == st->caller) return;  // no pool: Schedule ran us inline
      int s = st->joined.load(std::memory_order_acquire);
      do {
        if (s & TeamState::kClosed) return;
      } while (!st->joined.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel));
      int n, spins = 0;
      while ((n = st->members.load(std::memory_order_acquire)) == 0) Backoff(spins);
      st->work(st->ctx, s + 1, n, *st->barrier);
      st->finished.fetch_add(1, std::memory_order_release);
    });
  }
  prep();
  // Helpers woken from sleep typically arrive within tens of microseconds; past the deadline the caller
  // goes on with whoever is there.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(500);
  for (int spins = 0; st->joined.load(std::memory_order_acquire) < want - 1 &&
                      std::chrono::steady_clock::now() < deadline;)
    Backoff(spins);
  const int helpers = st->joined.fetch_or(TeamState::kClosed, std::memory_order_acq_rel);
  st->barrier = std::make_unique<Barrier>(helpers + 1);
  st->members.store(helpers + 1, std::memory_order_release);
  work(0, helpers + 1, *st->barrier);
  for (int spins = 0; st->finished.load(std::memory_order_acquire) < helpers;) Backoff(spins);
}

}  // namespace rnnlab
