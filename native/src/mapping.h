// A file mapped read-write and shared: plain POSIX, no JavaScript. Owned
// through std::shared_ptr by the MappedFile handle, by every ArrayBuffer
// handed out over it and by flushes in progress; the last owner hands the
// region to a background thread to unmap (see Unmapper in mapping.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "durable_image.h"

namespace eddy {

class Mapping;

struct MapResult {
  std::shared_ptr<Mapping> mapping;  // null on failure
  const char* syscall = nullptr;     // the call that failed
  int err = 0;                       // its errno, or Mapping::kEmptyFile
};

class Mapping {
 public:
  static constexpr int kEmptyFile = -1;
  static constexpr int kPoisoned = -1;

  // create: a new file preallocated to `size` (removed again on failure);
  // otherwise the existing file at its own size.
  static MapResult Map(const std::string& path, size_t size, bool create);

  // `id` names the file to the power-loss model (durable_image.h); unknown while it does not run.
  Mapping(uint8_t* data, size_t size, int fd, durable_image::FileId id)
      : data_(data), size_(size), fd_(fd), id_(id) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // errno of the flush that poisoned the file, 0 while it is healthy.
  int poisonErrno() const { return poison_.load(std::memory_order_acquire); }

  // msync(MS_SYNC) of [from, to): 0, an errno (which poisons the mapping) or
  // kPoisoned. Safe to call from any thread.
  int Sync(size_t from, size_t to);

  // Copies head then body to `position`: 0 or an errno. Large copies go
  // through write(2) while the descriptor is held (see Write in mapping.cc).
  // JS thread only, like CloseDescriptor.
  int Write(size_t position, const uint8_t* head, size_t headLength, const uint8_t* body, size_t bodyLength);
  // Gives up the descriptor kept for writes; later writes copy through the mapping.
  void CloseDescriptor();
  // Whether a fault on the mapping may read ahead of the page it needs
  // (madvise MADV_NORMAL, the default) or not (MADV_RANDOM): 0 or an errno.
  int SetReadAhead(bool enabled);
  // Drops this process's page-table entries for the whole mapping (madvise
  // MADV_DONTNEED) on the background thread that also unmaps: the pages stay
  // in the page cache, dirty ones still to be written back, and a later access
  // faults them in again.
  void ReleaseResident();

 private:
  uint8_t* const data_;
  const size_t size_;
  int fd_;  // -1 once closed
  const durable_image::FileId id_;
  std::atomic<int> poison_{0};
};

}  // namespace eddy
