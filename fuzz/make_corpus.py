#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/{nifti,dicom}) with nibabel and pydicom.

Small valid files of the kinds segrel reads, and a few broken ones, so that libFuzzer starts from inputs that
reach deep into the readers. Run from the repository root: /usr/bin/python3 fuzz/make_corpus.py
The DICOM target reads one input as several files separated by SEPARATOR (fuzz/fuzz_entries.h).
"""
import gzip
import io
import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

SEPARATOR = b"#SEGREL-NEXT-FILE#"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def nifti_bytes(image):
    return image.to_bytes()


def write(kind, name, data):
    os.makedirs(os.path.join(ROOT, kind), exist_ok=True)
    with open(os.path.join(ROOT, kind, name), "wb") as f:
        f.write(data)


def nifti_corpus():
    affine = np.array([[-1.5, 0, 0, 10], [0, 1.2, 0, -20], [0, 0, 2.0, 5], [0, 0, 0, 1]])
    values = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2)
    write("nifti", "float32_sform.nii", nifti_bytes(nib.Nifti1Image(values, affine)))
    labels = nib.Nifti1Image((values % 3).astype(np.uint8), affine)
    write("nifti", "uint8.nii.gz", gzip.compress(nifti_bytes(labels), mtime=0))
    scaled = nib.Nifti1Image(values.astype(np.int16), affine)
    scaled.header.set_slope_inter(0.5, -3)
    scaled.set_sform(None, code=0)
    scaled.set_qform(affine, code=1)
    write("nifti", "int16_scaled_qform.nii", nifti_bytes(scaled))
    four_d = nib.Nifti1Image(np.arange(2 * 2 * 2 * 3, dtype=np.float64).reshape(2, 2, 2, 3), affine)
    write("nifti", "float64_4d.nii", nifti_bytes(four_d))
    write("nifti", "nifti2.nii", nifti_bytes(nib.Nifti2Image(values, affine)))
    plain = nib.Nifti1Image(values, affine)
    plain.set_sform(None, code=0)
    plain.set_qform(None, code=0)
    write("nifti", "no_transform.nii", nifti_bytes(plain))
    write("nifti", "truncated.nii", nifti_bytes(nib.Nifti1Image(values, affine))[:360])
    write("nifti", "not_nifti.txt", b"this is not a NIfTI file\n")


def mr_slice(series_uid, study_uid, frame_uid, k, position, orientation=(1, 0, 0, 0, 1, 0), rows=3, columns=4,
             bits=16, signed=False, slope=None, transfer_syntax=ExplicitVRLittleEndian):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset("slice", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = transfer_syntax == ImplicitVRLittleEndian
    ds.SOPClassUID = MR_IMAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.Modality = "MR"
    ds.SeriesNumber = 3
    ds.InstanceNumber = k + 1
    ds.SeriesDescription = "fuzz seed"
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [0.8, 0.9]
    ds.SliceThickness = 2.5
    ds.Rows = rows
    ds.Columns = columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits if bits == 8 else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = -7
    dtype = {(16, False): np.uint16, (16, True): np.int16, (8, False): np.uint8, (8, True): np.int8}[(bits, signed)]
    ds.PixelData = (np.arange(rows * columns) + 10 * k).astype(dtype).tobytes()
    out = io.BytesIO()
    ds.save_as(out, write_like_original=False)
    return out.getvalue()


def series(positions, **kwargs):
    series_uid = generate_uid(entropy_srcs=["series", str(positions), str(kwargs)])
    study_uid = generate_uid(entropy_srcs=["study"])
    frame_uid = generate_uid(entropy_srcs=["frame"])
    return [mr_slice(series_uid, study_uid, frame_uid, k, p, **kwargs) for k, p in enumerate(positions)]


def sr_object():
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = BASIC_TEXT_SR
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["sr"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("sr", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["sr series"])
    out = io.BytesIO()
    ds.save_as(out, write_like_original=False)
    return out.getvalue()


def dicom_corpus():
    stack = [(-10, -20, 30 + 2.5 * k) for k in range(3)]
    write("dicom", "three_slices.bin", SEPARATOR.join(series(stack)))
    write("dicom", "one_slice.bin", series(stack[:1])[0])
    write("dicom", "signed8_rescaled.bin", SEPARATOR.join(series(stack, bits=8, signed=True, slope=0.25)))
    write("dicom", "implicit_vr.bin", SEPARATOR.join(series(stack, transfer_syntax=ImplicitVRLittleEndian)))
    oblique = (0.8, 0.6, 0, -0.6, 0.8, 0)
    write("dicom", "oblique.bin", SEPARATOR.join(series(stack, orientation=oblique)))
    gap = [(-10, -20, 30), (-10, -20, 32.5), (-10, -20, 37.5)]
    write("dicom", "missing_slice.bin", SEPARATOR.join(series(gap)))
    write("dicom", "with_sr.bin", SEPARATOR.join(series(stack[:2]) + [sr_object()]))
    write("dicom", "truncated.bin", series(stack[:1])[0][:300])
    write("dicom", "not_dicom.txt", b"not a DICOM file\n")


if __name__ == "__main__":
    nifti_corpus()
    dicom_corpus()
