#include "server/dicom_node.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "core/common/files.h"
#include "core/io/dicom_file.h"
#include "core/io/series_rules.h"
#include "proto/checksums.h"
#include "segrel/v1/segrel.pb.h"
#include "server/durable_file.h"

namespace segrel::server {
namespace {

namespace fs = std::filesystem;

// In a received study's folder: "CALLED CALLING", the AE titles of the association that brought its first instance.
constexpr char kOriginFile[] = ".origin";

// The files of a received study, in name order: STUDY/SERIES/INSTANCE.dcm.
std::vector<fs::path> StudyFiles(const std::string& folder) {
  std::vector<fs::path> files;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(folder, error)) {
    if (entry.is_regular_file(error) && entry.path().extension() == ".dcm") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// What series rules look at, from the first readable image of each series folder.
std::vector<io::DicomSeriesInfo> SeriesOfStudy(const std::string& folder) {
  std::vector<io::DicomSeriesInfo> series;
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) {
    if (!entry.is_directory(error)) continue;
    for (const fs::path& file : StudyFiles(entry.path().string())) {
      const io::dicom::ScannedFile scanned = io::dicom::ScanDicomFile(file.string());
      if (scanned.kind != io::dicom::FileKind::kImage) continue;
      const io::dicom::SliceHeader& header = scanned.header;
      io::DicomSeriesInfo info;
      info.series_instance_uid = header.series_instance_uid;
      info.study_instance_uid = header.study_instance_uid;
      info.sop_class_uid = header.sop_class_uid;
      info.modality = header.modality;
      info.series_number = header.series_number;
      info.series_description = header.series_description;
      info.protocol_name = header.protocol_name;
      info.image_type = header.image_type;
      info.echo_time = header.echo_time;
      info.repetition_time = header.repetition_time;
      info.flip_angle = header.flip_angle;
      info.trigger_time = header.trigger_time;
      series.push_back(std::move(info));
      break;
    }
  }
  std::sort(series.begin(), series.end(), [](const io::DicomSeriesInfo& a, const io::DicomSeriesInfo& b) {
    return std::tie(a.series_number, a.series_instance_uid) < std::tie(b.series_number, b.series_instance_uid);
  });
  return series;
}

// When anything in the study last changed: the newest modification time of its folders.
absl::Time LastChange(const std::string& folder) {
  absl::Time newest = absl::InfinitePast();
  const auto consider = [&newest](const std::string& path) {
    struct stat status;
    if (stat(path.c_str(), &status) == 0) {
      newest = std::max(newest, absl::TimeFromTimespec(status.st_mtim));
    }
  };
  consider(folder);
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, error)) consider(entry.path().string());
  return newest;
}

}  // namespace

absl::StatusOr<DicomRoute> ParseDicomRoute(const std::string& text) {
  const size_t equals = text.find('=');
  if (equals == std::string::npos || equals == 0 || equals + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("a DICOM route is AE_TITLE=MODEL, not '", text.substr(0, 80), "'"));
  }
  DicomRoute route{text.substr(0, equals), text.substr(equals + 1)};
  if (!IsValidAeTitle(route.ae_title)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICOM route '", text.substr(0, 80), "': an AE title has 1 to 16 printable characters"));
  }
  return route;
}

absl::StatusOr<std::unique_ptr<DicomNode>> DicomNode::Start(DicomNodeOptions options, const ModelRepository* models,
                                                            JobManager* jobs, Metrics* metrics, AuditLog* audit) {
  std::vector<std::string> called = {options.receiver.ae_title};
  for (const DicomRoute& route : options.routes) {
    if (std::find(called.begin(), called.end(), route.ae_title) != called.end()) {
      return absl::InvalidArgumentError(absl::StrCat("DICOM AE title ", route.ae_title, " is routed twice"));
    }
    called.push_back(route.ae_title);
    absl::StatusOr<model::Bundle> bundle = models->Find(route.model);
    if (!bundle.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("DICOM route ", route.ae_title, ": ", bundle.status().message()));
    }
    if (!bundle->series_rules.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("DICOM route ", route.ae_title, ": model ", bundle->name,
                                                     " has no series rules to read DICOM studies"));
    }
  }
  options.receiver.called_ae_titles = called;
  absl::StatusOr<std::unique_ptr<InstanceStore>> store =
      InstanceStore::Create(absl::StrCat(jobs->spool_dir(), "/", kDicomIncomingFolder));
  if (!store.ok()) return store.status();
  std::unique_ptr<DicomNode> node(new DicomNode(std::move(options), models, jobs, metrics, *std::move(store)));
  DicomNode* const self = node.get();
  node->sender_ =
      std::make_unique<ResultSender>(node->options_.receiver.ae_title, node->options_.result_backoff, metrics, audit);
  node->collector_ = std::make_unique<StudyCollector>(node->options_.study_quiet,
                                                      [self](const CollectedStudy& study) { self->OnComplete(study); });
  absl::StatusOr<std::unique_ptr<DicomReceiver>> receiver = DicomReceiver::Start(
      node->options_.receiver, node->store_.get(),
      [self](const ReceivedInstance& instance) {
        self->RememberOrigin(instance);
        self->collector_->Add(instance);
      },
      metrics);
  if (!receiver.ok()) return receiver.status();
  node->receiver_ = *std::move(receiver);
  node->RecoverIncoming();
  node->ResumeDeliveries();
  node->sweeper_ = std::thread([self] { self->SweepUntilStopped(); });
  return node;
}

DicomNode::DicomNode(DicomNodeOptions options, const ModelRepository* models, JobManager* jobs, Metrics* metrics,
                     std::unique_ptr<InstanceStore> store)
    : options_(std::move(options)), models_(models), jobs_(jobs), metrics_(metrics), store_(std::move(store)) {}

DicomNode::~DicomNode() { Stop(); }

void DicomNode::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (receiver_ != nullptr) receiver_->Stop();
  collector_.reset();  // hands nothing more on
  if (sweeper_.joinable()) sweeper_.join();
  {
    // Jobs still running (the server lets them finish after this) must find no observer and no sender.
    absl::MutexLock lock(&observers_mutex_);
    observers_.clear();
    delivering_ = false;
  }
  sender_.reset();
}

DicomNodeCounts DicomNode::counts() const {
  absl::MutexLock lock(&mutex_);
  DicomNodeCounts counts = counts_;
  counts.studies_waiting = waiting_.size();
  return counts;
}

void DicomNode::RememberOrigin(const ReceivedInstance& instance) {
  const std::string path = absl::StrCat(store_->StudyFolder(instance.uids.study), "/", kOriginFile);
  absl::MutexLock lock(&origin_mutex_);
  if (access(path.c_str(), F_OK) == 0) return;
  // Durable before the C-STORE is answered: a restarted node must know whose study it is.
  WriteFileDurably(path, absl::StrCat(instance.called_ae_title, " ", instance.calling_ae_title, "\n")).IgnoreError();
}

void DicomNode::RecoverIncoming() {
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(store_->root(), error)) {
    const std::string study_uid = entry.path().filename().string();
    if (!IsValidUid(study_uid)) continue;
    std::ifstream origin(entry.path() / kOriginFile);
    CollectedStudy study;
    if (!(origin >> study.called_ae_title >> study.calling_ae_title)) continue;  // it waits for its retention time
    study.study_uid = study_uid;
    for (const fs::path& file : StudyFiles(entry.path().string())) {
      ++study.instances;
      study.bytes += fs::file_size(file, error);
    }
    study.first = study.last = LastChange(entry.path().string());
    OnComplete(study);  // a study that is a job already is found so and left alone
  }
}

std::optional<model::Bundle> DicomNode::Route(const CollectedStudy& study) const {
  for (const DicomRoute& route : options_.routes) {
    if (route.ae_title == study.called_ae_title) {
      absl::StatusOr<model::Bundle> bundle = models_->Find(route.model);
      if (bundle.ok()) return *bundle;
      return std::nullopt;
    }
  }
  const std::vector<io::DicomSeriesInfo> series = SeriesOfStudy(store_->StudyFolder(study.study_uid));
  for (const model::Bundle& bundle : models_->models()) {
    if (bundle.series_rules.has_value() && io::MapSeries(*bundle.series_rules, series).Complete()) return bundle;
  }
  return std::nullopt;
}

void DicomNode::OnComplete(const CollectedStudy& study) {
  {
    absl::MutexLock lock(&mutex_);
    ++counts_.studies_completed;
  }
  const std::optional<model::Bundle> bundle = Route(study);
  if (!bundle.has_value()) {
    metrics_->dicom_studies.Add({"unrouted"});
    absl::MutexLock lock(&mutex_);
    ++counts_.studies_unrouted;
    return;
  }
  const absl::Status dispatched = Dispatch(study, *bundle);
  metrics_->dicom_studies.Add({dispatched.ok() ? "job" : "waiting"});
  absl::MutexLock lock(&mutex_);
  if (dispatched.ok()) {
    ++counts_.studies_dispatched;
  } else {
    waiting_.emplace_back(study, *bundle);
  }
}

absl::Status DicomNode::Dispatch(const CollectedStudy& study, const model::Bundle& bundle) {
  const std::string folder = store_->StudyFolder(study.study_uid);
  const std::vector<fs::path> files = StudyFiles(folder);
  const std::string id = absl::StrCat("dicom-", proto::Sha256Of(study.study_uid).substr(0, 16), "-", files.size());
  if (jobs_->Find(id) != nullptr) return absl::OkStatus();  // this study, as it is, is a job already
  uint64_t bytes = 0;
  for (const fs::path& file : files) {
    std::error_code error;
    bytes += fs::file_size(file, error);
  }
  if (absl::Status admitted = jobs_->CheckAdmission(bytes); !admitted.ok()) return admitted;
  absl::StatusOr<std::string> directory = jobs_->NewJobDirectory(id);
  if (!directory.ok()) return directory.status();
  v1::JobMetadata metadata;
  metadata.set_job_id(id);
  metadata.set_model(bundle.name);
  JobSpec spec = SpecFor(metadata, bundle, options_.limits, *directory);
  spec.owner = absl::StrCat("dicom:", study.calling_ae_title);
  spec.dicom_dir = spec.InputDirectory() + "/dicom";
  spec.bytes = bytes;
  spec.fingerprint = proto::Sha256Of(absl::StrCat(study.study_uid, "\n", files.size(), "\n", bundle.name));
  // The job's own names for the files (links: the received study stays for instances that come later).
  std::error_code error;
  fs::create_directories(spec.dicom_dir, error);
  for (size_t f = 0; !error && f < files.size(); ++f) {
    const std::string target = absl::StrCat(spec.dicom_dir, "/", f, ".dcm");
    if (link(files[f].c_str(), target.c_str()) != 0) fs::copy_file(files[f], target, error);
  }
  const int fd = open(spec.directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = fd >= 0 && syncfs(fd) == 0;
  if (fd >= 0) close(fd);
  if (error || !synced) {
    RemoveTree(spec.directory).IgnoreError();
    return absl::InternalError("cannot link the received study into its job folder");
  }
  spec.received = absl::Now();
  absl::StatusOr<JobManager::Accepted> accepted = jobs_->Accept(std::move(spec));
  if (!accepted.ok()) return accepted.status();
  if (!accepted->already_submitted) SendResultsWhenDone(accepted->job, study.calling_ae_title);
  return absl::OkStatus();
}

// Watches `job` until it ends; a done job's DICOM SEG goes to the peer `peer_ae_title`.
class DicomNode::ResultsWhenDone final : public JobObserver {
 public:
  ResultsWhenDone(DicomNode* node, std::weak_ptr<Job> job, DicomPeer peer)
      : node_(node), job_(std::move(job)), peer_(std::move(peer)) {}
  void OnJobChanged() override {
    const std::shared_ptr<Job> job = job_.lock();
    if (job == nullptr || fired_.exchange(true)) return;
    const Job::Snapshot snapshot = job->Get();
    if (!IsFinal(snapshot.state)) {
      fired_ = false;
      return;
    }
    if (snapshot.state == JobState::kDone) {
      ResultDelivery delivery{job, {}, peer_};
      for (const std::string& name : snapshot.results) {
        if (absl::EndsWith(name, ".dcm")) delivery.files.push_back(job->spec().OutputDirectory() + "/" + name);
      }
      if (!delivery.files.empty()) node_->Deliver(std::move(delivery));
    }
    node_->Forget(this);
  }

 private:
  DicomNode* const node_;
  const std::weak_ptr<Job> job_;
  const DicomPeer peer_;
  std::atomic<bool> fired_{false};
};

void DicomNode::SendResultsWhenDone(const std::shared_ptr<Job>& job, const std::string& peer_ae_title) {
  const DicomPeer* peer = options_.receiver.peers.FindByTitle(peer_ae_title);
  if (peer == nullptr) return;  // a peer no longer in the peers file gets nothing
  auto observer = std::make_shared<ResultsWhenDone>(this, job, *peer);
  {
    absl::MutexLock lock(&observers_mutex_);
    observers_.push_back(observer);
  }
  job->AddObserver(observer);
  observer->OnJobChanged();  // it may have ended already
}

void DicomNode::ResumeDeliveries() {
  for (const std::shared_ptr<Job>& job : jobs_->Jobs()) {
    if (DeliveryState(*job) == "pending") SendResultsWhenDone(job, job->spec().owner.substr(6));  // after "dicom:"
  }
}

void DicomNode::Deliver(ResultDelivery delivery) {
  absl::MutexLock lock(&observers_mutex_);
  if (delivering_) sender_->Send(std::move(delivery));
}

void DicomNode::Forget(const JobObserver* observer) {
  absl::MutexLock lock(&observers_mutex_);
  observers_.erase(
      std::remove_if(observers_.begin(), observers_.end(),
                     [observer](const std::shared_ptr<JobObserver>& held) { return held.get() == observer; }),
      observers_.end());
}

void DicomNode::SweepUntilStopped() {
  const absl::Duration period = std::min(options_.retry, absl::Minutes(1));
  absl::Time next_retention_sweep = absl::Now();
  while (true) {
    std::vector<std::pair<CollectedStudy, model::Bundle>> offered;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.AwaitWithTimeout(absl::Condition(&stopping_), period);
      if (stopping_) return;
      offered.swap(waiting_);
    }
    for (auto& [study, bundle] : offered) {
      const absl::Status dispatched = Dispatch(study, bundle);
      absl::MutexLock lock(&mutex_);
      if (dispatched.ok()) {
        metrics_->dicom_studies.Add({"job"});
        ++counts_.studies_dispatched;
      } else {
        waiting_.emplace_back(std::move(study), std::move(bundle));
      }
    }
    const absl::Time now = absl::Now();
    if (now < next_retention_sweep) continue;
    next_retention_sweep = now + std::min(options_.retention / 4, absl::Minutes(10));
    std::error_code error;
    for (const fs::directory_entry& entry : fs::directory_iterator(store_->root(), error)) {
      const std::string name = entry.path().filename().string();
      if (!IsValidUid(name) || LastChange(entry.path().string()) + options_.retention > now) continue;
      RemoveTree(entry.path().string()).IgnoreError();  // patient data: no longer than the retention time
    }
  }
}

}  // namespace segrel::server
