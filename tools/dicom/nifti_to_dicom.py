#!/usr/bin/python3
"""Writes a NIfTI study as a DICOM study (MR Image Storage, one series per sequence, one file per slice), and
the same voxels as NIfTI again, so that segrel's NIfTI and DICOM paths can be compared on one study.

Usage: nifti_to_dicom.py --out DICOM_DIR [--nifti-out NIFTI_DIR] [SEQUENCE=FILE=SERIES_DESCRIPTION ...]
Without sequences it converts the bundled study, data/ms-lesjak/patient19, with the series descriptions and image
types that models/ms-flair4's series rules expect.

Geometry: the series' ImagePositionPatient, ImageOrientationPatient and PixelSpacing are chosen so that a DICOM
reader following dcm2niix (segrel's does) gives the NIfTI's affine back exactly. The NIfTI must be axis-aligned
(an affine that only flips and scales axes, as MNI-space studies are).

Values: DICOM stores integers, so each sequence is quantised to uint16 with RescaleSlope 2^-n (the largest that
covers the range) and an integer RescaleIntercept; every decoded value is then exact in float32. --nifti-out
writes those quantised values as float32 NIfTI with the original affine: the NIfTI study that the DICOM study
equals.

Patient identity: a pseudonym only (PatientName SEGREL^PATIENT19, PatientID ms-lesjak-19 for the bundled study);
no dates of birth, names of people or institutions. UIDs are derived from the study's files' names and the
pseudonym, so rerunning gives the same UIDs.

Needs python3-pydicom, python3-nibabel and python3-numpy (Debian 12).
"""
import argparse
import math
import os
import sys

import nibabel
import numpy
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATIENT19 = os.path.join(REPOSITORY, "data", "ms-lesjak", "patient19")
# The bundled study: descriptions as a Siemens scanner might name them; ms-flair4's series rules map them back.
PATIENT19_SERIES = [("T1", "t1_mprage_sag_iso"), ("T1POST", "t1_mprage_sag_iso_post_gd"),
                    ("T2", "t2_tse_tra"), ("FLAIR", "t2_flair_sag_iso")]


def quantise(voxels):
    """(stored uint16, slope, intercept): slope 2^-n, the finest whose 65536 steps cover the range."""
    low = math.floor(float(voxels.min()))
    span = float(voxels.max()) - low
    n = 0
    while span * 2 ** (n + 1) <= 65535 and n < 24:
        n += 1
    while span * 2 ** n > 65535:
        n -= 1
    slope = 2.0 ** -n
    stored = numpy.clip(numpy.round((voxels.astype(numpy.float64) - low) / slope), 0, 65535).astype(numpy.uint16)
    return stored, slope, low


def geometry(affine, shape):
    """ImageOrientationPatient, PixelSpacing, slice step and the LPS position of slice k's first pixel, for segrel's
    (dcm2niix's) voxel order: i = column, j = rows from the last to the first, k = slice."""
    rotation = affine[:3, :3]
    if numpy.count_nonzero(numpy.abs(rotation) > 1e-9) != 3 or numpy.count_nonzero(numpy.diag(rotation)) != 3:
        sys.exit("nifti_to_dicom.py: only axis-aligned NIfTI affines (diagonal) are supported")
    lps = numpy.diag([-1.0, -1.0, 1.0])
    # World (LPS) of voxel (i, j, k) = lps @ (affine @ [i, j, k, 1]).
    columns_direction = lps @ rotation[:, 0]  # moving along i = one column to the right
    rows_direction = -(lps @ rotation[:, 1])  # moving down one row = j decreases
    slice_direction = lps @ rotation[:, 2]
    column_spacing = numpy.linalg.norm(columns_direction)
    row_spacing = numpy.linalg.norm(rows_direction)
    orientation = list(columns_direction / column_spacing) + list(rows_direction / row_spacing)
    # Pixel (row 0, column 0) of slice k is voxel (0, J - 1, k).
    first = lps @ (affine @ numpy.array([0, shape[1] - 1, 0, 1.0]))[:3]
    positions = [first + k * slice_direction for k in range(shape[2])]
    if numpy.dot(numpy.cross(orientation[:3], orientation[3:]), slice_direction) <= 0:
        sys.exit("nifti_to_dicom.py: the slices must run along the row x column normal")
    return orientation, [row_spacing, column_spacing], float(numpy.linalg.norm(slice_direction)), positions


def clean(number):
    """A DS value without float noise."""
    return float(f"{number:.10g}") + 0.0


def write_series(out, number, name, description, image, patient, study_uid, frame_uid, nifti_out):
    voxels = numpy.asarray(image.dataobj, dtype=numpy.float32)
    if voxels.ndim != 3:
        sys.exit(f"nifti_to_dicom.py: {name} is not a 3-D volume")
    stored, slope, intercept = quantise(voxels)
    if nifti_out:
        decoded = (stored.astype(numpy.float64) * slope + intercept).astype(numpy.float32)
        os.makedirs(nifti_out, exist_ok=True)
        quantised = nibabel.Nifti1Image(decoded, image.affine)
        quantised.header.set_qform(image.affine, code=1)
        quantised.header.set_sform(image.affine, code=0)
        nibabel.save(quantised, os.path.join(nifti_out, f"{name}.nii.gz"))
    orientation, spacing, step, positions = geometry(image.affine, voxels.shape)
    series_uid = generate_uid(entropy_srcs=[patient["id"], "series", name])
    folder = os.path.join(out, f"{number:02d}_{name}")
    os.makedirs(folder, exist_ok=True)
    for k in range(voxels.shape[2]):
        instance_uid = generate_uid(entropy_srcs=[patient["id"], "instance", name, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = instance_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = os.path.join(folder, f"{k + 1:04d}.dcm")
        ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, instance_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = patient["name"], patient["id"], "", "O"
        ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study_uid, "1", ""
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "", "", ""
        ds.StudyDescription = patient["study"]
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = series_uid, number, description
        ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "MR", "segrel nifti_to_dicom.py", "BRAIN"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", "3D"
        ds.EchoTrainLength = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [clean(v) for v in positions[k]]
        ds.ImageOrientationPatient = [clean(v) for v in orientation]
        ds.PixelSpacing = [clean(v) for v in spacing]
        ds.SliceThickness = clean(step)
        ds.SpacingBetweenSlices = clean(step)
        ds.SliceLocation = clean(float(positions[k][2]))
        ds.Rows, ds.Columns = voxels.shape[1], voxels.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = clean(slope), clean(intercept), "US"
        # Row r of the image is j = J - 1 - r; column c is i = c.
        ds.PixelData = numpy.ascontiguousarray(stored[:, ::-1, k].T).tobytes()
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return voxels.shape[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the DICOM study's folder (created)")
    parser.add_argument("--nifti-out", help="also write the quantised voxels as NAME.nii.gz into this folder")
    parser.add_argument("--patient-name", default="SEGREL^PATIENT19")
    parser.add_argument("--patient-id", default="ms-lesjak-19")
    parser.add_argument("sequences", nargs="*", help="NAME=FILE=SERIES_DESCRIPTION (default: the bundled study)")
    args = parser.parse_args()
    sequences = []
    for entry in args.sequences:
        parts = entry.split("=", 2)
        if len(parts) != 3:
            sys.exit(f"nifti_to_dicom.py: {entry!r} is not NAME=FILE=SERIES_DESCRIPTION")
        sequences.append(tuple(parts))
    if not sequences:
        sequences = [(name, os.path.join(PATIENT19, f"{name}.nii.gz"), description)
                     for name, description in PATIENT19_SERIES]
    patient = {"name": args.patient_name, "id": args.patient_id, "study": "segrel demo study"}
    study_uid = generate_uid(entropy_srcs=[args.patient_id, "study"])
    frame_uid = generate_uid(entropy_srcs=[args.patient_id, "frame of reference"])
    images = [nibabel.load(path) for _, path, _ in sequences]
    for image, (name, path, _) in zip(images, sequences):
        if not numpy.allclose(image.affine, images[0].affine, atol=1e-6) or image.shape != images[0].shape:
            sys.exit(f"nifti_to_dicom.py: {path} is not on the grid of {sequences[0][1]}")
    files = 0
    for number, (image, (name, _, description)) in enumerate(zip(images, sequences), start=1):
        files += write_series(args.out, number, name, description, image, patient, study_uid, frame_uid,
                              args.nifti_out)
    print(f"{len(sequences)} series, {files} files in {args.out}; StudyInstanceUID {study_uid}")


if __name__ == "__main__":
    main()
