#include "faults.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "durable_image.h"

namespace eddy::faults {
namespace {

// Process-wide on purpose: a fault injected from one worker thread affects the
// flushes that run on the libuv threadpool too.
struct Fault {
  std::atomic<int> err{0};
  std::atomic<int64_t> allowed{0};
};

Fault faults[static_cast<int>(Operation::kCount)];

bool TakeAllowance(Fault& fault) {
  int64_t left = fault.allowed.load(std::memory_order_relaxed);
  while (left > 0) {
    if (fault.allowed.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

// A call that fails for real is not one of the `afterCalls` successes, so it
// hands its allowance back.
template <typename Call>
int Guarded(Operation op, Call&& call) {
  Fault& fault = faults[static_cast<int>(op)];
  bool counted = false;
  if (int injected = fault.err.load(std::memory_order_acquire)) {
    if (!TakeAllowance(fault)) return injected;
    counted = true;
  }
  int err = call();
  if (err != 0 && counted) fault.allowed.fetch_add(1, std::memory_order_relaxed);
  return err;
}

}  // namespace

bool ParseOperation(const std::string& name, Operation* out) {
  static constexpr const char* kNames[] = {"open", "fallocate", "mmap", "msync", "fsync"};
  for (int i = 0; i < static_cast<int>(Operation::kCount); i++) {
    if (name == kNames[i]) {
      *out = static_cast<Operation>(i);
      return true;
    }
  }
  return false;
}

void Inject(Operation op, int err, uint64_t afterCalls) {
  Fault& fault = faults[static_cast<int>(op)];
  fault.err.store(0, std::memory_order_relaxed);
  fault.allowed.store(static_cast<int64_t>(afterCalls), std::memory_order_relaxed);
  fault.err.store(err, std::memory_order_release);
}

void ClearAll() {
  for (Fault& fault : faults) fault.err.store(0, std::memory_order_release);
}

int Open(const char* path, int flags, mode_t mode, int* fd) {
  return Guarded(Operation::kOpen, [&] {
    do {
      *fd = ::open(path, flags, mode);
    } while (*fd < 0 && errno == EINTR);
    return *fd < 0 ? errno : 0;
  });
}

int Fallocate(int fd, size_t length) {
  return Guarded(Operation::kFallocate, [&] {
    int err;
    do {
      err = ::posix_fallocate(fd, 0, static_cast<off_t>(length));
    } while (err == EINTR);
    return err;
  });
}

int Mmap(int fd, size_t length, void** addr) {
  return Guarded(Operation::kMmap, [&] {
    *addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return *addr == MAP_FAILED ? errno : 0;
  });
}

int Msync(void* addr, size_t length) {
  return Guarded(Operation::kMsync, [&] { return ::msync(addr, length, MS_SYNC) != 0 ? errno : 0; });
}

// A directory fsync is where the power-loss model makes names durable, so it
// is recorded here, for every caller; an injected failure counts as a failed sync.
int Fsync(int fd) {
  uint64_t imaged = durable_image::Running() ? durable_image::BeforeFsync(fd) : 0;
  int err = Guarded(Operation::kFsync, [&] { return ::fsync(fd) != 0 ? errno : 0; });
  if (imaged != 0) durable_image::AfterSync(imaged, err);
  return err;
}

}  // namespace eddy::faults
