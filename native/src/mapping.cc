#include "mapping.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>

#include "faults.h"

namespace eddy {
namespace {

size_t PageSize() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

MapResult Failed(const char* syscall, int err) {
  MapResult result;
  result.syscall = syscall;
  result.err = err;
  return result;
}

// A file we created but could not fully set up must not be left behind to be
// mistaken for a segment later.
MapResult Discard(int fd, const std::string& path, const char* syscall, int err) {
  close(fd);
  unlink(path.c_str());
  return Failed(syscall, err);
}

// Unmapping a segment costs the kernel a walk over every page it maps, and
// when the file was already deleted (retention, or a closed log whose
// directory was removed) this is its last reference and frees all of them:
// measured here at 95-110 ms for 128 MiB, a stall of every connection when it
// runs on the JavaScript thread from a finalizer. One background thread does
// it instead, and also drops a sealed segment's pages from the page tables,
// which costs the same walk (a few ms per 128 MiB mapped: inline, it raised
// the publish-to-consume p99.9 at 100 MB/s from 19-20 ms to 23-28 ms).
// It is never stopped, and is created on first use. Jobs run in order, so a
// release always runs before its mapping's unmap, which is queued only once
// the last owner is gone.
class Unmapper {
 public:
  static void Unmap(uint8_t* data, size_t size) { Submit({data, size, Kind::kUnmap}); }
  static void Release(uint8_t* data, size_t size) { Submit({data, size, Kind::kRelease}); }

 private:
  enum class Kind { kUnmap, kRelease };
  struct Region {
    uint8_t* data;
    size_t size;
    Kind kind;
  };

  static void Submit(Region region) {
    static Unmapper* const instance = Start();  // leaked: it must outlive static destruction
    if (instance == nullptr) {
      Do(region);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(instance->mutex_);
      instance->queue_.push_back(region);
    }
    instance->ready_.notify_one();
  }

  static void Do(const Region& region) {
    if (region.kind == Kind::kUnmap) {
      munmap(region.data, region.size);
    } else {
      // Advice: pages left mapped only count against the process's RSS a while longer.
      madvise(region.data, region.size, MADV_DONTNEED);
    }
  }

  // Null when no thread can be created: callers then unmap inline.
  static Unmapper* Start() {
    auto* unmapper = new Unmapper();
    pthread_t thread;
    if (pthread_create(&thread, nullptr, &Unmapper::Run, unmapper) != 0) {
      delete unmapper;
      return nullptr;
    }
    pthread_detach(thread);
    return unmapper;
  }

  static void* Run(void* self) {
    auto* unmapper = static_cast<Unmapper*>(self);
    for (;;) {
      std::unique_lock<std::mutex> lock(unmapper->mutex_);
      unmapper->ready_.wait(lock, [unmapper] { return !unmapper->queue_.empty(); });
      Region region = unmapper->queue_.front();
      unmapper->queue_.pop_front();
      lock.unlock();
      Do(region);
    }
    return nullptr;
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Region> queue_;
};

}  // namespace

MapResult Mapping::Map(const std::string& path, size_t size, bool create) {
  int fd;
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  if (int err = faults::Open(path.c_str(), flags, 0644, &fd)) return Failed("open", err);
  if (create) {
    // Real blocks, not ftruncate: a store into a hole of a sparse file on a
    // full disk raises SIGBUS instead of returning ENOSPC.
    if (int err = faults::Fallocate(fd, size)) return Discard(fd, path, "fallocate", err);
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return Failed("fstat", err);
    }
    if (st.st_size <= 0) {
      close(fd);
      return Failed("mmap", kEmptyFile);
    }
    size = static_cast<size_t>(st.st_size);
  }
  void* addr;
  if (int err = faults::Mmap(fd, size, &addr)) {
    if (create) return Discard(fd, path, "mmap", err);
    close(fd);
    return Failed("mmap", err);
  }
  // Only the power-loss model needs to know which file this is, and only while it runs.
  durable_image::FileId id = durable_image::Running() ? durable_image::Identify(fd) : durable_image::FileId{};
  MapResult result;
  result.mapping = std::make_shared<Mapping>(static_cast<uint8_t*>(addr), size, fd, id);
  return result;
}

Mapping::~Mapping() {
  CloseDescriptor();
  Unmapper::Unmap(data_, size_);
}

void Mapping::CloseDescriptor() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int Mapping::Write(size_t position, const uint8_t* head, size_t headLength, const uint8_t* body,
                   size_t bodyLength) {
  // A store through the mapping into a page not yet in memory faults, and the
  // kernel zero-fills the page (the preallocated extent is "unwritten") before
  // the copy overwrites it. write(2) of whole pages skips both: measured here at
  // 6.4 GB/s against 1.5 GB/s for memcpy of 100 KiB chunks. Below about 4 KiB
  // (measured crossover) memcpy wins: one fault is shared by several appends
  // and the system call would cost more than it saves.
  constexpr size_t kWriteSyscallMinBytes = 4 * 1024;
  uint8_t* at = data_ + position;
  if (fd_ < 0 || headLength + bodyLength < kWriteSyscallMinBytes) {
    // A detached array reports a null pointer, which memcpy may not be given.
    if (headLength > 0) std::memcpy(at, head, headLength);
    if (bodyLength > 0) std::memcpy(at + headLength, body, bodyLength);
    return 0;
  }
  struct iovec parts[2] = {{const_cast<uint8_t*>(head), headLength}, {const_cast<uint8_t*>(body), bodyLength}};
  struct iovec* next = parts;
  int count = 2;
  off_t offset = static_cast<off_t>(position);
  while (count > 0) {
    ssize_t written = pwritev(fd_, next, count, offset);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    offset += written;
    size_t left = static_cast<size_t>(written);
    while (count > 0 && left >= next->iov_len) {
      left -= next->iov_len;
      next++;
      count--;
    }
    if (count > 0) {
      next->iov_base = static_cast<uint8_t*>(next->iov_base) + left;
      next->iov_len -= left;
    }
  }
  return 0;
}

int Mapping::SetReadAhead(bool enabled) {
  return madvise(data_, size_, enabled ? MADV_NORMAL : MADV_RANDOM) == 0 ? 0 : errno;
}

void Mapping::ReleaseResident() { Unmapper::Release(data_, size_); }

int Mapping::Sync(size_t from, size_t to) {
  // Once an msync failed the kernel may have dropped the dirty pages and
  // cleared the error, so a later success would prove nothing.
  if (poisonErrno() != 0) return kPoisoned;
  if (from == to) return 0;
  size_t begin = from - from % PageSize();
  // msync needs a page-aligned start; the kernel rounds the length up itself,
  // and the mapping always ends on a page boundary.
  // Off, the power-loss model costs this load: on, it records [begin, to) as
  // it is now, and makes it durable in the image once the msync succeeded.
  uint64_t imaged = durable_image::Running() ? durable_image::BeforeRangeSync(id_, data_, begin, to, size_) : 0;
  int err = faults::Msync(data_ + begin, to - begin);
  if (imaged != 0) durable_image::AfterSync(imaged, err);
  if (err != 0) {
    int healthy = 0;
    poison_.compare_exchange_strong(healthy, err, std::memory_order_acq_rel);
    return err;
  }
  // Another flush may have failed meanwhile over pages this one covered.
  return poisonErrno() != 0 ? kPoisoned : 0;
}

}  // namespace eddy
