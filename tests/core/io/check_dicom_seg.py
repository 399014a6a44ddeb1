#!/usr/bin/python3
"""Checks a DICOM SEG written by segrel against its source images, with pydicom only (no segrel code).

    check_dicom_seg.py SEG_FILE SOURCE_DIR T1 [T2 ...]

The expected segmentation is defined on the source images themselves: a pixel's class is the number of thresholds
T1 < T2 < ... its modality value (stored value x RescaleSlope + RescaleIntercept) exceeds. For every frame the
script takes the plane position from the SEG's per-frame functional groups, finds the source image at that
position (ImagePositionPatient within 1e-4 mm), checks that the frame's source image reference names that image,
and compares the frame's pixels with the expected mask of its segment exactly. It also checks that each segment
has one frame per source image, the SEG's study, frame of reference and series references, and that the patient
attributes equal the source's. Exit status: 0 when all holds, 1 (with a message) when not, 77 without pydicom.
"""
import os
import sys

try:
    import numpy as np
    import pydicom
    from pydicom.pixel_data_handlers.util import apply_modality_lut
except ImportError:
    sys.exit(77)

POSITION_TOLERANCE_MM = 1e-4
COPIED = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
          "AccessionNumber", "ReferringPhysicianName"]


def fail(message):
    print("check_dicom_seg: " + message)
    sys.exit(1)


def read_sources(folder):
    sources = []
    for name in sorted(os.listdir(folder)):
        ds = pydicom.dcmread(os.path.join(folder, name))
        if "PixelData" in ds:
            sources.append(ds)
    return sources


def main():
    seg_path, source_dir = sys.argv[1], sys.argv[2]
    thresholds = sorted(float(t) for t in sys.argv[3:])
    seg = pydicom.dcmread(seg_path)
    sources = read_sources(source_dir)
    first = sources[0]
    if seg.SOPClassUID != "1.2.840.10008.5.1.4.1.1.66.4" or seg.SegmentationType != "BINARY":
        fail("not a binary segmentation: %s %s" % (seg.SOPClassUID, seg.SegmentationType))
    for keyword in ["StudyInstanceUID", "FrameOfReferenceUID"] + COPIED:
        if str(seg.get(keyword, "")) != str(first.get(keyword, "")):
            fail("%s differs from the source's" % keyword)
    if seg.SeriesInstanceUID == first.SeriesInstanceUID:
        fail("the SEG must be a series of its own")
    referenced = seg.ReferencedSeriesSequence
    if len(referenced) != 1 or referenced[0].SeriesInstanceUID != first.SeriesInstanceUID:
        fail("ReferencedSeriesSequence does not name the source series")
    referenced_uids = {item.ReferencedSOPInstanceUID for item in referenced[0].ReferencedInstanceSequence}
    if referenced_uids != {ds.SOPInstanceUID for ds in sources}:
        fail("ReferencedInstanceSequence does not list exactly the source images")

    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    segments = len(seg.SegmentSequence)
    if segments != len(thresholds):
        fail("%d segments, %d expected" % (segments, len(thresholds)))
    seen = set()
    for f, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        position = np.array([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient])
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        at_position = [ds for ds in sources
                       if np.abs(np.array([float(v) for v in ds.ImagePositionPatient]) - position).max()
                       <= POSITION_TOLERANCE_MM]
        if len(at_position) != 1:
            fail("frame %d at %s: %d source images there" % (f, position, len(at_position)))
        source = at_position[0]
        named = group.DerivationImageSequence[0].SourceImageSequence[0]
        if named.ReferencedSOPInstanceUID != source.SOPInstanceUID or named.ReferencedSOPClassUID != source.SOPClassUID:
            fail("frame %d names another source image than the one at its position" % f)
        values = apply_modality_lut(source.pixel_array, source).astype(np.float64)
        classes = np.zeros(values.shape, dtype=np.int64)
        for t in thresholds:
            classes += values > t
        expected = (classes == segment).astype(np.uint8)
        if not np.array_equal(frames[f].astype(np.uint8), expected):
            fail("frame %d (segment %d, source %s): %d pixels differ" %
                 (f, segment, source.InstanceNumber, int((frames[f] != expected).sum())))
        if (segment, source.SOPInstanceUID) in seen:
            fail("segment %d has two frames for one source image" % segment)
        seen.add((segment, source.SOPInstanceUID))
    if len(seen) != segments * len(sources):
        fail("%d frames, %d expected (one per segment and source image)" % (len(seen), segments * len(sources)))
    marked = int(frames.sum())
    print("check_dicom_seg: OK, %d frames, %d segments, %d marked pixels" % (len(seen), segments, marked))


if __name__ == "__main__":
    main()
