// I/O benchmark (issue "Medical volume I/O"): reading a 4-sequence NIfTI study and a multi-series DICOM study,
// wall time and peak resident memory, against dcm2niix converting the same DICOM series and nibabel loading the
// same NIfTI files. Every reader runs in a child process of its own (segrel's in a fork of this one, the others
// as commands), so each peak (ru_maxrss from wait4) is that reader's alone; the numbers are printed as ratios
// measured in one run.
//
//   io_bench [--nifti-study data/ms-lesjak/patient19] [--dicom-study ../shared/data/prostatex-dicom/ProstateX-0218]
//            [--threads 1] [--repeat 3]
//
// Memory: a forked child starts with this process's pages (LibTorch and DCMTK loaded), so segrel's peak is also
// given above the "baseline", the peak of a child that reads nothing; the goal is peak - baseline < 2x the
// decoded size (float32 voxels). Wall time: the median of --repeat runs; peak: the largest.
#include <ATen/Parallel.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/io/dicom_series.h"
#include "core/io/nifti.h"

namespace {

namespace fs = std::filesystem;

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "io_bench: %s\n", message.c_str());
  std::exit(1);
}

struct Run {
  double seconds = 0;
  int64_t peak_bytes = 0;  // ru_maxrss of the child
  int64_t decoded_bytes = 0;
};

// What a child says back through its pipe.
struct ChildReport {
  double seconds = 0;
  int64_t decoded_bytes = 0;
  int ok = 0;
};

// Runs `work` (returning the decoded bytes) in a forked child; its wall time is measured in the child.
Run InChild(const std::function<absl::StatusOr<int64_t>()>& work) {
  int fds[2];
  if (pipe(fds) != 0) Die("pipe failed");
  std::fflush(stdout);  // or the child would print what this process buffered
  const pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    close(fds[0]);
    const auto start = std::chrono::steady_clock::now();
    const absl::StatusOr<int64_t> decoded = work();
    ChildReport report;
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.ok = decoded.ok() ? 1 : 0;
    if (decoded.ok()) {
      report.decoded_bytes = *decoded;
    } else {
      std::fprintf(stderr, "io_bench: %s\n", std::string(decoded.status().message()).c_str());
    }
    if (write(fds[1], &report, sizeof(report)) != sizeof(report)) _exit(2);
    _exit(0);
  }
  close(fds[1]);
  ChildReport report;
  const bool got = read(fds[0], &report, sizeof(report)) == sizeof(report);
  close(fds[0]);
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!got || !report.ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("a reader failed");
  return {report.seconds, static_cast<int64_t>(usage.ru_maxrss) * 1024, report.decoded_bytes};
}

// Runs a command with its output discarded; wall time measured around it, peak from wait4.
Run Command(const std::vector<std::string>& argv) {
  std::fflush(stdout);  // or the child would print what this process buffered
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid < 0) Die("fork failed");
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    if (freopen("/dev/null", "w", stdout) == nullptr || freopen("/dev/null", "w", stderr) == nullptr) _exit(127);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("command failed: " + argv.front());
  return {seconds, static_cast<int64_t>(usage.ru_maxrss) * 1024, 0};
}

// Median time and largest peak of `repeat` runs.
Run Repeat(int repeat, const std::function<Run()>& once) {
  std::vector<Run> runs;
  for (int n = 0; n < repeat; ++n) runs.push_back(once());
  std::sort(runs.begin(), runs.end(), [](const Run& a, const Run& b) { return a.seconds < b.seconds; });
  Run result = runs[runs.size() / 2];
  for (const Run& run : runs) result.peak_bytes = std::max(result.peak_bytes, run.peak_bytes);
  return result;
}

std::vector<std::string> NiftiFiles(const std::string& study) {
  std::vector<std::string> files;
  for (const char* name : {"T1", "T1POST", "T2", "FLAIR"})
    files.push_back((fs::path(study) / name).string() + ".nii.gz");
  return files;
}

absl::StatusOr<int64_t> ReadNiftiStudy(const std::vector<std::string>& files) {
  std::vector<segrel::volume::Volume> volumes;  // all held at once, as a study is
  int64_t bytes = 0;
  for (const std::string& file : files) {
    absl::StatusOr<segrel::volume::Volume> volume = segrel::io::ReadNifti(file);
    if (!volume.ok()) return volume.status();
    bytes += volume->data.numel() * 4;
    volumes.push_back(*std::move(volume));
  }
  return bytes;
}

absl::StatusOr<int64_t> ReadDicomStudy(const std::string& dir, const std::string& write_to) {
  absl::StatusOr<segrel::io::DicomFolder> folder = segrel::io::ReadDicomFolder(dir);
  if (!folder.ok()) return folder.status();
  if (!folder->failed.empty()) return folder->failed.front().status;
  int64_t bytes = 0;
  for (const segrel::io::DicomSeries& series : folder->series) {
    bytes += series.volume.data.numel() * 4;
    if (write_to.empty() || series.volume.data.dim() != 3) continue;
    const std::string path =
        (fs::path(write_to) / absl::StrCat(series.info.series_number.value_or(0), ".nii")).string();
    const absl::Status written =
        segrel::io::WriteNifti(path, series.volume.data, segrel::io::NiftiDataType::kFloat32, series.volume);
    if (!written.ok()) return written;
  }
  return bytes;
}

std::string Megabytes(int64_t bytes) { return absl::StrCat(static_cast<int64_t>(bytes / 1e6 + 0.5), " MB"); }

void PrintRun(const char* what, const Run& run, const Run& baseline, int64_t decoded) {
  const int64_t above = run.peak_bytes - baseline.peak_bytes;
  std::printf("  %-36s %7.3f s   peak %8s   above baseline %8s = %.2fx decoded\n", what, run.seconds,
              Megabytes(run.peak_bytes).c_str(), Megabytes(above).c_str(),
              static_cast<double>(above) / static_cast<double>(decoded));
}

void PrintReference(const char* what, const Run& run, int64_t decoded) {
  std::printf("  %-36s %7.3f s   peak %8s   = %.2fx decoded\n", what, run.seconds, Megabytes(run.peak_bytes).c_str(),
              static_cast<double>(run.peak_bytes) / static_cast<double>(decoded));
}

}  // namespace

int main(int argc, char** argv) {
  std::string nifti_study = "data/ms-lesjak/patient19";
  std::string dicom_study = "../shared/data/prostatex-dicom/ProstateX-0218";
  int threads = 1, repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string name = argv[i], value = argv[i + 1];
    if (name == "--nifti-study") {
      nifti_study = value;
    } else if (name == "--dicom-study") {
      dicom_study = value;
    } else if (name == "--threads" && absl::SimpleAtoi(value, &threads)) {
    } else if (name == "--repeat" && absl::SimpleAtoi(value, &repeat) && repeat > 0) {
    } else {
      Die("unknown option or bad value: " + name + " " + value);
    }
  }
  const fs::path scratch = fs::temp_directory_path() / absl::StrCat("segrel-io-bench-", getpid());
  fs::create_directories(scratch);
  const auto in_child = [&](std::function<absl::StatusOr<int64_t>()> work) {
    return [threads, work] {
      return InChild([&] {
        at::set_num_threads(threads);
        return work();
      });
    };
  };
  const Run baseline = Repeat(repeat, in_child([]() -> absl::StatusOr<int64_t> { return 1; }));
  std::printf(
      "io_bench: %d LibTorch thread(s), median wall time of %d runs, largest peak RSS; baseline (a child "
      "that reads nothing) %s\n",
      threads, repeat, Megabytes(baseline.peak_bytes).c_str());

  const std::vector<std::string> nifti_files = NiftiFiles(nifti_study);
  const Run segrel_nifti = Repeat(repeat, in_child([&] { return ReadNiftiStudy(nifti_files); }));
  std::vector<std::string> nibabel = {
      "/usr/bin/python3", "-c",
      "import sys, numpy, nibabel\n"
      "volumes = [numpy.asarray(nibabel.load(f).get_fdata(dtype=numpy.float32)) for f in sys.argv[1:]]\n"};
  nibabel.insert(nibabel.end(), nifti_files.begin(), nifti_files.end());
  const Run nibabel_run = Repeat(repeat, [&] { return Command(nibabel); });
  const Run python_only = Repeat(repeat, [&] { return Command({"/usr/bin/python3", "-c", "import numpy, nibabel"}); });
  std::printf("NIfTI study %s: 4 sequences, decoded %s (float32)\n", nifti_study.c_str(),
              Megabytes(segrel_nifti.decoded_bytes).c_str());
  PrintRun("segrel ReadNifti x4", segrel_nifti, baseline, segrel_nifti.decoded_bytes);
  PrintReference("nibabel get_fdata(float32) x4", nibabel_run, segrel_nifti.decoded_bytes);
  PrintReference("  (python3 + import nibabel alone)", python_only, segrel_nifti.decoded_bytes);
  std::printf("  ratio segrel / nibabel: time %.2f\n", segrel_nifti.seconds / nibabel_run.seconds);

  const Run segrel_dicom = Repeat(repeat, in_child([&] { return ReadDicomStudy(dicom_study, ""); }));
  const Run segrel_convert = Repeat(repeat, in_child([&]() -> absl::StatusOr<int64_t> {
                                      const fs::path out = scratch / "segrel";
                                      fs::remove_all(out);
                                      fs::create_directories(out);
                                      return ReadDicomStudy(dicom_study, out.string());
                                    }));
  const Run dcm2niix = Repeat(repeat, [&] {
    const fs::path out = scratch / "dcm2niix";
    fs::remove_all(out);
    fs::create_directories(out);
    return Command({"dcm2niix", "-x", "i", "-b", "n", "-z", "n", "-o", out.string(), dicom_study});
  });
  std::printf("DICOM study %s: decoded %s (float32)\n", dicom_study.c_str(),
              Megabytes(segrel_dicom.decoded_bytes).c_str());
  PrintRun("segrel ReadDicomFolder", segrel_dicom, baseline, segrel_dicom.decoded_bytes);
  PrintRun("segrel read + write .nii (float32)", segrel_convert, baseline, segrel_dicom.decoded_bytes);
  PrintReference("dcm2niix -z n (read + write .nii)", dcm2niix, segrel_dicom.decoded_bytes);
  std::printf(
      "  ratio segrel / dcm2niix: time %.2f (read only), %.2f (read + write); peak above baseline / "
      "dcm2niix peak %.2f\n",
      segrel_dicom.seconds / dcm2niix.seconds, segrel_convert.seconds / dcm2niix.seconds,
      static_cast<double>(segrel_dicom.peak_bytes - baseline.peak_bytes) / static_cast<double>(dcm2niix.peak_bytes));
  fs::remove_all(scratch);
  return 0;
}
