// Ends what has been idle too long: a stalled upload must not hold a connection, a file and a slot of the upload
// limit forever. Each watched target is touched whenever it makes progress; one left untouched for the timeout is
// expired once, on the timer's thread.
#ifndef SEGREL_SERVER_IDLE_TIMER_H_
#define SEGREL_SERVER_IDLE_TIMER_H_

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace segrel::server {

class Expirable {
 public:
  virtual ~Expirable() = default;
  // Called at most once, on the timer's thread, with no lock of the timer held.
  virtual void Expire() = 0;
};

// Thread-safe.
class IdleTimer {
 public:
  // REQUIRES: timeout > 0.
  explicit IdleTimer(absl::Duration timeout);
  ~IdleTimer();  // stops the timer's thread; expires nothing more
  IdleTimer(const IdleTimer&) = delete;
  IdleTimer& operator=(const IdleTimer&) = delete;

  using Id = uint64_t;
  // Watches `target` (held weakly: a target that is gone is dropped) from now.
  Id Add(std::weak_ptr<Expirable> target);
  void Touch(Id id);
  void Remove(Id id);
  absl::Duration timeout() const { return timeout_; }

 private:
  struct Entry {
    std::weak_ptr<Expirable> target;
    absl::Time last_touched;
  };
  void Run();

  const absl::Duration timeout_;
  absl::Mutex mutex_;
  absl::flat_hash_map<Id, Entry> entries_ ABSL_GUARDED_BY(mutex_);
  Id next_id_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_IDLE_TIMER_H_
