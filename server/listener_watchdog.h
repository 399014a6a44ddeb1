// Notices when a listening port stops accepting connections. gRPC core 1.51 never accepts again on a port once
// accept4 failed with EMFILE (too many open files, grpc/grpc#20418), even after descriptors are freed, and its API
// cannot re-arm the listener: a process that ran out of descriptors once (idle connections, a connection flood)
// would look alive and serve nobody new. The watchdog reads the kernel's socket table: a connection to the port
// that is established but owned by no process has not been accepted yet, and one left so for `stuck_after` means
// the listener is dead. It then calls `on_stuck` once; segrel-server exits so that its supervisor restarts it, and
// the accepted jobs are recovered from the spool (crash-only recovery, as for kill -9).
#ifndef SEGREL_SERVER_LISTENER_WATCHDOG_H_
#define SEGREL_SERVER_LISTENER_WATCHDOG_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segrel::server {

// The connections to local `port` that wait in its accept queue, as "LOCAL REMOTE" address pairs, from the text of
// /proc/net/tcp or /proc/net/tcp6: established or closed by the peer (ESTABLISHED, CLOSE_WAIT) and without an
// inode (no process holds them). Lines that do not parse are skipped.
std::vector<std::string> UnacceptedConnections(absl::string_view socket_table, int port);

// Thread-safe; its thread samples the socket table every stuck_after / 5 (at least 50 ms).
class ListenerWatchdog {
 public:
  // Watches `ports` (0s are ignored). REQUIRES: stuck_after > 0.
  ListenerWatchdog(std::vector<int> ports, absl::Duration stuck_after, std::function<void(int port)> on_stuck);
  ~ListenerWatchdog();  // stops the thread
  ListenerWatchdog(const ListenerWatchdog&) = delete;
  ListenerWatchdog& operator=(const ListenerWatchdog&) = delete;

 private:
  void Run();
  // The port with a connection waiting since `stuck_after` ago, or 0.
  int StuckPort(absl::Time now);

  const std::vector<int> ports_;
  const absl::Duration stuck_after_;
  const std::function<void(int)> on_stuck_;
  absl::flat_hash_map<std::string, absl::Time> first_seen_;  // "PORT LOCAL REMOTE" -> when first seen waiting
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_LISTENER_WATCHDOG_H_
