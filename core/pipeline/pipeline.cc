#include "core/pipeline/pipeline.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/analysis/components.h"
#include "core/common/files.h"
#include "core/common/status_macros.h"
#include "core/common/torch_status.h"
#include "core/graph/network_model.h"
#include "core/io/dicom_seg.h"
#include "core/io/dicom_sr.h"
#include "core/io/dicom_study.h"
#include "core/io/nifti.h"
#include "core/lrp/composite.h"
#include "core/model/bundle.h"
#include "core/report/pictures.h"
#include "core/report/relevance_report.h"
#include "core/volume/normalisation.h"

namespace segrel::pipeline {
namespace {

std::string Expected(const model::Bundle& bundle) {
  return absl::StrCat("the bundle ", bundle.name, " expects ", absl::StrJoin(bundle.SequenceNames(), ", "));
}

// A folder's NIfTI file named after `name` (NAME.nii.gz or NAME.nii, any letter case), or "".
std::string FindSequenceFile(const std::filesystem::path& folder, const std::string& name) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    if (!entry.is_regular_file(error)) continue;
    const std::string file = absl::AsciiStrToLower(entry.path().filename().string());
    const std::string wanted = absl::AsciiStrToLower(name);
    if (file == wanted + ".nii.gz" || file == wanted + ".nii") return entry.path().string();
  }
  return "";
}

// Whether `dir` holds a NIfTI file (then it is a NIfTI study folder; else it is read as DICOM).
bool HoldsNifti(const std::filesystem::path& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string file = absl::AsciiStrToLower(entry.path().filename().string());
    if (absl::EndsWith(file, ".nii") || absl::EndsWith(file, ".nii.gz")) return true;
  }
  return false;
}

// A DICOM study folder: series mapped by the bundle's rules, resampled onto the reference sequence's grid.
absl::StatusOr<io::AssembledStudy> ReadBundleDicomStudy(const model::Bundle& bundle, const std::string& dir) {
  if (!bundle.series_rules.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, " holds no NIfTI file (NAME.nii.gz) and the bundle ",
                                                   bundle.name, " has no series_rules to map DICOM series; ",
                                                   Expected(bundle)));
  }
  return io::ReadDicomStudy(dir, *bundle.series_rules, bundle.SequenceNames(), bundle.reference_sequence);
}

// The bundle's sequences, in its channel order, from NAME=FILE pairs or a folder.
absl::StatusOr<std::vector<io::SequenceFile>> BundleInputs(const model::Bundle& bundle,
                                                           const AnalysisRequest& request) {
  if (!request.study_dir.empty() && !request.inputs.empty()) {
    return absl::InvalidArgumentError("give the study either as sequence files or as a folder, not both");
  }
  std::vector<io::SequenceFile> files;
  std::vector<std::string> missing;
  if (!request.study_dir.empty()) {
    std::error_code error;
    if (!std::filesystem::is_directory(request.study_dir, error)) {
      return absl::NotFoundError(absl::StrCat(request.study_dir, ": no such folder"));
    }
    for (const std::string& name : bundle.SequenceNames()) {
      const std::string path = FindSequenceFile(request.study_dir, name);
      if (path.empty()) missing.push_back(name);
      files.push_back({name, path});
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(request.study_dir, " has no ", absl::StrJoin(missing, ", "),
                                                     " (NAME.nii.gz or NAME.nii); ", Expected(bundle)));
    }
    return files;
  }
  std::vector<std::string> names;
  for (const io::SequenceFile& input : request.inputs) names.push_back(input.name);
  SEGREL_RETURN_IF_ERROR(bundle.CheckSequences(names));
  std::map<std::string, std::string> given;
  for (const io::SequenceFile& input : request.inputs) given[input.name] = input.path;
  for (const std::string& name : bundle.SequenceNames()) files.push_back({name, given.at(name)});
  return files;
}

// Per-channel z-box bounds [1, C, 1, 1, 1] from the bundle's ranges, if every sequence declares one.
void SetBoxBounds(const model::Bundle& bundle, lrp::RuleParameters& parameters) {
  std::vector<float> low, high;
  for (const model::SequenceSpec& spec : bundle.sequences) {
    if (!spec.range.has_value()) return;
    low.push_back(static_cast<float>(spec.range->first));
    high.push_back(static_cast<float>(spec.range->second));
  }
  const int64_t channels = static_cast<int64_t>(low.size());
  parameters.box_low = at::tensor(low).view({1, channels, 1, 1, 1});
  parameters.box_high = at::tensor(high).view({1, channels, 1, 1, 1});
}

// The bundle, when `model` is one; else nothing (a bare TorchScript or ONNX file).
absl::StatusOr<std::optional<model::Bundle>> ReadBundleIfAny(const std::string& model) {
  if (!model::LooksLikeBundle(model)) return std::optional<model::Bundle>();
  SEGREL_ASSIGN_OR_RETURN(model::Bundle bundle, model::ReadBundle(model));
  return std::optional<model::Bundle>(std::move(bundle));
}

// The study: a DICOM folder mapped by the bundle's series rules, or NIfTI files (NAME=FILE pairs or a folder).
absl::Status ReadStudy(const AnalysisRequest& request, const std::optional<model::Bundle>& bundle,
                       AnalysisResult& result) {
  if (!bundle && !request.study_dir.empty()) {
    return absl::InvalidArgumentError("a study folder needs a model bundle, which names the sequences");
  }
  std::error_code error;
  if (bundle && request.inputs.empty() && std::filesystem::is_directory(request.study_dir, error) &&
      !HoldsNifti(request.study_dir)) {
    SEGREL_ASSIGN_OR_RETURN(io::AssembledStudy assembled, ReadBundleDicomStudy(*bundle, request.study_dir));
    result.study = std::move(assembled.study);
    result.assembly = io::DescribeAssembly(assembled);
    result.reference_series = std::move(assembled.reference_series);
    result.source_series = std::move(assembled.series);
    return absl::OkStatus();
  }
  std::vector<io::SequenceFile> files = request.inputs;
  if (bundle) {
    SEGREL_ASSIGN_OR_RETURN(files, BundleInputs(*bundle, request));
  }
  SEGREL_ASSIGN_OR_RETURN(result.study, io::ReadNiftiStudy(files));
  return absl::OkStatus();
}

// What to explain and how: the composite, the seed, the masks (read here, on the study's grid) and the options.
absl::StatusOr<analysis::ExplainOptions> ExplainOptionsFor(const AnalysisRequest& request, const std::string& composite,
                                                           const io::Study& study) {
  analysis::ExplainOptions options;
  options.composite = composite;
  options.seed = request.seed;
  options.device = request.device;
  for (const auto& [class_index, path] : request.regions) {
    SEGREL_ASSIGN_OR_RETURN(const volume::Volume mask, io::ReadNifti(path));
    SEGREL_RETURN_IF_ERROR(io::CheckSameGrid(mask, study.volumes.front()));
    options.region_masks[class_index] = mask.data;
  }
  if (!request.reference.empty()) {
    SEGREL_ASSIGN_OR_RETURN(const volume::Volume reference, io::ReadNifti(request.reference));
    SEGREL_RETURN_IF_ERROR(io::CheckSameGrid(reference, study.volumes.front()));
    options.reference = reference.data;
  }
  options.per_lesion = request.per_lesion;
  options.ablation = request.ablation;
  options.progress = request.progress;
  return options;
}

// The network input [1, C, i, j, k]: each sequence normalised as the bundle says (bare models: as read).
absl::StatusOr<at::Tensor> NetworkInput(const io::Study& study, const std::optional<model::Bundle>& bundle) {
  return CatchTorch("preparing the input", [&]() -> absl::StatusOr<at::Tensor> {
    std::vector<at::Tensor> channels;
    for (size_t s = 0; s < study.volumes.size(); ++s) {
      const volume::Normalisation normalisation =
          bundle ? bundle->sequences[s].normalisation : volume::Normalisation::kNone;
      channels.push_back(volume::Normalise(study.volumes[s].data, normalisation));
    }
    return at::stack(channels).unsqueeze(0);
  });
}

// Sliding windows (the bundle's, or the request's patch for bare models) and the bundle's z-box bounds.
void SetWindowsAndBounds(const AnalysisRequest& request, const std::optional<model::Bundle>& bundle,
                         analysis::ExplainOptions& options) {
  if (bundle) {
    SetBoxBounds(*bundle, options.rule_parameters);
    options.window = analysis::WindowOptions{bundle->patch_size, bundle->overlap, bundle->sigma_fraction};
  } else if (!request.patch.empty()) {
    options.window = analysis::WindowOptions{request.patch};
  }
  if (options.window) options.window->cache_bytes = request.window_cache_bytes;
  options.output = request.output.value_or(bundle ? bundle->output : -1);
}

// What relevance.json says besides the explanation.
report::ReportContext DescribeAnalysis(const AnalysisRequest& request, const std::optional<model::Bundle>& bundle,
                                       const std::string& model_path, const analysis::ExplainOptions& options,
                                       const io::Study& study) {
  report::ReportContext context;
  context.model = bundle ? bundle->name : std::filesystem::path(model_path).filename().string();
  if (bundle) {
    context.model_version = bundle->version;
    context.license = bundle->license;
    context.class_names = bundle->classes;
  }
  context.sequences = study.names;
  const auto sizes = study.volumes.front().SpatialSizes();
  context.grid = {sizes[0], sizes[1], sizes[2]};
  context.composite = options.composite;
  context.seed = request.seed;
  context.tau = options.tau;
  context.device = request.device.str();
  context.threads = at::get_num_threads();
  if (options.window) context.patch = options.window->patch;
  return context;
}

// The SR's region for the classes `segments` (the combined map when all foreground classes are given).
io::ExplainedRegion ExplainedRegionOf(const AnalysisResult& result, const std::vector<uint16_t>& segments) {
  io::ExplainedRegion region;
  region.segments = segments;
  const at::Tensor& labels = result.explanation.segmentation;
  at::Tensor in_segments = at::zeros_like(labels, at::kBool);
  for (const uint16_t segment : segments) in_segments |= labels == segment;
  region.voxels = in_segments.sum().item<int64_t>();
  region.lesions = analysis::ConnectedComponents(in_segments).count;
  if (segments.size() == 1) {
    const report::ClassSummary& summary = result.summary.classes.at(segments.front());
    region.name = summary.name.empty() ? absl::StrCat("class ", summary.index) : summary.name;
    region.explained_voxels = summary.region_voxels;
    region.shares = summary.relevance.shares;
    region.raw = summary.relevance.raw;
  } else {
    region.name = "all classes";
  }
  return region;
}

// The SR's content: each foreground class, then "all classes", the combined map M (which also holds the
// background's relevance), the last region and the one that carries the Dice coefficient.
io::RelevanceReportContent RelevanceReportContentOf(const AnalysisResult& result) {
  const report::AnalysisSummary& summary = result.summary;
  io::RelevanceReportContent content;
  content.model = summary.model;
  content.model_version = summary.model_version;
  content.composite = summary.composite;
  content.seed = summary.seed;
  content.tau = summary.tau;
  content.region_kind = summary.regions;
  content.sequences = summary.sequences;
  content.series = result.source_series;
  std::vector<uint16_t> foreground;
  for (size_t c = 1; c < summary.classes.size(); ++c) {
    foreground.push_back(static_cast<uint16_t>(c));
    content.regions.push_back(ExplainedRegionOf(result, {static_cast<uint16_t>(c)}));
  }
  io::ExplainedRegion combined = ExplainedRegionOf(result, foreground);
  combined.name = "all classes";
  combined.shares = summary.relevance.shares;
  combined.raw = summary.relevance.raw;
  combined.explained_voxels = 0;
  for (const report::ClassSummary& class_summary : summary.classes) {
    combined.explained_voxels += class_summary.region_voxels;
  }
  combined.dice = summary.dice;
  content.regions.push_back(std::move(combined));
  return content;
}

// A DICOM study's results for PACS: segmentation.dcm, a DICOM SEG on the reference series, and
// relevance_report.dcm, the TID 1500 structured report of the relevance; adds their names.
absl::Status WriteDicomResults(const AnalysisResult& result, const std::string& out_dir,
                               std::vector<std::string>& written) {
  io::DicomSegOptions seg_options;
  seg_options.algorithm_name = absl::StrCat("segrel ", result.summary.model, " ", result.summary.model_version);
  const std::string seg_path = out_dir + "/segmentation.dcm";
  SEGREL_RETURN_IF_ERROR(io::WriteDicomSeg(seg_path, result.explanation.segmentation, result.class_names,
                                           *result.reference_series, seg_options));
  written.push_back("segmentation.dcm");
  SEGREL_RETURN_IF_ERROR(
      io::WriteDicomRelevanceReport(out_dir + "/relevance_report.dcm", RelevanceReportContentOf(result), seg_path));
  written.push_back("relevance_report.dcm");
  return absl::OkStatus();
}

// segmentation.nii.gz, for DICOM studies segmentation.dcm, with `maps` relevance_<NAME>.nii.gz; adds their names.
absl::Status WriteVolumes(const AnalysisResult& result, const std::string& out_dir, bool maps,
                          std::vector<std::string>& written) {
  const volume::Volume& grid = result.study.volumes.front();
  SEGREL_RETURN_IF_ERROR(io::WriteNifti(out_dir + "/segmentation.nii.gz", result.explanation.segmentation,
                                        io::NiftiDataType::kUInt8, grid));
  written.push_back("segmentation.nii.gz");
  if (result.reference_series) SEGREL_RETURN_IF_ERROR(WriteDicomResults(result, out_dir, written));
  if (maps) {
    for (size_t s = 0; s < result.study.names.size(); ++s) {
      const std::string name = absl::StrCat("relevance_", result.study.names[s], ".nii.gz");
      SEGREL_RETURN_IF_ERROR(
          io::WriteNifti(out_dir + "/" + name, result.explanation.relevance_map[s], io::NiftiDataType::kFloat32, grid));
      written.push_back(name);
    }
  }
  return absl::OkStatus();
}

// relevance_bars.png and relevance_overlay.png; adds their names, or without gnuplot a note saying why not.
absl::Status WritePictures(const AnalysisResult& result, const std::string& out_dir, std::vector<std::string>& written,
                           std::vector<std::string>& notes) {
  report::StudyPictures study_pictures;
  study_pictures.sequences = result.study.names;
  study_pictures.images = result.input[0];
  study_pictures.relevance = result.explanation.relevance_map;
  study_pictures.segmentation = result.explanation.segmentation;
  study_pictures.shares = result.summary.relevance.shares;
  for (const report::ClassSummary& summary : result.summary.classes) {
    const std::string name = summary.name.empty() ? absl::StrCat("class ", summary.index) : summary.name;
    study_pictures.class_shares.emplace_back(name, summary.relevance.shares);
  }
  absl::StatusOr<std::vector<std::string>> images = report::WriteStudyPictures(study_pictures, out_dir);
  if (images.status().code() == absl::StatusCode::kFailedPrecondition) {
    // No gnuplot: the pictures are a view of results that are all there; losing the analysis for them would
    // be worse than saying why they are missing.
    notes.push_back(absl::StrCat("no pictures: ", images.status().message()));
    return absl::OkStatus();
  }
  if (!images.ok()) return images.status();
  written.insert(written.end(), images->begin(), images->end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AnalysisResult> RunAnalysis(const AnalysisRequest& request) {
  analysis::StageTracker stages(request.progress);
  AnalysisResult result;
  SEGREL_RETURN_IF_ERROR(stages.Start(analysis::Stage::kRead));
  SEGREL_ASSIGN_OR_RETURN(const std::optional<model::Bundle> bundle, ReadBundleIfAny(request.model));
  const std::string composite = request.composite.value_or(bundle ? bundle->composite : "epsilon-plus");
  if (const absl::StatusOr<lrp::Composite> known = lrp::Composite::Create(composite); !known.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("composite: ", known.status().message()));
  }
  SEGREL_RETURN_IF_ERROR(ReadStudy(request, bundle, result));
  SEGREL_ASSIGN_OR_RETURN(analysis::ExplainOptions options, ExplainOptionsFor(request, composite, result.study));

  SEGREL_RETURN_IF_ERROR(stages.Start(analysis::Stage::kLoadModel));
  const std::string model_path = bundle ? bundle->model_path : request.model;
  model::ModelReplicas this_analysis_only;
  model::ModelReplicas& replicas = request.replicas != nullptr ? *request.replicas : this_analysis_only;
  SEGREL_ASSIGN_OR_RETURN(model::ModelReplica* const replica, replicas.Get(model_path));
  SEGREL_RETURN_IF_ERROR(stages.Start(analysis::Stage::kNormalise));
  SEGREL_ASSIGN_OR_RETURN(result.input, NetworkInput(result.study, bundle));
  stages.Stop();

  SetWindowsAndBounds(request, bundle, options);
  SEGREL_ASSIGN_OR_RETURN(result.explanation, analysis::ExplainSegmentation(*replica, result.input, options));
  report::ReportContext context = DescribeAnalysis(request, bundle, model_path, options, result.study);
  context.seconds = stages.times();
  result.summary = report::Summarize(result.explanation, context);
  result.class_names = context.class_names;
  return result;
}

absl::StatusOr<std::vector<std::string>> WriteAnalysis(const AnalysisResult& result, const std::string& out_dir,
                                                       bool maps, bool pictures,
                                                       report::AnalysisSummary* written_summary) {
  analysis::StageTracker stages;
  SEGREL_RETURN_IF_ERROR(stages.Start(analysis::Stage::kWrite));
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(out_dir, ": cannot create the folder: ", error.message()));
  std::vector<std::string> written;
  SEGREL_RETURN_IF_ERROR(WriteVolumes(result, out_dir, maps, written));
  report::AnalysisSummary summary = result.summary;
  if (pictures) SEGREL_RETURN_IF_ERROR(WritePictures(result, out_dir, written, summary.notes));
  stages.Stop();
  summary.seconds.insert(stages.times().begin(), stages.times().end());
  SEGREL_RETURN_IF_ERROR(WriteTextFile(out_dir + "/relevance.json", report::RelevanceReportJson(summary)));
  written.insert(written.begin(), "relevance.json");
  if (written_summary != nullptr) *written_summary = std::move(summary);
  return written;
}

}  // namespace segrel::pipeline
