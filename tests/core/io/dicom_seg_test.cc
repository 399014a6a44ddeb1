// DICOM SEG output: written for a synthetic series and a real ProstateX series, read back with DCMTK (segments,
// frames, each frame's position against its source image's own header) and with pydicom through
// check_dicom_seg.py, which rebuilds the expected mask from the source images' pixels and positions alone.
//
// The segmentation is defined by intensity thresholds (class = number of thresholds a voxel's value exceeds), so
// that the expected mask of every frame follows from its source image without segrel's geometry: a frame written
// to the wrong slice, flipped or transposed differs from it.
#include "core/io/dicom_seg.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fginterface.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgseg.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/io/dicom_series.h"
#include "tests/core/io/dicom_test_util.h"
#include "tests/core/io/synthetic_dicom.h"
#include "tests/test_util.h"

namespace segrel::io {
namespace {

namespace fs = std::filesystem;
using segrel::testing::GetTag;
using segrel::testing::ProstateXSeries;
using segrel::testing::ShellQuote;
using segrel::testing::SyntheticSeries;
using segrel::testing::TestTempDir;
using segrel::testing::WriteSyntheticSeries;

// DS values are written with up to 16 characters; source positions have fewer significant digits than that.
constexpr double kPositionToleranceMm = 1e-6;

// Class per voxel: how many of `thresholds` (ascending) its value exceeds.
at::Tensor ThresholdClasses(const at::Tensor& values, const std::vector<double>& thresholds) {
  at::Tensor classes = at::zeros(values.sizes(), at::kLong);
  for (double t : thresholds) classes += (values > t).to(at::kLong);
  return classes;
}

std::vector<double> ParseDecimals(const std::string& text) {
  std::vector<double> values;
  for (absl::string_view part : absl::StrSplit(text, '\\')) values.push_back(std::stod(std::string(part)));
  return values;
}

struct WrittenSeg {
  std::string path;
  DicomSeries series;
  at::Tensor classes;
};

// Reads the series in `dir`, thresholds it and writes its SEG.
WrittenSeg WriteThresholdSeg(const std::string& dir, const std::vector<double>& thresholds,
                             const std::vector<std::string>& class_names, const std::string& temp) {
  WrittenSeg written;
  absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
  EXPECT_TRUE(series.ok()) << series.status();
  if (!series.ok()) return written;
  written.series = *std::move(series);
  written.classes = ThresholdClasses(written.series.volume.data, thresholds);
  written.path = (fs::path(temp) / "seg.dcm").string();
  const absl::Status status = WriteDicomSeg(written.path, written.classes, class_names, written.series.info);
  EXPECT_TRUE(status.ok()) << status;
  return written;
}

// Reads the SEG back with DCMTK and checks segments, frames, source references and every frame's position
// against the ImagePositionPatient of the source image it names (read from that image's file).
void ExpectDcmtkReadsBack(const WrittenSeg& written, const std::vector<std::string>& class_names) {
  DcmSegmentation* loaded = nullptr;
  ASSERT_TRUE(DcmSegmentation::loadFile(written.path.c_str(), loaded).good()) << written.path;
  std::unique_ptr<DcmSegmentation> seg(loaded);
  const DicomSeriesInfo& info = written.series.info;
  const size_t segments = class_names.size() - 1;
  ASSERT_EQ(seg->getNumberOfSegments(), segments);
  ASSERT_EQ(seg->getNumberOfFrames(), segments * info.slices);
  EXPECT_EQ(seg->getSegmentationType(), DcmSegTypes::ST_BINARY);
  for (size_t s = 1; s <= segments; ++s) {
    OFString label;
    ASSERT_NE(seg->getSegment(s), nullptr);
    seg->getSegment(s)->getSegmentLabel(label);
    EXPECT_EQ(label.c_str(), class_names[s]);
  }
  std::map<std::string, std::string> file_of_uid;
  for (size_t n = 0; n < info.files.size(); ++n) file_of_uid[info.sop_instance_uids[n]] = info.files[n];

  // The frames' bits, unpacked here as PS3.5 8.1.1 packs them (frames back to back, no padding between them):
  // DCMTK 3.6.7's own getFrame() assumes each frame starts on a whole byte.
  DcmFileFormat raw;
  ASSERT_TRUE(raw.loadFile(written.path.c_str()).good());
  const Uint8* bits = nullptr;
  unsigned long bytes = 0;
  ASSERT_TRUE(raw.getDataset()->findAndGetUint8Array(DCM_PixelData, bits, &bytes).good());
  ASSERT_GE(bytes * 8, seg->getNumberOfFrames() * info.rows * info.columns);

  FGInterface& groups = seg->getFunctionalGroups();
  std::map<size_t, int64_t> marked_per_segment;
  for (size_t f = 0; f < seg->getNumberOfFrames(); ++f) {
    SCOPED_TRACE(absl::StrCat("frame ", f));
    auto* position = OFstatic_cast(FGPlanePosPatient*, groups.get(f, DcmFGTypes::EFG_PLANEPOSPATIENT));
    auto* derivation = OFstatic_cast(FGDerivationImage*, groups.get(f, DcmFGTypes::EFG_DERIVATIONIMAGE));
    ASSERT_NE(position, nullptr);
    ASSERT_NE(derivation, nullptr);
    ASSERT_EQ(derivation->getDerivationImageItems().size(), 1u);
    ASSERT_EQ(derivation->getDerivationImageItems()[0]->getSourceImageItems().size(), 1u);
    OFString uid;
    derivation->getDerivationImageItems()[0]
        ->getSourceImageItems()[0]
        ->getImageSOPInstanceReference()
        .getReferencedSOPInstanceUID(uid);
    ASSERT_EQ(file_of_uid.count(uid.c_str()), 1u) << "the frame names an image not in the series: " << uid;
    const std::vector<double> expected = ParseDecimals(GetTag(file_of_uid[uid.c_str()], "ImagePositionPatient"));
    Float64 x = 0, y = 0, z = 0;
    position->getImagePositionPatient(x, y, z);
    ASSERT_EQ(expected.size(), 3u);
    EXPECT_NEAR(x, expected[0], kPositionToleranceMm);
    EXPECT_NEAR(y, expected[1], kPositionToleranceMm);
    EXPECT_NEAR(z, expected[2], kPositionToleranceMm);

    auto* identification = OFstatic_cast(FGSegmentation*, groups.get(f, DcmFGTypes::EFG_SEGMENTATION));
    ASSERT_NE(identification, nullptr);
    Uint16 segment = 0;
    identification->getReferencedSegmentNumber(segment);
    const int64_t pixels = info.rows * info.columns;
    for (int64_t bit = f * pixels; bit < (static_cast<int64_t>(f) + 1) * pixels; ++bit) {
      marked_per_segment[segment] += (bits[bit / 8] >> (bit % 8)) & 1;
    }
  }
  for (size_t s = 1; s <= segments; ++s) {
    EXPECT_EQ(marked_per_segment[s], written.classes.eq(static_cast<int64_t>(s)).sum().item<int64_t>())
        << "segment " << s;
  }
}

// Runs check_dicom_seg.py (pydicom); skips the test when /usr/bin/python3 has no pydicom.
void ExpectPydicomReadsBack(const WrittenSeg& written, const std::string& source_dir,
                            const std::vector<double>& thresholds) {
  const std::string log = written.path + ".check.log";
  std::vector<std::string> arguments;
  for (double t : thresholds) arguments.push_back(absl::StrCat(t));
  const std::string command =
      absl::StrCat("/usr/bin/python3 ", ShellQuote(SEGREL_CHECK_DICOM_SEG_SCRIPT), " ", ShellQuote(written.path), " ",
                   ShellQuote(source_dir), " ", absl::StrJoin(arguments, " "), " > ", ShellQuote(log), " 2>&1");
  const int result = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream output;
  output << in.rdbuf();
  if (WIFEXITED(result) && WEXITSTATUS(result) == 77) GTEST_SKIP() << "/usr/bin/python3 has no pydicom";
  EXPECT_TRUE(WIFEXITED(result) && WEXITSTATUS(result) == 0) << command << "\n" << output.str();
  EXPECT_NE(output.str().find("OK"), std::string::npos) << output.str();
}

TEST(DicomSeg, SyntheticSeriesReadsBackWithDcmtkAndPydicom) {
  SyntheticSeries synthetic;
  const std::string temp = TestTempDir();  // each call empties it: once per test
  const std::string dir = (fs::path(temp) / "series").string();
  WriteSyntheticSeries(synthetic, dir);
  // Values are 1000 * slice + 10 * row + column: both classes cover parts of some slices and none of others.
  const std::vector<double> thresholds = {1022, 2033};
  const std::vector<std::string> names = {"background", "lesion", "oedema"};
  const WrittenSeg written = WriteThresholdSeg(dir, thresholds, names, temp);
  ASSERT_FALSE(written.path.empty());
  ExpectDcmtkReadsBack(written, names);
  // The required patient and study attributes are the source's, verbatim.
  for (const char* tag : {"PatientName", "PatientID", "PatientBirthDate", "StudyDate", "AccessionNumber"}) {
    EXPECT_EQ(GetTag(written.path, tag), GetTag(written.series.info.files.front(), tag)) << tag;
  }
  EXPECT_EQ(GetTag(written.path, "Modality"), "SEG");
  ExpectPydicomReadsBack(written, dir, thresholds);
}

TEST(DicomSeg, ProstateXSeriesReadsBackWithDcmtkAndPydicom) {
  const std::string dir = ProstateXSeries("ProstateX-0218", 5);  // T2 tra, 384 x 384 x 19
  if (dir.empty()) GTEST_SKIP() << "../shared/data is absent";
  absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
  ASSERT_TRUE(series.ok()) << series.status();
  // Thresholds at the 90th and 99th percentiles of the intensities: two classes of very different size.
  const at::Tensor sorted = std::get<0>(series->volume.data.flatten().sort());
  const std::vector<double> thresholds = {sorted[sorted.numel() * 90 / 100].item<double>(),
                                          sorted[sorted.numel() * 99 / 100].item<double>()};
  const std::vector<std::string> names = {"background", "bright", "brightest"};
  const WrittenSeg written = WriteThresholdSeg(dir, thresholds, names, TestTempDir());
  ASSERT_FALSE(written.path.empty());
  ExpectDcmtkReadsBack(written, names);
  ExpectPydicomReadsBack(written, dir, thresholds);
}

class DicomSegErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    SyntheticSeries synthetic;
    const std::string temp = TestTempDir();
    const std::string dir = (fs::path(temp) / "series").string();
    WriteSyntheticSeries(synthetic, dir);
    absl::StatusOr<DicomSeries> series = ReadDicomSeries(dir);
    ASSERT_TRUE(series.ok()) << series.status();
    info_ = series->info;
    labels_ = at::zeros({info_.columns, info_.rows, info_.slices}, at::kByte);
    path_ = (fs::path(temp) / "seg.dcm").string();
  }

  DicomSeriesInfo info_;
  at::Tensor labels_;
  std::string path_;
};

TEST_F(DicomSegErrors, LabelsOnAnotherGrid) {
  const absl::Status status =
      WriteDicomSeg(path_, labels_.transpose(0, 1).contiguous(), {"background", "lesion"}, info_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find("synthetic t2"), absl::string_view::npos) << status;
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(DicomSegErrors, ValueThatIsNoClass) {
  labels_[1][2][3] = 2;
  const absl::Status status = WriteDicomSeg(path_, labels_, {"background", "lesion"}, info_);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  at::Tensor fractional = labels_.to(at::kFloat);
  fractional[0][0][0] = 0.5;
  EXPECT_EQ(WriteDicomSeg(path_, fractional, {"background", "lesion", "oedema"}, info_).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DicomSegErrors, OnlyBackground) {
  EXPECT_EQ(WriteDicomSeg(path_, labels_, {"background"}, info_).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DicomSegErrors, ReferenceWithoutFrameOfReference) {
  info_.frame_of_reference_uid.clear();
  EXPECT_EQ(WriteDicomSeg(path_, labels_, {"background", "lesion"}, info_).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace segrel::io
