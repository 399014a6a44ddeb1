// ListenerWatchdog: the kernel's socket table read right (a sample of /proc/net/tcp), and real loopback listeners:
// one that never accepts is reported, one that accepts is not.
#include "server/listener_watchdog.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/synchronization/notification.h"

namespace segrel::server {
namespace {

using ::testing::ElementsAre;

// Three sockets on port 0x1F90 (8080): the listener, one accepted connection (it has an inode), one waiting in the
// accept queue (no inode); one waiting on another port; a closed-by-the-peer one waiting; one in TIME_WAIT.
constexpr char kTable[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n"
    "   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 "
    "-1\n"
    "   2: 0100007F:1F90 0100007F:D432 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n"
    "   3: 0100007F:1F91 0100007F:D433 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n"
    "   4: 0100007F:1F90 0100007F:D434 08 00000000:00000000 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n"
    "   5: 0100007F:1F90 0100007F:D435 06 00000000:00000000 03:00000F3C 00000000     0        0 0 3 0\n"
    "garbage\n";

TEST(UnacceptedConnections, AreEstablishedOrPeerClosedWithoutAnOwner) {
  EXPECT_THAT(UnacceptedConnections(kTable, 8080),
              ElementsAre("0100007F:1F90 0100007F:D432", "0100007F:1F90 0100007F:D434"));
  EXPECT_THAT(UnacceptedConnections(kTable, 8081), ElementsAre("0100007F:1F91 0100007F:D433"));
  EXPECT_TRUE(UnacceptedConnections(kTable, 9).empty());
  EXPECT_TRUE(UnacceptedConnections("", 8080).empty());
}

// A loopback listener on a free port.
struct Listener {
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(fd, 16), 0);
    socklen_t length = sizeof(address);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ~Listener() { close(fd); }
  int fd = -1;
  int port = 0;
};

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

TEST(ListenerWatchdog, ReportsAListenerThatStoppedAccepting) {
  Listener dead;  // never accepts
  absl::Notification stuck;
  std::atomic<int> reported{0};
  ListenerWatchdog watchdog({0, dead.port}, absl::Milliseconds(300), [&](int port) {
    reported = port;
    stuck.Notify();
  });
  const int client = Connect(dead.port);
  EXPECT_TRUE(stuck.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(reported.load(), dead.port);
  close(client);
}

TEST(ListenerWatchdog, LeavesAListenerThatAcceptsAlone) {
  Listener alive;
  std::atomic<bool> stop{false};
  std::thread acceptor([&] {
    for (int accepted = 0; accepted < 20 && !stop; ++accepted) {
      const int fd = accept(alive.fd, nullptr, nullptr);
      if (fd >= 0) close(fd);
    }
  });
  std::atomic<bool> called{false};
  {
    ListenerWatchdog watchdog({alive.port}, absl::Milliseconds(300), [&](int) { called = true; });
    for (int c = 0; c < 20; ++c) {
      close(Connect(alive.port));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  stop = true;
  acceptor.join();
  EXPECT_FALSE(called.load());
}

}  // namespace
}  // namespace segrel::server
