#include "server/listener_watchdog.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace segrel::server {
namespace {

// The kernel's TCP states (include/net/tcp_states.h) of a connection in an accept queue.
constexpr absl::string_view kEstablished = "01";
constexpr absl::string_view kCloseWait = "08";

// The port of "ADDRESS:PORT" (hexadecimal), or -1.
int PortOf(absl::string_view address) {
  const size_t colon = address.rfind(':');
  uint32_t port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleHexAtoi(address.substr(colon + 1), &port)) return -1;
  return static_cast<int>(port);
}

std::string ReadWhole(const char* path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<std::string> UnacceptedConnections(absl::string_view socket_table, int port) {
  std::vector<std::string> waiting;
  for (absl::string_view line : absl::StrSplit(socket_table, '\n')) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
    const std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 10 || PortOf(fields[1]) != port) continue;
    if (fields[3] != kEstablished && fields[3] != kCloseWait) continue;
    if (fields[9] != "0") continue;  // a process holds it: accepted
    waiting.push_back(absl::StrCat(fields[1], " ", fields[2]));
  }
  return waiting;
}

ListenerWatchdog::ListenerWatchdog(std::vector<int> ports, absl::Duration stuck_after,
                                   std::function<void(int port)> on_stuck)
    : ports_(std::move(ports)), stuck_after_(stuck_after), on_stuck_(std::move(on_stuck)), thread_([this] { Run(); }) {}

ListenerWatchdog::~ListenerWatchdog() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

int ListenerWatchdog::StuckPort(absl::Time now) {
  // Reading the table needs a descriptor; while there is none the sample is skipped (an empty text).
  const std::string table = ReadWhole("/proc/net/tcp") + ReadWhole("/proc/net/tcp6");
  if (table.empty()) return 0;
  absl::flat_hash_set<std::string> waiting;
  for (int port : ports_) {
    if (port <= 0) continue;
    for (std::string& connection : UnacceptedConnections(table, port)) {
      waiting.insert(absl::StrCat(port, " ", connection));
    }
  }
  // Connections accepted (or gone) since the last sample are forgotten; a new one starts its clock.
  for (auto it = first_seen_.begin(); it != first_seen_.end();) {
    if (waiting.contains(it->first)) {
      ++it;
    } else {
      first_seen_.erase(it++);
    }
  }
  for (const std::string& connection : waiting) {
    const absl::Time since = first_seen_.try_emplace(connection, now).first->second;
    if (now - since >= stuck_after_) {
      int port = 0;
      absl::SimpleAtoi(connection.substr(0, connection.find(' ')), &port);
      return port;
    }
  }
  return 0;
}

void ListenerWatchdog::Run() {
  const absl::Duration period = std::max(stuck_after_ / 5, absl::Milliseconds(50));
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
    }
    if (const int port = StuckPort(absl::Now()); port != 0) {
      on_stuck_(port);
      return;
    }
  }
}

}  // namespace segrel::server
