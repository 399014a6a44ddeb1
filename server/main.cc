// segrel-server: serves segrel's analysis over gRPC (proto/segrel/v1/segrel.proto). Wiring only: options → server
// (models, job manager, workers, metrics, service) → wait for SIGTERM/SIGINT → graceful stop with a deadline.
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/common/allocator.h"
#include "core/common/status_macros.h"
#include "server/dicom_echo.h"
#include "server/health_only_server.h"
#include "server/server.h"
#include "tools/command_line/command_line.h"

namespace {

using segrel::cli::CommandLine;

// The listener watchdog (server/listener_watchdog.h) wakes the main thread with this signal; the process then exits
// with this code, for its supervisor to restart it.
constexpr int kListenerStuckSignal = SIGUSR1;
constexpr int kListenerStuckExitCode = 3;
using segrel::cli::Option;

const std::vector<Option>& ServerFlags() {
  static const auto* const options = new std::vector<Option>{
      {"model-repository", "DIR", "folder of model bundles, NAME/segrel.json or NAME/VERSION/... (default models)"},
      {"address", "HOST:PORT", "gRPC address; 0.0.0.0:50051 for every interface (default 127.0.0.1:50051)"},
      {"metrics-address", "[HOST:]PORT", "Prometheus /metrics address; empty: none (default 127.0.0.1:9464)"},
      {"health-address", "HOST:PORT",
       "a plaintext port serving only grpc.health.v1, for probes that cannot present "
       "a client certificate; empty: none (default)"},
      {"tls-cert", "FILE", "PEM certificate chain of the server: the gRPC port speaks TLS (default: plaintext)"},
      {"tls-key", "FILE", "PEM private key of the server"},
      {"tls-client-ca", "FILE", "PEM CA: clients must present a certificate it signed (mutual TLS)"},
      {"tls-refresh", "DURATION", "how often the TLS files are read again, for rotated secrets (default 1m)"},
      {"tokens-file", "FILE",
       "bearer tokens, one client per line: NAME RIGHTS TOKEN, RIGHTS from submit, own-jobs, "
       "all-jobs, list-models or all (default: no tokens, every caller may do everything)"},
      {"audit-log", "FILE",
       "audit trail, one line per job event (who, which job, what, result; never file names or "
       "patient data), appended to FILE; '-': standard error; empty: none (default -)"},
      {"spool-dir", "DIR", "folder for uploads and results (default /tmp/segrel-server)"},
      {"workers", "N", "CPU workers: jobs run at once on the CPU, one model replica each (default 1)"},
      {"cuda-workers", "N", "workers on CUDA devices, one per device; -1: every device LibTorch sees (default -1)"},
      {"threads", "N", "LibTorch threads, shared by the workers; 0: all cores (default 0)"},
      {"queue-capacity", "N",
       "jobs waiting (with --queue: queued or running in the whole cluster); beyond it Submit answers "
       "RESOURCE_EXHAUSTED (default 16)"},
      {"max-study-mb", "MB", "largest study accepted, all files together (default 4096)"},
      {"max-files", "N", "most files per job; a DICOM study has one per slice (default 10000)"},
      {"max-uploads", "N", "Submit streams at once; beyond: RESOURCE_EXHAUSTED with a retry hint (default 32)"},
      {"upload-idle-timeout", "DURATION", "a Submit stream that sends nothing this long is ended (default 1m)"},
      {"min-upload-rate-kb", "KB",
       "after its first --upload-idle-timeout, a Submit stream averaging fewer KiB/s is ended; "
       "0: none (default 16)"},
      {"max-watches", "N", "Watch streams at once, in all (default 1000)"},
      {"max-watches-per-job", "N", "Watch streams at once on one job (default 64)"},
      {"min-free-mb", "MB",
       "storage watermark: uploads that would leave the spool less free space are refused "
       "(default 1024)"},
      {"job-deadline", "DURATION", "default time a job may wait in the queue (default 1h)"},
      {"retention", "DURATION", "how long an ended job's results are kept for Watch (default 24h)"},
      {"no-job-records", "",
       "keep jobs in memory only: a crash or restart loses them (default: jobs are recorded in "
       "the spool and recovered at start-up)"},
      {"shutdown-grace", "DURATION", "on SIGTERM, time running jobs get to finish (default 2m)"},
      {"dicom-port", "PORT",
       "DICOM port: segrel receives studies by C-STORE (default 0: off; DCMTK binds every interface)"},
      {"dicom-ae-title", "AE",
       "the DICOM node's own AE title: studies go to the first model whose series rules they meet (default SEGREL)"},
      {"dicom-peers", "FILE",
       "the DICOM peers allowed to call, one per line: AE_TITLE HOST PORT (required with --dicom-port)"},
      {"dicom-route", "AE=MODEL", "a called AE title whose studies go to MODEL; repeatable"},
      {"dicom-max-associations", "N", "DICOM associations at once; beyond: rejected (default 25)"},
      {"dicom-study-timeout", "DURATION", "a DICOM study is complete this long after its last instance (default 5s)"},
      {"dicom-acse-timeout", "DURATION", "DICOM association negotiation and release timeout (default 30s)"},
      {"dicom-dimse-timeout", "DURATION", "a DICOM association that sends nothing this long is aborted (default 60s)"},
      {"queue", "URL",
       "a cluster's job queue, nats://HOST:PORT of a NATS with JetStream: replicas on one shared --spool-dir share "
       "jobs, states and results (default: the in-process queue)"},
      {"replica-name", "NAME", "this replica's name in the cluster's job states (default: the host name)"},
      {"role", "ROLE",
       "a cluster replica's part: all (accept uploads and run jobs), accept (no workers) or work (no uploads) "
       "(default all)"},
      {"queue-ack-wait", "DURATION",
       "a job whose replica stops renewing it this long (killed) goes to another replica (default 30s)"},
      {"queue-max-deliveries", "N", "runs of one job started without an ending before it fails (default 3)"},
      {"listener-watchdog", "DURATION",
       "a connection left unaccepted this long means gRPC stopped accepting (after running out of "
       "file descriptors): the server stops with exit code 3 for its supervisor to restart it; 0: off "
       "(default 30s)"},
  };
  return *options;
}

constexpr char kUsage[] =
    "usage: segrel-server [--model-repository DIR] [--address HOST:PORT] [options] [--flagfile FILE]\n"
    "--flagfile FILE reads options from FILE, one per line (--name=value). Options:\n";

struct Settings {
  segrel::server::ServerOptions server;
  absl::Duration shutdown_grace = absl::Minutes(2);
};

// Reads an integer option into `target` (unchanged when the option is not given).
template <typename T>
absl::Status SetInteger(const CommandLine& flags, const std::string& name, int64_t minimum, T& target) {
  SEGREL_ASSIGN_OR_RETURN(const std::optional<int64_t> value, flags.Integer(name, minimum));
  if (value.has_value()) target = static_cast<T>(*value);
  return absl::OkStatus();
}

// The DICOM node's options: off unless --dicom-port is given.
absl::Status ParseClusterSettings(const CommandLine& flags, segrel::server::ServerOptions& options) {
  using Role = segrel::server::ServerOptions::Role;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> role, flags.Single("role"));
  if (role.has_value()) {
    if (*role == "all") {
      options.role = Role::kAll;
    } else if (*role == "accept") {
      options.role = Role::kAccept;
    } else if (*role == "work") {
      options.role = Role::kWork;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--role must be all, accept or work, not '", *role, "'"));
    }
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> url, flags.Single("queue"));
  if (!url.has_value()) {
    for (const char* name : {"replica-name", "queue-ack-wait", "queue-max-deliveries"}) {
      SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> value, flags.Single(name));
      if (value.has_value()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs --queue"));
    }
    if (options.role != Role::kAll) return absl::InvalidArgumentError("--role needs --queue");
    return absl::OkStatus();
  }
  if (!absl::StartsWith(*url, "nats://")) {
    return absl::InvalidArgumentError(absl::StrCat("--queue must be nats://HOST:PORT, not '", *url, "'"));
  }
  segrel::server::ClusterOptions cluster;
  cluster.url = *url;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> name, flags.Single("replica-name"));
  if (name.has_value()) {
    cluster.replica = *name;
  } else {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    cluster.replica = host;
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> ack_wait, flags.Duration("queue-ack-wait"));
  cluster.queue.ack_wait = ack_wait.value_or(absl::Seconds(30));
  if (cluster.queue.ack_wait < absl::Seconds(1)) return absl::InvalidArgumentError("--queue-ack-wait must be >= 1s");
  int64_t deliveries = 3;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "queue-max-deliveries", 1, deliveries));
  cluster.queue.max_deliveries = static_cast<int>(deliveries);
  options.cluster = std::move(cluster);
  return absl::OkStatus();
}

absl::Status ParseDicomSettings(const CommandLine& flags, segrel::server::ServerOptions& options) {
  int port = 0;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "dicom-port", 0, port));
  if (port == 0) return absl::OkStatus();
  segrel::server::DicomNodeOptions dicom;
  dicom.receiver.port = port;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> ae_title, flags.Single("dicom-ae-title"));
  dicom.receiver.ae_title = ae_title.value_or("SEGREL");
  SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> peers, flags.Single("dicom-peers"));
  if (!peers.has_value()) return absl::InvalidArgumentError("--dicom-port needs --dicom-peers (who may call)");
  SEGREL_ASSIGN_OR_RETURN(dicom.receiver.peers, segrel::server::DicomPeers::FromFile(*peers));
  for (const std::string& text : flags.Values("dicom-route")) {
    SEGREL_ASSIGN_OR_RETURN(segrel::server::DicomRoute route, segrel::server::ParseDicomRoute(text));
    dicom.routes.push_back(std::move(route));
  }
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "dicom-max-associations", 1, dicom.receiver.max_associations));
  const std::pair<const char*, absl::Duration*> durations[] = {{"dicom-study-timeout", &dicom.study_quiet},
                                                               {"dicom-acse-timeout", &dicom.receiver.acse_timeout},
                                                               {"dicom-dimse-timeout", &dicom.receiver.dimse_timeout}};
  for (const auto& [name, target] : durations) {
    SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> value, flags.Duration(name));
    if (value.has_value()) *target = *value;
    if (*target <= absl::ZeroDuration())
      return absl::InvalidArgumentError(absl::StrCat("--", name, " must be positive"));
  }
  options.dicom = std::move(dicom);
  return absl::OkStatus();
}

absl::StatusOr<Settings> ParseSettings(const std::vector<std::string>& arguments) {
  SEGREL_ASSIGN_OR_RETURN(const CommandLine flags, CommandLine::Parse(arguments, ServerFlags()));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", flags.positional().front(), "'"));
  }
  Settings settings;
  segrel::server::ServerOptions& options = settings.server;
  options.address = "127.0.0.1:50051";
  options.metrics_address = "127.0.0.1:9464";
  options.model_repository = "models";
  options.spool_dir = "/tmp/segrel-server";
  options.audit_log = "-";
  const std::pair<const char*, std::string*> texts[] = {{"address", &options.address},
                                                        {"metrics-address", &options.metrics_address},
                                                        {"model-repository", &options.model_repository},
                                                        {"spool-dir", &options.spool_dir},
                                                        {"health-address", &options.health_address},
                                                        {"tls-cert", &options.tls.cert_file},
                                                        {"tls-key", &options.tls.key_file},
                                                        {"tls-client-ca", &options.tls.client_ca_file},
                                                        {"tokens-file", &options.tokens_file},
                                                        {"audit-log", &options.audit_log}};
  for (const auto& [name, target] : texts) {
    SEGREL_ASSIGN_OR_RETURN(const std::optional<std::string> value, flags.Single(name));
    if (value.has_value()) *target = *value;
  }
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "workers", 0, options.workers));
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "cuda-workers", -1, options.cuda_workers));
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "threads", 0, options.threads));
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "queue-capacity", 1, options.queue_capacity));
  int64_t max_study_mb = 4096;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "max-study-mb", 1, max_study_mb));
  options.limits.max_study_bytes = static_cast<uint64_t>(max_study_mb) << 20;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "max-files", 1, options.limits.max_files));
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "max-uploads", 1, options.streams.max_uploads));
  int64_t min_upload_rate_kb = 16;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "min-upload-rate-kb", 0, min_upload_rate_kb));
  options.streams.min_upload_bytes_per_second = static_cast<uint64_t>(min_upload_rate_kb) << 10;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "max-watches", 1, options.streams.max_watches));
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "max-watches-per-job", 1, options.streams.max_watches_per_job));
  int64_t min_free_mb = 1024;
  SEGREL_RETURN_IF_ERROR(SetInteger(flags, "min-free-mb", 0, min_free_mb));
  options.min_free_bytes = static_cast<uint64_t>(min_free_mb) << 20;
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> idle, flags.Duration("upload-idle-timeout"));
  options.streams.upload_idle_timeout = idle.value_or(absl::Minutes(1));
  if (options.streams.upload_idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--upload-idle-timeout must be positive");
  }
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> deadline, flags.Duration("job-deadline"));
  options.limits.default_deadline = deadline.value_or(absl::Hours(1));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> refresh, flags.Duration("tls-refresh"));
  options.tls.refresh = refresh.value_or(absl::Minutes(1));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> retention, flags.Duration("retention"));
  options.retention = retention.value_or(absl::Hours(24));
  if (options.retention <= absl::ZeroDuration()) return absl::InvalidArgumentError("--retention must be positive");
  options.durable = !flags.Flag("no-job-records");
  SEGREL_RETURN_IF_ERROR(ParseDicomSettings(flags, options));
  SEGREL_RETURN_IF_ERROR(ParseClusterSettings(flags, options));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> watchdog, flags.Duration("listener-watchdog"));
  options.listener_stuck_after = watchdog.value_or(absl::Seconds(30));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<absl::Duration> grace, flags.Duration("shutdown-grace"));
  settings.shutdown_grace = grace.value_or(absl::Minutes(2));
  return settings;
}

// The start-up lines: what was loaded, what the spool held, where the server listens.
void LogStart(const segrel::server::SegrelServer& server, const segrel::server::ServerOptions& options) {
  // One write: the workers already run, and their audit lines (also on stderr) must not land inside a line.
  std::ostringstream out;
  const segrel::server::SpoolRecovery& found = server.jobs().recovery();
  if (found.queued + found.ended + found.incomplete > 0) {
    out << "segrel-server: recovered the spool: " << found.queued << " jobs queued again, " << found.ended
        << " ended jobs kept, " << found.incomplete << " failed (inputs gone)\n";
  }
  if (found.removed + found.expired > 0) {
    out << "segrel-server: removed " << found.removed << " job folders without a record (unfinished uploads, "
        << "or jobs of a server without records) and " << found.expired << " expired jobs from the spool\n";
  }
  if (found.unknown_kept > 0) {
    out << "segrel-server: warning: " << found.unknown_kept
        << " entries in the spool are not job folders; left alone\n";
  }
  if (options.cluster.has_value()) {
    static constexpr const char* kRoles[] = {"accepts uploads and runs jobs", "accepts uploads", "runs jobs"};
    out << "segrel-server: replica " << options.cluster->replica << " of the cluster queue at " << options.cluster->url
        << "; " << kRoles[static_cast<int>(options.role)] << "\n";
  }
  if (found.below_watermark) {
    out << "segrel-server: warning: the spool " << server.jobs().spool_dir() << " has " << (found.free_bytes >> 20)
        << " MiB free, less than the " << (options.min_free_bytes >> 20)
        << " MiB it keeps free (--min-free-mb): uploads are refused until space is freed there\n";
  }
  if (!segrel::server::IsLoopback(options.address)) {
    if (!options.tls.enabled()) {
      out << "segrel-server: warning: listening beyond loopback in plaintext: studies cross the network "
             "unencrypted (--tls-cert, --tls-key)\n";
    }
    if (!server.access().requires_tokens()) {
      out << "segrel-server: warning: listening beyond loopback without tokens: anyone who reaches the port "
             "may submit, watch and cancel every job (--tokens-file)\n";
    }
  }
  for (const segrel::server::FailedModel& failed : server.models().failed()) {
    out << "segrel-server: warning: not serving " << failed.path << ": " << failed.status.message() << "\n";
  }
  if (server.models().models().empty()) {
    out << "segrel-server: error: no model to serve in " << options.model_repository
        << "; health NOT_SERVING (readiness fails)\n";
  }
  out << "segrel-server: " << server.models().models().size() << " models, " << options.workers << " CPU workers, "
      << server.cuda_workers() << " CUDA workers, listening on port " << server.port();
  if (server.metrics_port() > 0) out << ", metrics on port " << server.metrics_port();
  if (server.health_port() > 0) out << ", health on port " << server.health_port();
  if (server.dicom_port() > 0) out << ", DICOM on port " << server.dicom_port();
  if (options.tls.enabled()) out << (options.tls.client_ca_file.empty() ? ", TLS" : ", mutual TLS");
  if (server.access().requires_tokens()) out << ", tokens for " << server.access().clients() << " clients";
  out << "\n";
  std::cerr << out.str() << std::flush;
}

// C-ECHO to every peer of the DICOM node, one line each: whether the destinations of its results can be reached is
// known at start-up, not when the first result fails to go out. Runs beside the server (a peer that does not
// answer takes up to three timeouts).
void EchoPeers(const segrel::server::DicomNodeOptions& dicom) {
  for (const segrel::server::DicomPeer& peer : dicom.receiver.peers.peers()) {
    const absl::Status echoed = segrel::server::EchoPeer(peer, dicom.receiver.ae_title, absl::Seconds(5));
    std::ostringstream line;
    if (echoed.ok()) {
      line << "segrel-server: DICOM peer " << peer.ae_title << " answered C-ECHO\n";
    } else {
      line << "segrel-server: warning: DICOM " << echoed.message() << "; results for it are kept and retried\n";
    }
    std::cerr << line.str() << std::flush;
  }
}

// A server that cannot start (a missing certificate, an unusable spool) exits 1, unless it has a health address:
// then it answers its probes NOT_SERVING (and SERVING for liveness) until it is stopped, so that an orchestrator
// shows it unready instead of restarting it in a loop over a fault a restart cannot fix. Returns the exit code.
int ServeNotServing(const std::string& health_address, const sigset_t& stop_signals) {
  if (health_address.empty()) return 1;
  absl::StatusOr<std::unique_ptr<segrel::server::HealthOnlyServer>> health =
      segrel::server::HealthOnlyServer::Start(health_address);
  if (!health.ok()) {
    std::cerr << "segrel-server: error: " << health.status().message() << "\n";
    return 1;
  }
  std::cerr << "segrel-server: not serving (the error above); health NOT_SERVING on port " << (*health)->port()
            << " until stopped" << std::endl;
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  return 1;
}

// gRPC 1.51 stops accepting connections for good once accept() has failed with EMFILE: the soft limit on open files
// (often 1024) is raised to the hard one, so the limits on uploads and watches, not the fd table, bound the server.
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  segrel::ReuseFreedMemory();  // first: before gRPC's and the workers' threads exist
  // DCMTK turns Nagle's algorithm off on its DICOM connections only when TCP_NODELAY=1 is in the environment (read
  // at each connection). With it on, each small C-STORE response waits for the sender's delayed acknowledgement
  // (about 40 ms): 50 ms per instance instead of about 1 ms on loopback (bench/README.md, "DICOM receive"). Set
  // here, before any thread exists; an explicit TCP_NODELAY=0 is kept.
  setenv("TCP_NODELAY", "1", /*overwrite=*/0);
  RaiseOpenFileLimit();
  // SIGTERM and SIGINT are blocked in every thread (threads inherit the mask) and taken by sigwait below: a signal
  // that arrives while the server starts waits for it instead of killing the process.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, kListenerStuckSignal);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  if (segrel::cli::AsksForHelp(arguments)) {
    std::cout << kUsage << segrel::cli::OptionsHelp(ServerFlags());
    return 0;
  }
  absl::StatusOr<Settings> settings = ParseSettings(arguments);
  if (!settings.ok()) {
    std::cerr << "segrel-server: error: " << settings.status().message() << " (see segrel-server --help)\n";
    return 2;
  }
  settings->server.on_listener_stuck = [](int port) {
    std::cerr << "segrel-server: error: the gRPC port " << port
              << " stopped accepting connections (gRPC does not recover once it ran out of file descriptors); "
                 "stopping so that the supervisor restarts the server, accepted jobs run again then"
              << std::endl;
    kill(getpid(), kListenerStuckSignal);
  };
  absl::StatusOr<std::unique_ptr<segrel::server::SegrelServer>> server =
      segrel::server::SegrelServer::Create(settings->server);
  if (!server.ok()) {
    std::cerr << "segrel-server: error: " << server.status().message() << "\n";
    return ServeNotServing(settings->server.health_address, stop_signals);
  }
  LogStart(**server, settings->server);
  std::thread echoes;
  if (settings->server.dicom) echoes = std::thread(EchoPeers, *settings->server.dicom);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  if (signal_number == kListenerStuckSignal) {  // running jobs stop at once and run again in the next process
    (*server)->Shutdown(absl::Now());
    if (echoes.joinable()) echoes.join();
    std::cerr << "segrel-server: stopped" << std::endl;
    return kListenerStuckExitCode;
  }
  std::cerr << "segrel-server: stopping (running jobs get " << absl::FormatDuration(settings->shutdown_grace) << ")"
            << std::endl;
  (*server)->Shutdown(absl::Now() + settings->shutdown_grace);
  if (echoes.joinable()) echoes.join();
  std::cerr << "segrel-server: stopped" << std::endl;
  return 0;
}
