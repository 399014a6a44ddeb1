#include "server/idle_timer.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace segrel::server {

IdleTimer::IdleTimer(absl::Duration timeout) : timeout_(timeout), thread_([this] { Run(); }) {}

IdleTimer::~IdleTimer() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

IdleTimer::Id IdleTimer::Add(std::weak_ptr<Expirable> target) {
  absl::MutexLock lock(&mutex_);
  const Id id = next_id_++;
  entries_[id] = Entry{std::move(target), absl::Now()};
  return id;
}

void IdleTimer::Touch(Id id) {
  absl::MutexLock lock(&mutex_);
  if (const auto it = entries_.find(id); it != entries_.end()) it->second.last_touched = absl::Now();
}

void IdleTimer::Remove(Id id) {
  absl::MutexLock lock(&mutex_);
  entries_.erase(id);
}

void IdleTimer::Run() {
  // A target expires between timeout and timeout + period after its last touch.
  const absl::Duration period = std::clamp(timeout_ / 4, absl::Milliseconds(20), absl::Seconds(1));
  while (true) {
    std::vector<std::shared_ptr<Expirable>> expired;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto it = entries_.begin(); it != entries_.end();) {
        if (now - it->second.last_touched < timeout_) {
          ++it;
          continue;
        }
        if (std::shared_ptr<Expirable> target = it->second.target.lock()) expired.push_back(std::move(target));
        entries_.erase(it++);
      }
    }
    for (const std::shared_ptr<Expirable>& target : expired) target->Expire();
  }
}

}  // namespace segrel::server
