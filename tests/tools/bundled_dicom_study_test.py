#!/usr/bin/python3
"""The bundled study as DICOM (tools/dicom/nifti_to_dicom.py) through `segrel analyze --study` with the bundled
model's series rules, on one 128-cube window of it (the brain's centre, lesions included: one window instead of the
whole study's twelve keeps the test to a minute; sliding windows are tested on NIfTI): the same segmentation, affine and relevance (1e-6) as the same quantised voxels read from
NIfTI, and a SEG and structured report whose values are relevance.json's (read back with pydicom by
tests/core/io/check_dicom_sr.py), which dciodvfy (dicom3tools) finds no errors in.

Usage: bundled_dicom_study_test.py SEGREL_BINARY. Skips (exit 77 for ctest) without pydicom or nibabel.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import nibabel
    import numpy
    import pydicom
except ImportError as missing:
    print(f"skipped: {missing}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
CONVERTER = os.path.join(REPOSITORY, "tools", "dicom", "nifti_to_dicom.py")
sys.path.insert(0, os.path.dirname(CONVERTER))
from nifti_to_dicom import PATIENT19, PATIENT19_SERIES  # noqa: E402  the bundled study's series descriptions
CHECK_SR = os.path.join(REPOSITORY, "tests", "core", "io", "check_dicom_sr.py")
BUNDLE = os.path.join(REPOSITORY, "models", "ms-flair4")
SEGREL = sys.argv.pop(1) if len(sys.argv) > 1 else "build/tools/segrel"
SEQUENCES = ["T1", "T1POST", "T2", "FLAIR"]
WINDOW = (slice(27, 155), slice(45, 173), slice(27, 155))  # of patient 19's 182 x 218 x 182 voxels
RELATIVE = 1e-6


def analyze(study, out):
    run = subprocess.run([SEGREL, "analyze", "--model", BUNDLE, "--study", study, "--out", out],
                         capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise AssertionError(f"segrel analyze --study {study}: {run.stderr}")
    with open(os.path.join(out, "relevance.json")) as f:
        return json.load(f), run.stdout


class BundledDicomStudyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(prefix="segrel-dicom-study-")
        cls.dicom = os.path.join(cls.temp, "dicom")
        cls.nifti = os.path.join(cls.temp, "nifti")
        cls.window = os.path.join(cls.temp, "window")
        os.makedirs(cls.window)
        sequences = []
        for name, description in PATIENT19_SERIES:
            path = os.path.join(cls.window, f"{name}.nii.gz")
            nibabel.save(nibabel.load(os.path.join(PATIENT19, f"{name}.nii.gz")).slicer[WINDOW], path)
            sequences.append(f"{name}={path}={description}")
        subprocess.run(["/usr/bin/python3", CONVERTER, "--out", cls.dicom, "--nifti-out", cls.nifti, *sequences],
                       check=True, capture_output=True, timeout=300)
        cls.from_dicom, cls.dicom_stdout = analyze(cls.dicom, os.path.join(cls.temp, "from-dicom"))
        cls.from_nifti, _ = analyze(cls.nifti, os.path.join(cls.temp, "from-nifti"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.temp, ignore_errors=True)

    def out(self, name, source="from-dicom"):
        return os.path.join(self.temp, source, name)

    def test_the_series_rules_map_every_sequence(self):
        for sequence, series in zip(SEQUENCES, ["t1_mprage_sag_iso", "post_gd", "t2_tse_tra", "t2_flair"]):
            self.assertRegex(self.dicom_stdout, rf"{sequence} <- series \d+ [^\n]*{series}")

    def test_segmentation_and_affine_equal_the_nifti_studys(self):
        a = nibabel.load(self.out("segmentation.nii.gz"))
        b = nibabel.load(self.out("segmentation.nii.gz", "from-nifti"))
        original = nibabel.load(os.path.join(self.window, "FLAIR.nii.gz"))
        numpy.testing.assert_allclose(a.affine, original.affine, atol=1e-6)
        numpy.testing.assert_allclose(b.affine, original.affine, atol=1e-6)
        self.assertTrue(numpy.array_equal(numpy.asarray(a.dataobj), numpy.asarray(b.dataobj)))
        self.assertGreater(self.from_dicom["classes"][1]["predicted_voxels"], 500, "the window holds lesions")

    def test_relevance_equals_the_nifti_studys(self):
        pairs = [(self.from_dicom, self.from_nifti, "combined")]
        pairs += [(a, b, f"class {a['index']}") for a, b in zip(self.from_dicom["classes"], self.from_nifti["classes"])]
        for a, b, what in pairs:
            for key in ("sequence_relevance", "sequence_relevance_raw"):
                for sequence in SEQUENCES:
                    x, y = a[key][sequence], b[key][sequence]
                    self.assertLessEqual(abs(x - y), RELATIVE * max(abs(y), 1e-12), f"{what} {key} {sequence}")
        for a, b in zip(self.from_dicom["classes"], self.from_nifti["classes"]):
            self.assertEqual(a["predicted_voxels"], b["predicted_voxels"])
            self.assertEqual(a["region_voxels"], b["region_voxels"])

    def expected_report(self):
        """What the SR must hold, from relevance.json and the DICOM files (not from segrel's SR writer)."""
        series_of = {}
        evidence = []
        for path in glob.glob(os.path.join(self.dicom, "*", "*.dcm")):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            series_of[os.path.basename(os.path.dirname(path)).split("_", 1)[1]] = ds.SeriesInstanceUID
            evidence.append(ds.SOPInstanceUID)
            study = ds.StudyInstanceUID
        seg = pydicom.dcmread(self.out("segmentation.dcm"), stop_before_pixels=True)
        evidence.append(seg.SOPInstanceUID)
        report = self.from_dicom
        lesion = report["classes"][1]
        groups = []
        for name, segments, entry, voxels in [("lesion", [1], lesion, lesion["predicted_voxels"]),
                                              ("all classes", [1], report, lesion["predicted_voxels"])]:
            for sequence in SEQUENCES:
                measurements = {f"RSHARE/{sequence}": entry["sequence_relevance"][sequence],
                                f"RSUM/{sequence}": entry["sequence_relevance_raw"][sequence],
                                "VOXELS": voxels, "118565006": float(voxels)}  # 1 mm voxels
                groups.append({"tracking_id": name, "segments": segments, "source_series": series_of[sequence],
                               "measurements": measurements})
        return {"study": study, "seg_sop_instance": seg.SOPInstanceUID, "evidence": evidence, "groups": groups,
                "partial": True}

    def test_the_structured_report_holds_relevance_json_values(self):
        expected = os.path.join(self.temp, "expected.json")
        with open(expected, "w") as f:
            json.dump(self.expected_report(), f)
        run = subprocess.run(["/usr/bin/python3", CHECK_SR, self.out("relevance_report.dcm"), expected],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_dciodvfy_finds_no_errors(self):
        if shutil.which("dciodvfy") is None:
            self.skipTest("dciodvfy (Debian dicom3tools) is not installed")
        for name in ("segmentation.dcm", "relevance_report.dcm"):
            run = subprocess.run(["dciodvfy", self.out(name)], capture_output=True, text=True, timeout=120)
            output = run.stdout + run.stderr
            print(f"dciodvfy {name}:\n{output}")
            self.assertNotIn("Error", output, name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
