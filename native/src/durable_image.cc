#include "durable_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

// What the model covers, and how:
//
// - File data. msync of [from, to) makes [from rounded down to its page, to)
//   durable; fsync of a file makes all of it durable. Both also make the file's
//   size durable (msync is a data sync of the range, and the size is part of
//   what reading the data back needs). The bytes recorded are those in the
//   range when the call started. A write never synced (pwritev, a store through
//   the mapping, MappedFile.zero) never reaches the image, however long ago it
//   was made: the image holds the bytes of the last sync that covered them,
//   zeros elsewhere inside the durable size, and nothing past it. The kernel's
//   msync also writes the rest of the range's last page; the model keeps only
//   what the caller asked for, which is what the caller may count on.
// - Names. A created, renamed or unlinked entry is durable only once its
//   directory is fsynced. The fsync reads the directory (each name and the
//   file it names) and that listing becomes the durable one, whoever made the
//   changes: the addon (open O_CREAT, unlink) or JavaScript's fs
//   (src/log: renameSync of prepared files, rmSync of segments and indexes,
//   writeFileSync of a quarantine marker), none of which needs to be
//   intercepted. Files are told apart by inode and birth time, so a renamed
//   file keeps its durable bytes. A name made durable before any sync of its
//   file's data names an empty file.
// - A power loss during a sync. Each sync is written down as pending before it
//   starts and applied to the image when it returns; one the process died in
//   is torn by Copy: each of its 512-byte sectors (and the new size with any of
//   them) reached the disk or not, and a directory's new listing all or not at
//   all (a journal commits it at once). A process killed while applying a
//   record leaves it pending too, with some of it applied: the same thing.
// - A failed sync is dropped: the image keeps what the file held before it.
//
// What it does not cover:
//
// - Writeback the kernel does by itself. Unsynced pages can reach the disk
//   before any sync, in any order; that loses less than the model, but also
//   makes states it never does (a later page of a file on disk, an earlier one
//   not). The model is the strict "everything since the last sync is lost".
// - Reordering within a completed sync, or between two syncs that both
//   completed: all of each is there.
// - Directories themselves. The root and every directory under it at Start
//   count as durable; a directory made later appears (empty unless synced
//   itself) once its parent is synced, and none is ever removed. mkdir and
//   rmdir durability is not modelled (the log makes its directory before it
//   opens, and never removes it).
// - Files outside the root, symbolic links and special files: ignored.
// - Syncs it does not see: fdatasync and sync_file_range (the addon makes
//   none), fs.fsyncSync from JavaScript and other processes' syncs (src/log
//   makes none of its own). A sync of a file mapped before Start is not
//   ignored: it fails the image (Copy then refuses it), since its file
//   cannot be named.
namespace eddy::durable_image {
namespace {

constexpr size_t kSectorBytes = 512;
constexpr const char* kFailedFile = "FAILED";

// A sync written down but not yet applied: the bytes of a range, or the
// listing of a directory.
struct Record {
  bool listing = false;
  std::string key;        // the file's Key(), or the hex of the directory's path under the root
  uint64_t fileSize = 0;  // a range: the file's size once the range is durable
  uint64_t offset = 0;
  std::string bytes;  // the range's bytes, or the listing
};

struct State {
  std::mutex mutex;
  std::string root;   // real path, no trailing slash
  std::string image;  // real path
  uint64_t nextTicket = 1;
  std::unordered_map<uint64_t, Record> pending;
  uint64_t syncs = 0;      // recorded since Start
  uint64_t cutAtSync = 0;  // 0: never
};

// Leaked: syncs on the libuv pool can outlive static destruction.
State& Shared() {
  static State* const state = new State();
  return *state;
}

std::string Key(const FileId& id) {
  return std::to_string(id.device) + "-" + std::to_string(id.inode) + "-" + std::to_string(id.bornSeconds) + "." +
         std::to_string(id.bornNanoseconds);
}

std::string Hex(const std::string& text) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// The file of a directory's listing: "d" then the hex of its path under the root ("d" alone for the root).
std::string ListingPath(const std::string& image, const std::string& hexPath) {
  return image + "/listings/d" + hexPath + ".list";
}

Outcome SystemFailure(int err, const char* syscall, const std::string& path) {
  Outcome outcome;
  outcome.err = err;
  outcome.syscall = syscall;
  outcome.path = path;
  return outcome;
}

Outcome Misuse(const std::string& problem) {
  Outcome outcome;
  outcome.problem = problem;
  return outcome;
}

int WriteAll(int fd, const char* data, size_t length, uint64_t offset) {
  while (length > 0) {
    ssize_t written = pwrite(fd, data, length, static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    length -= static_cast<size_t>(written);
    offset += static_cast<uint64_t>(written);
  }
  return 0;
}

// Reads up to `length` bytes at `offset` (fewer at the end of the file).
int ReadAt(int fd, uint64_t offset, size_t length, std::string* out) {
  out->resize(length);
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd, &(*out)[done], length - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  out->resize(done);
  return 0;
}

// All of the file open on `fd`.
int ReadWhole(int fd, std::string* out) {
  struct stat st;
  return fstat(fd, &st) == 0 ? ReadAt(fd, 0, static_cast<size_t>(st.st_size), out) : errno;
}

int ReadFile(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = ReadWhole(fd, out);
  close(fd);
  return err;
}

// Whole or not at all as far as a SIGKILL goes: written aside, then renamed
// (the image only has to survive the death of the process that writes it, not
// a power loss of its own, so nothing here is synced).
int WriteFileAtomically(const std::string& path, const std::string& bytes) {
  std::string temporary = path + ".tmp";
  int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  int err = WriteAll(fd, bytes.data(), bytes.size(), 0);
  close(fd);
  if (err == 0 && rename(temporary.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) unlink(temporary.c_str());
  return err;
}

bool StatxId(int dirfd, const char* name, int flags, FileId* id, bool* isDirectory, bool* isRegular) {
  struct statx stx;
  if (statx(dirfd, name, flags, STATX_TYPE | STATX_INO | STATX_BTIME, &stx) != 0) return false;
  id->device = (static_cast<uint64_t>(stx.stx_dev_major) << 32) | stx.stx_dev_minor;
  id->inode = stx.stx_ino;
  id->bornSeconds = stx.stx_btime.tv_sec;
  id->bornNanoseconds = stx.stx_btime.tv_nsec;
  id->known = (stx.stx_mask & (STATX_INO | STATX_BTIME)) == (STATX_INO | STATX_BTIME);
  if (isDirectory != nullptr) *isDirectory = S_ISDIR(stx.stx_mode);
  if (isRegular != nullptr) *isRegular = S_ISREG(stx.stx_mode);
  return true;
}

struct Entry {
  std::string name;
  bool directory = false;
  std::string key;  // files only
};

// The entries of the directory open on `fd` (regular files and directories),
// sorted by name, as they were at one moment. readdir(3) reads a directory in
// several getdents64 calls, and a rename between two of them (the log renames
// prepared files into place while a group commit fsyncs the directory on the
// pool) can make a listing that never existed, with a file under both names or
// neither. One getdents64 call reads the whole directory under its lock, so
// the buffer is made large enough for one call; a name that no longer names
// the inode the call returned (renamed over or removed since) reads again.
int ReadDirectory(int fd, std::vector<Entry>* entries) {
  struct Dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[1];
  };
  size_t bufferBytes = 1 << 20;
  for (int attempt = 0; attempt < 1000; attempt++) {
    entries->clear();
    int own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (own < 0) return errno;
    std::vector<char> buffer(bufferBytes);
    long got = syscall(SYS_getdents64, own, buffer.data(), buffer.size());
    char probe[4096];
    long more = got < 0 ? 0 : syscall(SYS_getdents64, own, probe, sizeof probe);
    if (got < 0 || more < 0) {
      int err = errno;
      close(own);
      return err;
    }
    if (more > 0) {  // did not fit in one call
      close(own);
      bufferBytes *= 4;
      continue;
    }
    bool stable = true;
    for (long at = 0; at < got && stable;) {
      const auto* item = reinterpret_cast<const Dirent64*>(buffer.data() + at);
      at += item->d_reclen;
      std::string name = item->d_name;
      if (name == "." || name == "..") continue;
      FileId id;
      bool isDirectory = false, isRegular = false;
      stable = StatxId(own, item->d_name, AT_SYMLINK_NOFOLLOW, &id, &isDirectory, &isRegular) &&
               id.inode == item->d_ino;
      if (isRegular) entries->push_back({name, false, Key(id)});
      if (isDirectory) entries->push_back({name, true, ""});
    }
    close(own);
    if (!stable) continue;
    std::sort(entries->begin(), entries->end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    return 0;
  }
  return EAGAIN;  // renamed under every attempt: not expected of anything the model runs under
}

// One line per entry, "f <key> <name>" or "d - <name>". A name with a newline
// cannot be listed: false.
bool FormatListing(const std::vector<Entry>& entries, std::string* out) {
  for (const Entry& entry : entries) {
    if (entry.name.find('\n') != std::string::npos) return false;
    *out += entry.directory ? "d - " : "f " + entry.key + " ";
    *out += entry.name + "\n";
  }
  return true;
}

std::vector<Entry> ParseListing(const std::string& text) {
  std::vector<Entry> entries;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) break;
    std::string line = text.substr(at, end - at);
    at = end + 1;
    size_t space = line.find(' ', 2);
    if (line.size() < 4 || space == std::string::npos) continue;
    entries.push_back({line.substr(space + 1), line[0] == 'd', line.substr(2, space - 2)});
  }
  return entries;
}

// The directory's path under the root ("" for the root), or false if it is not under it.
bool RelativePath(const std::string& root, const std::string& path, std::string* relative) {
  if (path == root) {
    relative->clear();
    return true;
  }
  if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/') {
    *relative = path.substr(root.size() + 1);
    return true;
  }
  return false;
}

std::string DescriptorPath(int fd) {
  char buffer[PATH_MAX];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t length = readlink(link.c_str(), buffer, sizeof buffer - 1);
  return length < 0 ? std::string() : std::string(buffer, static_cast<size_t>(length));
}

// The model itself broke (the image's disk is full, a file it cannot name was
// synced): the image is wrong from here on, so it stops, and Copy reports why.
// Called with the mutex held.
void Fail(State& state, const std::string& why) {
  if (!running.load(std::memory_order_relaxed)) return;
  running.store(false, std::memory_order_relaxed);
  int fd = open((state.image + "/" + kFailedFile).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd >= 0) {
    std::string text = why + "\n";
    WriteAll(fd, text.data(), text.size(), 0);
    close(fd);
  }
}

std::string PendingPath(const State& state, uint64_t ticket) {
  std::string digits = std::to_string(ticket);
  return state.image + "/pending/" + std::string(20 - digits.size(), '0') + digits + ".sync";
}

// "range <key> <fileSize> <offset> <length>\n<bytes>" or "listing <hexPath> <length>\n<listing>".
std::string SerializeRecord(const Record& record) {
  std::string head = record.listing ? "listing " + record.key + " " + std::to_string(record.bytes.size())
                                    : "range " + record.key + " " + std::to_string(record.fileSize) + " " +
                                          std::to_string(record.offset) + " " + std::to_string(record.bytes.size());
  return head + "\n" + record.bytes;
}

bool ParseRecord(const std::string& text, Record* record) {
  size_t newline = text.find('\n');
  if (newline == std::string::npos) return false;
  std::vector<std::string> words;
  size_t at = 0;
  std::string head = text.substr(0, newline);
  while (at <= head.size()) {
    size_t space = head.find(' ', at);
    if (space == std::string::npos) space = head.size();
    words.push_back(head.substr(at, space - at));
    at = space + 1;
  }
  record->bytes = text.substr(newline + 1);
  if (words.size() == 3 && words[0] == "listing") {
    record->listing = true;
    record->key = words[1];
    return std::strtoull(words[2].c_str(), nullptr, 10) == record->bytes.size();
  }
  if (words.size() == 5 && words[0] == "range") {
    record->listing = false;
    record->key = words[1];
    record->fileSize = std::strtoull(words[2].c_str(), nullptr, 10);
    record->offset = std::strtoull(words[3].c_str(), nullptr, 10);
    return std::strtoull(words[4].c_str(), nullptr, 10) == record->bytes.size();
  }
  return false;
}

// Writes the record down as pending and returns its ticket; 0 (with the image
// failed) if it cannot. Called with the mutex held.
uint64_t AddPending(State& state, Record record) {
  uint64_t ticket = state.nextTicket++;
  if (int err = WriteFileAtomically(PendingPath(state, ticket), SerializeRecord(record))) {
    Fail(state, "cannot write a pending sync into the image: " + std::string(strerror(err)));
    return 0;
  }
  state.pending.emplace(ticket, std::move(record));
  // The power cut a test asked for, in the middle of this sync: what it wrote
  // is whatever Copy keeps of the pending record.
  if (++state.syncs == state.cutAtSync) raise(SIGKILL);
  return ticket;
}

int ApplyRange(const std::string& file, const Record& record) {
  int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  struct stat st;
  int err = 0;
  if (fstat(fd, &st) != 0) {
    err = errno;
  } else if (static_cast<uint64_t>(st.st_size) != record.fileSize &&
             ftruncate(fd, static_cast<off_t>(record.fileSize)) != 0) {
    err = errno;
  }
  if (err == 0) err = WriteAll(fd, record.bytes.data(), record.bytes.size(), record.offset);
  close(fd);
  return err;
}

// Seeds the image with the directory `fd` (at `relative` under the root) and
// everything under it, all of it durable. Called with the mutex held, before
// the image runs.
Outcome Seed(const std::string& image, int fd, const std::string& path, const std::string& relative) {
  std::vector<Entry> entries;
  if (int err = ReadDirectory(fd, &entries)) return SystemFailure(err, "readdir", path);
  std::string listing;
  if (!FormatListing(entries, &listing)) {
    return Misuse(path + " holds a name with a newline, which the image cannot list");
  }
  if (int err = WriteFileAtomically(ListingPath(image, Hex(relative)), listing))
    return SystemFailure(err, "write", image);
  for (const Entry& entry : entries) {
    std::string child = path + "/" + entry.name;
    int childFd = openat(fd, entry.name.c_str(), (entry.directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    if (childFd < 0) return SystemFailure(errno, "open", child);
    Outcome outcome;
    if (entry.directory) {
      outcome = Seed(image, childFd, child, relative.empty() ? entry.name : relative + "/" + entry.name);
    } else {
      std::string bytes;
      int err = ReadWhole(childFd, &bytes);
      if (err == 0) err = WriteFileAtomically(image + "/files/" + entry.key, bytes);
      if (err != 0) outcome = SystemFailure(err, "copy", child);
    }
    close(childFd);
    if (!outcome.ok()) return outcome;
  }
  return Outcome{};
}

// xorshift64*: the same seed tears the same sectors.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 1) {}
  bool Coin() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return ((state_ * 0x2545F4914F6CDD1DULL) >> 63) != 0;
  }

 private:
  uint64_t state_;
};

int MakeDirectory(const std::string& path) { return mkdir(path.c_str(), 0755) == 0 ? 0 : errno; }

int CopyBytes(const std::string& from, const std::string& to) {
  std::string bytes;
  int err = ReadFile(from, &bytes);
  if (err == ENOENT) bytes.clear();  // named before any of its data was synced: empty
  else if (err != 0) return err;
  int fd = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  err = WriteAll(fd, bytes.data(), bytes.size(), 0);
  close(fd);
  return err;
}

// Writes the directory at `relative` (hex `hexPath`) and what is under it into `path`.
Outcome Materialize(const std::string& image, const std::map<std::string, std::string>& listings,
                    const std::string& hexPath, const std::string& path,
                    std::unordered_map<std::string, std::vector<std::string>>* paths, CopyStats* stats) {
  stats->directories++;
  auto listing = listings.find(hexPath);
  if (listing == listings.end()) return Outcome{};  // never synced: its entries never became durable
  for (const Entry& entry : ParseListing(listing->second)) {
    std::string child = path + "/" + entry.name;
    if (entry.directory) {
      if (int err = MakeDirectory(child)) return SystemFailure(err, "mkdir", child);
      std::string childHex = hexPath.empty() ? Hex(entry.name) : hexPath + Hex("/" + entry.name);
      Outcome outcome = Materialize(image, listings, childHex, child, paths, stats);
      if (!outcome.ok()) return outcome;
    } else {
      if (int err = CopyBytes(image + "/files/" + entry.key, child)) return SystemFailure(err, "copy", child);
      (*paths)[entry.key].push_back(child);
      stats->files++;
    }
  }
  return Outcome{};
}

// The torn part of a sync cut off by the power loss: each sector kept or lost.
int ApplyTorn(const Record& record, const std::vector<std::string>& files, Random* random, CopyStats* stats) {
  std::vector<std::pair<uint64_t, uint64_t>> kept;
  for (uint64_t at = 0; at < record.bytes.size(); at += kSectorBytes) {
    // Sectors of the range are sectors of the file: an msync range starts on a page, an fsync at 0.
    uint64_t end = std::min<uint64_t>(record.bytes.size(), at + kSectorBytes);
    if (random->Coin()) {
      kept.emplace_back(at, end);
      stats->sectorsKept++;
    } else {
      stats->sectorsLost++;
    }
  }
  if (kept.empty()) return 0;
  for (const std::string& file : files) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    int err = fstat(fd, &st) == 0 ? 0 : errno;
    if (err == 0 && static_cast<uint64_t>(st.st_size) < record.fileSize &&
        ftruncate(fd, static_cast<off_t>(record.fileSize)) != 0)
      err = errno;
    for (const auto& [from, to] : kept) {
      if (err != 0) break;
      err = WriteAll(fd, record.bytes.data() + from, to - from, record.offset + from);
    }
    close(fd);
    if (err != 0) return err;
  }
  return 0;
}

}  // namespace

FileId Identify(int fd) {
  FileId id;
  if (!StatxId(fd, "", AT_EMPTY_PATH, &id, nullptr, nullptr)) id.known = false;
  return id;
}

Outcome Start(const std::string& root, const std::string& image, uint64_t cutAtSync) {
  State& state = Shared();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (Running()) return Misuse("a durable image is already running");
  std::unique_ptr<char, decltype(&free)> rootPath(realpath(root.c_str(), nullptr), &free);
  if (!rootPath) return SystemFailure(errno, "realpath", root);
  int rootFd = open(rootPath.get(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootFd < 0) return SystemFailure(errno, "open", root);
  FileId rootId;
  if (!StatxId(rootFd, "", AT_EMPTY_PATH, &rootId, nullptr, nullptr) || !rootId.known) {
    close(rootFd);
    return Misuse("the file system of " + root +
                  " does not report birth times (statx), which the image needs to tell a file from a later one given "
                  "the same inode number");
  }
  int made = MakeDirectory(image);
  if (made != 0 && made != EEXIST) {
    close(rootFd);
    return SystemFailure(made, "mkdir", image);
  }
  std::unique_ptr<char, decltype(&free)> imagePath(realpath(image.c_str(), nullptr), &free);
  std::string relative;
  Outcome outcome;
  if (!imagePath) {
    outcome = SystemFailure(errno, "realpath", image);
  } else if (RelativePath(rootPath.get(), imagePath.get(), &relative) ||
             RelativePath(imagePath.get(), rootPath.get(), &relative)) {
    outcome = Misuse("the image " + image + " and the root " + root + " must not contain one another");
    if (made == 0) rmdir(imagePath.get());
  } else {
    std::vector<Entry> existing;
    int imageFd = open(imagePath.get(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = imageFd < 0 ? errno : ReadDirectory(imageFd, &existing);
    if (imageFd >= 0) close(imageFd);
    if (err != 0) {
      outcome = SystemFailure(err, "readdir", image);
    } else if (!existing.empty()) {
      outcome = Misuse("the image directory " + image + " is not empty");
    } else {
      for (const char* part : {"/files", "/listings", "/pending"}) {
        if (outcome.ok() && MakeDirectory(imagePath.get() + std::string(part)) != 0)
          outcome = SystemFailure(errno, "mkdir", imagePath.get() + std::string(part));
      }
      if (outcome.ok()) outcome = Seed(imagePath.get(), rootFd, rootPath.get(), "");
    }
  }
  close(rootFd);
  if (!outcome.ok()) return outcome;
  state.root = rootPath.get();
  state.image = imagePath.get();
  state.pending.clear();
  state.syncs = 0;
  state.cutAtSync = cutAtSync;
  running.store(true, std::memory_order_relaxed);
  return outcome;
}

void Stop() {
  State& state = Shared();
  std::lock_guard<std::mutex> lock(state.mutex);
  running.store(false, std::memory_order_relaxed);
  state.pending.clear();
}

uint64_t BeforeRangeSync(const FileId& id, const uint8_t* base, size_t from, size_t to, size_t fileSize) {
  State& state = Shared();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!Running() || from >= to) return 0;
  if (!id.known) {
    Fail(state, "a file mapped before the image started (or whose identity statx could not give) was synced");
    return 0;
  }
  Record record;
  record.key = Key(id);
  record.fileSize = fileSize;
  record.offset = from;
  record.bytes.assign(reinterpret_cast<const char*>(base + from), to - from);
  return AddPending(state, std::move(record));
}

uint64_t BeforeFsync(int fd) {
  State& state = Shared();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!Running()) return 0;
  FileId id;
  bool isDirectory = false, isRegular = false;
  if (!StatxId(fd, "", AT_EMPTY_PATH, &id, &isDirectory, &isRegular)) {
    Fail(state, "statx of a descriptor being fsynced failed: " + std::string(strerror(errno)));
    return 0;
  }
  Record record;
  if (isDirectory) {
    std::string relative;
    if (!RelativePath(state.root, DescriptorPath(fd), &relative)) return 0;  // outside the root
    std::vector<Entry> entries;
    if (int err = ReadDirectory(fd, &entries)) {
      Fail(state, "cannot read a directory being fsynced: " + std::string(strerror(err)));
      return 0;
    }
    if (!FormatListing(entries, &record.bytes)) {
      Fail(state, "a directory being fsynced holds a name with a newline, which the image cannot list");
      return 0;
    }
    record.listing = true;
    record.key = Hex(relative);
  } else if (isRegular && id.known) {
    record.key = Key(id);
    if (int err = ReadWhole(fd, &record.bytes)) {
      Fail(state, "cannot read a file being fsynced: " + std::string(strerror(err)));
      return 0;
    }
    record.fileSize = record.bytes.size();
  } else {
    if (isRegular) Fail(state, "statx gave no birth time for a file being fsynced");
    return 0;
  }
  return AddPending(state, std::move(record));
}

void AfterSync(uint64_t ticket, int err) {
  if (ticket == 0) return;
  State& state = Shared();
  std::lock_guard<std::mutex> lock(state.mutex);
  auto found = state.pending.find(ticket);
  if (found == state.pending.end()) return;  // recorded before a Stop
  Record record = std::move(found->second);
  state.pending.erase(found);
  if (!Running()) return;
  if (err == 0) {
    int applied = record.listing ? WriteFileAtomically(ListingPath(state.image, record.key), record.bytes)
                                 : ApplyRange(state.image + "/files/" + record.key, record);
    if (applied != 0) {
      Fail(state, "cannot apply a sync to the image: " + std::string(strerror(applied)));
      return;
    }
  }
  unlink(PendingPath(state, ticket).c_str());
}

Outcome Copy(const std::string& image, const std::string& destination, uint64_t seed, CopyStats* stats) {
  std::string failed;
  if (ReadFile(image + "/" + kFailedFile, &failed) == 0)
    return Misuse("the durable image " + image + " is unusable: " + failed);
  std::map<std::string, std::string> listings;  // hex path -> listing
  std::map<std::string, Record> pending;        // file name (the ticket, zero-padded) -> record
  for (const char* part : {"listings", "pending"}) {
    std::string dirPath = image + "/" + part;
    DIR* dir = opendir(dirPath.c_str());
    if (dir == nullptr) return SystemFailure(errno, "opendir", dirPath);
    while (struct dirent* item = readdir(dir)) {
      std::string name = item->d_name;
      bool listing = name.size() >= 6 && name[0] == 'd' && name.compare(name.size() - 5, 5, ".list") == 0;
      bool sync = name.size() > 5 && name.compare(name.size() - 5, 5, ".sync") == 0;
      if (!listing && !sync) continue;  // "x.tmp": written when the process died, never renamed: never there
      std::string bytes;
      if (int err = ReadFile(dirPath + "/" + name, &bytes)) {
        closedir(dir);
        return SystemFailure(err, "read", dirPath + "/" + name);
      }
      if (listing) {
        listings[name.substr(1, name.size() - 6)] = std::move(bytes);
        continue;
      }
      Record record;
      if (!ParseRecord(bytes, &record)) {
        closedir(dir);
        return Misuse("malformed pending sync " + dirPath + "/" + name);
      }
      pending.emplace(name, std::move(record));
    }
    closedir(dir);
  }
  // Syncs the process died in, oldest first: a directory's new listing all or nothing.
  Random random(seed);
  stats->inFlightSyncs = pending.size();
  for (const auto& [name, record] : pending) {
    if (!record.listing) continue;
    if (random.Coin()) {
      listings[record.key] = record.bytes;
      stats->listingsKept++;
    } else {
      stats->listingsLost++;
    }
  }
  if (MakeDirectory(destination) != 0) return SystemFailure(errno, "mkdir", destination);
  std::unordered_map<std::string, std::vector<std::string>> paths;  // file key -> its names in the copy
  Outcome outcome = Materialize(image, listings, "", destination, &paths, stats);
  if (!outcome.ok()) return outcome;
  // Then their data, torn sector by sector, onto every name the file has in the copy.
  static const std::vector<std::string> none;
  for (const auto& [name, record] : pending) {
    if (record.listing) continue;
    auto files = paths.find(record.key);
    if (int err = ApplyTorn(record, files == paths.end() ? none : files->second, &random, stats))
      return SystemFailure(err, "write", destination);
  }
  return outcome;
}

}  // namespace eddy::durable_image
