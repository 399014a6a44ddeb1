#include "server/study_collector.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace segrel::server {

StudyCollector::StudyCollector(absl::Duration quiet, std::function<void(const CollectedStudy&)> on_complete)
    : quiet_(quiet), on_complete_(std::move(on_complete)), thread_([this] { Run(); }) {}

StudyCollector::~StudyCollector() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void StudyCollector::Add(const ReceivedInstance& instance) {
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mutex_);
  CollectedStudy& study = studies_[Key{instance.uids.study, instance.called_ae_title, instance.calling_ae_title}];
  if (study.study_uid.empty()) {
    study.study_uid = instance.uids.study;
    study.called_ae_title = instance.called_ae_title;
    study.calling_ae_title = instance.calling_ae_title;
    study.first = now;
  }
  study.last = now;
  if (!instance.duplicate) {
    ++study.instances;
    study.bytes += instance.bytes;
  }
}

size_t StudyCollector::pending() const {
  absl::MutexLock lock(&mutex_);
  return studies_.size();
}

void StudyCollector::Run() {
  // A study is handed on between quiet and quiet + period after its last instance.
  const absl::Duration period = std::clamp(quiet_ / 10, absl::Milliseconds(10), absl::Milliseconds(500));
  while (true) {
    std::vector<CollectedStudy> complete;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
      const absl::Time now = absl::Now();
      for (auto it = studies_.begin(); it != studies_.end();) {
        if (now - it->second.last < quiet_) {
          ++it;
          continue;
        }
        complete.push_back(std::move(it->second));
        studies_.erase(it++);
      }
    }
    std::sort(complete.begin(), complete.end(),
              [](const CollectedStudy& a, const CollectedStudy& b) { return a.last < b.last; });
    for (const CollectedStudy& study : complete) on_complete_(study);
  }
}

}  // namespace segrel::server
