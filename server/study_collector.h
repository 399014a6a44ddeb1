// When a study sent to the DICOM node is complete: DICOM has no "end of study" message, so a study counts as
// complete once no instance of it has arrived for `quiet` (DCMTK's storescp calls it the end-of-study timeout;
// MONAI Deploy Informatics Gateway waits 5 s). Instances are grouped by study and by the called and calling AE
// titles: one study sent to two model AE titles is two studies. An instance that arrives after its study was handed
// on starts the study again, so the grown study becomes a job of its own.
#ifndef SEGREL_SERVER_STUDY_COLLECTOR_H_
#define SEGREL_SERVER_STUDY_COLLECTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dicom_receiver.h"

namespace segrel::server {

struct CollectedStudy {
  std::string study_uid;
  std::string called_ae_title;
  std::string calling_ae_title;
  size_t instances = 0;  // new instances received (duplicates not counted)
  uint64_t bytes = 0;
  absl::Time first;  // when its first and last instance arrived
  absl::Time last;
};

// Thread-safe. `on_complete` runs on the collector's thread, one study at a time.
class StudyCollector {
 public:
  // REQUIRES: quiet > 0.
  StudyCollector(absl::Duration quiet, std::function<void(const CollectedStudy&)> on_complete);
  ~StudyCollector();  // hands nothing more on
  StudyCollector(const StudyCollector&) = delete;
  StudyCollector& operator=(const StudyCollector&) = delete;

  void Add(const ReceivedInstance& instance);
  // Studies still waiting for their quiet time.
  size_t pending() const;

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // study, called, calling
  void Run();

  const absl::Duration quiet_;
  const std::function<void(const CollectedStudy&)> on_complete_;
  mutable absl::Mutex mutex_;
  absl::flat_hash_map<Key, CollectedStudy> studies_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace segrel::server

#endif  // SEGREL_SERVER_STUDY_COLLECTOR_H_
