// A test-only model of a power loss (RELIABILITY.md D2, docs/reliability.md
// "Power loss"; the tests start it through startDurableImage in
// src/native/binding.ts). While it runs, every sync the addon makes that
// succeeds copies what it made durable into an image directory; anything
// written and never synced never reaches the image. A copy of the image
// (Copy) is the disk as a power loss at that moment would leave it.
// durable_image.cc says exactly what the model covers and what it does not.
//
// Off (the default), a sync pays one relaxed atomic load for it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace eddy::durable_image {

// Set only by Start and Stop. Read relaxed: a sync that races with Start or
// Stop may be left out of the image, and Start documents that the tree must
// be quiet while it starts.
inline std::atomic<bool> running{false};

inline bool Running() { return running.load(std::memory_order_relaxed); }

// Which file a descriptor refers to, across renames: the inode, plus its birth
// time so that an inode number the file system hands out again after an unlink
// is not taken for the file that had it.
struct FileId {
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t bornSeconds = 0;
  uint32_t bornNanoseconds = 0;
  bool known = false;
};

// The identity of the file open on `fd`; not `known` if statx fails.
FileId Identify(int fd);

struct Outcome {
  int err = 0;                    // errno, or 0
  const char* syscall = nullptr;  // the call that failed, when err != 0
  std::string path;
  std::string problem;  // a misuse (err == 0): what is wrong
  bool ok() const { return err == 0 && problem.empty(); }
};

// Starts imaging the tree at `root` into `image` (created; must not exist or be
// empty, and lie outside `root`). Everything under `root` now counts as
// durable, so the tree must be quiet (no process writing) while it starts.
// With `cutAtSync` > 0 the power fails during the sync of that number: once it
// is written down as pending, the process kills itself with SIGKILL before
// making the call, so that sync is torn in every copy of the image.
Outcome Start(const std::string& root, const std::string& image, uint64_t cutAtSync);
// Stops imaging; the image stays as it is. Syncs still in flight are not recorded.
void Stop();

// Called around a sync: Before... records what the sync is about to make
// durable (as pending, so that a power loss during the sync can tear it) and
// returns a ticket, 0 if there is nothing to record; After applies the record
// if the sync succeeded and drops it if it failed. Before... takes the bytes
// as they are when the sync starts: what is written while it runs may or may
// not be part of it, and the model says not.
//
// msync of [from, to) of a mapping of `fileSize` bytes at `base`.
uint64_t BeforeRangeSync(const FileId& id, const uint8_t* base, size_t from, size_t to, size_t fileSize);
// fsync of a file (all its bytes) or of a directory (its entries).
uint64_t BeforeFsync(int fd);
void AfterSync(uint64_t ticket, int err);

struct CopyStats {
  uint64_t files = 0;
  uint64_t directories = 0;
  // Syncs that had started and not returned (or whose record was being applied) when the process died.
  uint64_t inFlightSyncs = 0;
  uint64_t sectorsKept = 0;
  uint64_t sectorsLost = 0;
  uint64_t listingsKept = 0;
  uint64_t listingsLost = 0;
};

// Writes the tree the image describes into `destination` (created; must not
// exist): the durable listing of each directory, each file with its durable
// bytes. Syncs still in flight when the imaging process died are torn: each
// 512-byte sector of one, and each directory listing as a whole, is kept or
// lost by a pseudo-random choice from `seed`. Reads the image only, so the same
// image and seed always give the same tree.
Outcome Copy(const std::string& image, const std::string& destination, uint64_t seed, CopyStats* stats);

}  // namespace eddy::durable_image
