#!/usr/bin/python3
"""segrel's DICOM node against a real PACS: Debian's Orthanc, started on free loopback ports with its own
configuration (Orthanc binds every interface; the test only ever talks to 127.0.0.1) and stopped by its PID. A
three-series MR study (written here with pydicom from the fixture volumes) is uploaded to Orthanc over its REST API
and pushed to segrel (POST /modalities/segrel/store); segrel's job for it must give what `segrel analyze --study`
gives on the same files, and its DICOM SEG (frames equal to segmentation.nii.gz) and structured report (values
equal to relevance.json's, read by tests/core/io/check_dicom_sr.py) must come back to Orthanc in the same study.
Also C-ECHO both ways: Orthanc to segrel, and segrel to its peers at start-up.

Usage (ctest runs it): pacs_test.py SEGREL_SERVER SEGREL PROTO_DIR FIXTURE_DIR WORK_DIR
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import segrel_harness as harness

SERVER, SEGREL, PROTO_DIR, FIXTURES, WORK = sys.argv[1:6]
del sys.argv[1:6]

ORTHANC = shutil.which("Orthanc")
if ORTHANC is None:
    print("pacs_test: skipped: Orthanc is not installed (Debian package orthanc, scripts/install-deps)")
    sys.exit(0)

import nibabel  # noqa: E402  (after the skip: only this test needs them)
import numpy  # noqa: E402
import pydicom  # noqa: E402
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CHECK_SR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "core", "io", "check_dicom_sr.py")
SERIES = {"FLAIR": (3, "ax flair"), "T1": (11, "t1_mprage_tra"), "T2": (7, "t2_tse_tra")}
# The test bundle (tests/fixtures/data/bundle) with series rules for the descriptions above.
RULES = {"sequences": [{"name": "T1", "conditions": {"SeriesDescription": "(?i)t1_mprage"}},
                       {"name": "T2", "conditions": {"SeriesDescription": "(?i)t2_tse"}},
                       {"name": "FLAIR", "conditions": {"SeriesDescription": "(?i)flair"}, "prefer": "last"}]}


def write_study(folder):
    """One DICOM file per slice, axial, 1.5 x 1.5 x 2 mm; values stored as uint16 with slope 1/1024, intercept -8.
    The patient module is the one tests/dicom_writer.cc writes, which the log privacy test searches for."""
    study_uid, frame_uid = generate_uid(), generate_uid()
    for name, (number, description) in SERIES.items():
        voxels = numpy.asarray(nibabel.load(harness.study_file(FIXTURES, name)).get_fdata())
        stored = numpy.clip(numpy.round((voxels + 8) * 1024), 0, 65535).astype(numpy.uint16)
        series_uid = generate_uid()
        os.makedirs(os.path.join(folder, str(number)), exist_ok=True)
        for k in range(stored.shape[2]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            path = os.path.join(folder, str(number), f"{k}.dcm")
            ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
            ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "SYNTHETIC^PATIENT", "SYNTH-0001", \
                "19700101", "O"
            ds.Modality, ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = "MR", number, description, k + 1
            ds.ImagePositionPatient = [-20, 10, 30 + 2 * k]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness = [1.5, 1.5], 2
            ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.RescaleSlope, ds.RescaleIntercept = 1 / 1024, -8
            ds.PixelData = numpy.ascontiguousarray(stored[:, :, k].T).tobytes()
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)
    return study_uid


class PacsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(dir=WORK)
        bundle_dir = os.path.join(cls.temp, "repository", "unet")
        os.makedirs(bundle_dir)
        with open(os.path.join(FIXTURES, "bundle", "segrel.json")) as f:
            bundle = json.load(f)
        bundle["model"] = os.path.join(FIXTURES, "unet_bn.pt")
        bundle["series_rules"] = RULES
        with open(os.path.join(bundle_dir, "segrel.json"), "w") as f:
            json.dump(bundle, f)
        cls.bundle = bundle_dir
        cls.study_dir = os.path.join(cls.temp, "study")
        cls.study_uid = write_study(cls.study_dir)
        cls.segrel_dicom_port = harness.free_port()
        cls.orthanc = harness.Orthanc(ORTHANC, cls.temp, cls.segrel_dicom_port)
        peers = os.path.join(cls.temp, "peers")
        with open(peers, "w") as f:
            f.write(f"ORTHANC 127.0.0.1 {cls.orthanc.dicom_port}\n")
            f.write(f"DOWN 127.0.0.1 {harness.free_port()}\n")  # nothing listens there
        cls.server = harness.ServerProcess(
            SERVER, os.path.join(cls.temp, "repository"), os.path.join(cls.temp, "spool"),
            f"--dicom-port={cls.segrel_dicom_port}", f"--dicom-peers={peers}", "--dicom-study-timeout=1s",
            grpc_module=grpc, stubs=pb_grpc)

    @classmethod
    def tearDownClass(cls):
        code, rest = cls.server.stop()
        cls.orthanc.stop()
        shutil.rmtree(cls.temp, ignore_errors=True)
        assert code == 0, rest

    def test_1_orthanc_and_segrel_echo_each_other(self):
        self.assertIn(f"DICOM on port {self.segrel_dicom_port}", self.server.start_lines[-1])
        self.orthanc.post("/modalities/segrel/echo", {})  # raises on a failed C-ECHO
        self.assertIsNotNone(self.server.wait_for_line(r"DICOM peer ORTHANC answered C-ECHO"), self.server.rest())
        # A peer that is down is named at start-up, with where its results stay.
        self.assertIsNotNone(self.server.wait_for_line(r"warning: DICOM peer DOWN \(127.0.0.1:\d+\) cannot be "
                                                       r"reached; results for it are kept and retried"),
                             self.server.rest())

    def test_2_a_study_pushed_from_orthanc_gives_what_segrel_analyze_gives(self):
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(self.study_dir) for f in names)
        study = None
        for path in files:
            with open(path, "rb") as f:
                study = self.orthanc.post("/instances", f.read())["ParentStudy"]
        self.orthanc.post("/modalities/segrel/store", {"Resources": [study], "Synchronous": True})

        job_id = f"dicom-{hashlib.sha256(self.study_uid.encode()).hexdigest()[:16]}-{len(files)}"
        served = os.path.join(self.temp, "served")
        for _ in range(400):  # the job exists once the study has been quiet for 1 s
            try:
                states, results = harness.watch(pb, self.server.stub, job_id, served)
                break
            except grpc.RpcError as error:
                self.assertEqual(error.code(), grpc.StatusCode.NOT_FOUND, error.details())
                time.sleep(0.05)
        else:
            self.fail(f"no job {job_id}")
        self.assertEqual(states[-1].state, pb.DONE, states[-1].message)

        cli = os.path.join(self.temp, "cli")
        run = subprocess.run([SEGREL, "analyze", "--model", self.bundle, "--study", self.study_dir, "--out", cli],
                             capture_output=True, text=True, timeout=600)
        self.assertEqual(run.returncode, 0, run.stderr)
        with open(os.path.join(served, "segmentation.nii.gz"), "rb") as a, \
                open(os.path.join(cli, "segmentation.nii.gz"), "rb") as b:
            self.assertEqual(a.read(), b.read(), "the segmentation through the PACS equals segrel analyze's")
        reports = []
        for folder in (served, cli):
            with open(os.path.join(folder, "relevance.json")) as f:
                report = json.load(f)
            report.pop("seconds")
            report.pop("threads", None)
            reports.append(report)
        self.assertEqual(reports[0], reports[1])
        self.assertIn("segmentation.dcm", results)

        # The DICOM SEG came back to Orthanc, filed with the study it segments.
        seg = None
        for _ in range(200):
            series = self.orthanc.get(f"/studies/{study}/series")
            seg = next((s for s in series if s["MainDicomTags"].get("Modality") == "SEG"), None)
            if seg:
                break
            time.sleep(0.05)
        self.assertIsNotNone(seg, "segrel sent its DICOM SEG back to the PACS")
        instance = self.orthanc.get(f"/series/{seg['ID']}/instances")[0]
        tags = self.orthanc.get(f"/instances/{instance['ID']}/simplified-tags")
        self.assertEqual(tags["StudyInstanceUID"], self.study_uid)
        self.assertEqual(tags["SOPClassUID"], "1.2.840.10008.5.1.4.1.1.66.4")  # Segmentation Storage
        for _ in range(100):  # the sender records the delivery once Orthanc has answered
            entry = next(e for e in self.server.stub.ListJobs(pb.ListJobsRequest()).jobs if e.status.job_id == job_id)
            if entry.delivery == "sent":
                break
            time.sleep(0.05)
        self.assertEqual(entry.delivery, "sent")
        self.assertEqual(entry.owner, "dicom:ORTHANC")
        self.check_seg_frames(self.orthanc.get_bytes(f"/instances/{instance['ID']}/file"), served)
        self.check_structured_report(study, served)

    def check_seg_frames(self, seg_bytes, served):
        """Every frame of the SEG Orthanc holds equals its slice of segmentation.nii.gz: segrel's voxel order is
        i = column, j = rows from the last, k = slice along the normal (here +z)."""
        seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(seg_bytes))
        labels = numpy.asarray(nibabel.load(os.path.join(served, "segmentation.nii.gz")).dataobj)
        frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
        self.assertEqual(len(frames), labels.shape[2])  # one segment (lesion), one frame per slice
        z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in seg.PerFrameFunctionalGroupsSequence]
        for frame, k in zip(frames, numpy.argsort(numpy.argsort(z))):
            expected = (labels[:, ::-1, k] == 1).T
            self.assertTrue(numpy.array_equal(frame.astype(bool), expected), f"frame of slice {k}")

    def check_structured_report(self, study, served):
        """The SR came back to the same study and holds relevance.json's relevance per sequence (pydicom)."""
        sr = None
        for _ in range(200):
            sr = next((s for s in self.orthanc.get(f"/studies/{study}/series")
                       if s["MainDicomTags"].get("Modality") == "SR"), None)
            if sr:
                break
            time.sleep(0.05)
        self.assertIsNotNone(sr, "segrel sent its structured report back to the PACS")
        self.assertEqual(sr["MainDicomTags"].get("SeriesDescription"), "segrel relevance report")
        instance = self.orthanc.get(f"/series/{sr['ID']}/instances")[0]
        path = os.path.join(self.temp, "report.dcm")
        with open(path, "wb") as f:
            f.write(self.orthanc.get_bytes(f"/instances/{instance['ID']}/file"))
        with open(os.path.join(served, "relevance.json")) as f:
            report = json.load(f)
        seg = pydicom.dcmread(os.path.join(served, "segmentation.dcm"), stop_before_pixels=True)
        series_of, evidence = {}, [seg.SOPInstanceUID]
        for folder, _, names in os.walk(self.study_dir):
            for name in names:
                ds = pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
                series_of[ds.SeriesDescription] = ds.SeriesInstanceUID
                evidence.append(ds.SOPInstanceUID)
        sequences = report["sequences"]
        groups = []
        for name, entry in [("lesion", report["classes"][1]), ("all classes", report)]:
            for sequence in sequences:
                groups.append({"tracking_id": name, "segments": [1],
                               "source_series": series_of[SERIES[sequence][1]],
                               "measurements": {f"RSHARE/{sequence}": entry["sequence_relevance"][sequence],
                                                f"RSUM/{sequence}": entry["sequence_relevance_raw"][sequence]}})
        expected = os.path.join(self.temp, "report.expected.json")
        with open(expected, "w") as f:
            json.dump({"study": self.study_uid, "seg_sop_instance": seg.SOPInstanceUID, "evidence": evidence,
                       "groups": groups, "partial": True}, f)
        run = subprocess.run(["/usr/bin/python3", CHECK_SR, path, expected], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
