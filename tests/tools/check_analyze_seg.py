#!/usr/bin/python3
"""Checks the DICOM SEG `segrel analyze` wrote for a DICOM study against its segmentation.nii.gz, with pydicom and
nibabel only (no segrel code).

    check_analyze_seg.py SEG_FILE SEGMENTATION_NII SOURCE_DIR

SOURCE_DIR holds the reference series' images. Slices are ordered along the normal of ImageOrientationPatient
(k), and a frame pixel (row r, column c) is voxel (i = c, j = rows - 1 - r, k) of the NIfTI segmentation, the voxel
order dcm2niix writes. Every frame of segment s must equal (segmentation == s) on the slice at its plane position,
and each segment must have a frame for every slice. Exit status 0 when all holds, 1 with a message when not, 77
without pydicom or nibabel.
"""
import os
import sys

try:
    import nibabel as nib
    import numpy as np
    import pydicom
except ImportError:
    sys.exit(77)


def fail(message):
    print("check_analyze_seg: " + message)
    sys.exit(1)


def main():
    seg_path, nifti_path, source_dir = sys.argv[1:4]
    seg = pydicom.dcmread(seg_path)
    labels = np.asarray(nib.load(nifti_path).dataobj).astype(np.int64)
    sources = []
    for name in sorted(os.listdir(source_dir)):
        ds = pydicom.dcmread(os.path.join(source_dir, name))
        if "PixelData" in ds:
            sources.append(ds)
    orientation = np.array([float(v) for v in sources[0].ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    positions = [np.array([float(v) for v in ds.ImagePositionPatient]) for ds in sources]
    order = np.argsort([p @ normal for p in positions])
    slice_of = {tuple(np.round(positions[n], 4)): k for k, n in enumerate(order)}
    rows, columns = int(sources[0].Rows), int(sources[0].Columns)
    if labels.shape != (columns, rows, len(sources)):
        fail("segmentation shape %s, reference series %d x %d x %d" % (labels.shape, columns, rows, len(sources)))

    frames = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    covered = {}
    for f, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        position = tuple(np.round([float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient], 4))
        if position not in slice_of:
            fail("frame %d at %s: no source slice there" % (f, position))
        k = slice_of[position]
        expected = (labels[:, ::-1, k] == segment).T  # [row, column]
        if not np.array_equal(frames[f].astype(bool), expected):
            fail("frame %d (segment %d, slice %d) differs from the segmentation in %d pixels"
                 % (f, segment, k, int((frames[f].astype(bool) != expected).sum())))
        covered.setdefault(segment, set()).add(k)
    for segment in range(1, int(labels.max()) + 1):
        if covered.get(segment) != set(range(len(sources))):
            fail("segment %d does not have a frame for every slice" % segment)
    print("check_analyze_seg: %d frames agree with the segmentation" % len(frames))


if __name__ == "__main__":
    main()
