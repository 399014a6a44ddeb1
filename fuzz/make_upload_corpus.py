#!/usr/bin/python3
"""Writes the upload fuzz target's seed corpus (fuzz/corpus/upload) for FuzzUpload (fuzz/upload_entry.h).

Valid uploads of the test study (tests/fixtures/data/study) and of tiny fake files, and one seed for each way the
synthesised mode's plan bends an upload (gap, overlap, bad CRC-32, ...), so that libFuzzer starts from inputs that
reach every state of server/upload.cc. Raw-mode messages are encoded by protoc (--encode) from
proto/segrel/v1/segrel.proto, so the script needs no Python protobuf module. Run from anywhere:
  /usr/bin/python3 fuzz/make_upload_corpus.py
The constants below mirror fuzz/upload_entry.h.
"""
import gzip
import hashlib
import os
import subprocess
import zlib

SEPARATOR = b"#SEGREL-NEXT-MESSAGE#"
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(SOURCE, "fuzz", "corpus", "upload")
STUDY = os.path.join(SOURCE, "tests", "fixtures", "data", "study")

# The plan's first byte (kTweak*) and the high nibble of each further byte (UploadChunkOp).
HUGE_SIZE, LONGER_SIZE, UPPER_CASE_SHA, REFERENCE, REGION, REVERSED, OPTIONS, DICOM = (1 << n for n in range(8))
BAD_CRC, GAP, OVERLAP, OTHER_FILE, EMPTY_CHUNK, HUGE_OFFSET, DUPLICATE, METADATA_AGAIN = range(8, 16)


def op(operation, length_code=0):
    """One plan byte: `operation` on a chunk of at most 2^(length_code-1) bytes (0: the rest of the file)."""
    return bytes([operation << 4 | length_code])


def fake(name, size, gzipped=False):
    """Deterministic bytes standing for a NIfTI file: Upload looks only at the gzip magic, not inside."""
    body = bytes((i * 31 + len(name)) % 251 for i in range(size))
    return gzip.compress(body, mtime=0) if gzipped else body


def text_bytes(data):
    return '"' + "".join("\\%03o" % b for b in data) + '"'


def encode(text):
    """One SubmitRequest from protobuf text format, in the binary encoding."""
    return subprocess.run(
        ["protoc", "--proto_path=" + os.path.join(SOURCE, "proto"), "--encode=segrel.v1.SubmitRequest",
         "segrel/v1/segrel.proto"], input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


def upload_file(name, data, fmt="NIFTI", role="SEQUENCE", class_index=0, sha256=None, size=None):
    """One UploadFile in text format; sha256 and size default to those of `data`."""
    return 'files {{ name: "{}" format: {} role: {} class_index: {} size_bytes: {} sha256: "{}" }} '.format(
        name, fmt, role, class_index, len(data) if size is None else size,
        hashlib.sha256(data).hexdigest() if sha256 is None else sha256)


def metadata(files, job_id="fuzz-job", model="unet-bn-test", extra=""):
    """A metadata message; `files` are (name, data) pairs of NIfTI sequences or upload_file() texts."""
    entries = "".join(f if isinstance(f, str) else upload_file(*f) for f in files)
    return encode('metadata {{ job_id: "{}" model: "{}" {}{}}}'.format(job_id, model, entries, extra))


def chunk(file_index, offset, data, crc=None):
    crc = zlib.crc32(data) if crc is None else crc
    return encode("chunk {{ file_index: {} offset: {} data: {} crc32: {} }}".format(
        file_index, offset, text_bytes(data), crc))


def write(name, pieces):
    for piece in pieces:
        assert SEPARATOR not in piece, name
    data = SEPARATOR.join(pieces)
    assert 0 < len(data) < 20000, name
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def synthesised(name, t1, t2, flair, plan=None, extra=()):
    pieces = [b"", t1, t2, flair]
    if plan is not None or extra:
        pieces.append(plan or b"")
    write(name, pieces + list(extra))


def main():
    os.makedirs(OUT, exist_ok=True)
    study = [open(os.path.join(STUDY, s + ".nii.gz"), "rb").read() for s in ("T1", "T2", "FLAIR")]
    small = [fake("T1", 300, gzipped=True), fake("T2", 200), fake("FLAIR", 100)]

    # Complete uploads: whole files in 4 kB chunks; many small chunks; masks, options, upper-case SHA-256, reversed.
    synthesised("valid_study.bin", *study)
    synthesised("valid_small_chunks.bin", *small, plan=b"\0" + op(0, 5) + op(0, 7) + op(0, 1) + op(0, 0) + op(0, 3))
    synthesised("valid_masks_options_reversed.bin", *small,
                plan=bytes([REFERENCE | REGION | OPTIONS | REVERSED | UPPER_CASE_SHA]))
    synthesised("valid_empty_files.bin", b"", b"", small[2])

    # Broken chunks, one each, after a correct first chunk of 16 bytes.
    for name, operation in (("gap", GAP), ("overlap", OVERLAP), ("bad_crc", BAD_CRC), ("other_file", OTHER_FILE),
                            ("empty_chunk", EMPTY_CHUNK), ("huge_offset", HUGE_OFFSET), ("duplicate", DUPLICATE),
                            ("metadata_again", METADATA_AGAIN)):
        synthesised("chunk_{}.bin".format(name), *small, plan=b"\0" + op(0, 5) + op(operation, 5))
    synthesised("chunk_overlap_at_zero.bin", *small, plan=b"\0" + op(OVERLAP, 5))

    # Metadata the upload refuses or cannot complete.
    synthesised("size_2_pow_63.bin", *small, plan=bytes([HUGE_SIZE]))
    synthesised("size_declared_one_byte_more.bin", *small, plan=bytes([LONGER_SIZE]))
    synthesised("dicom_without_series_rules.bin", *small, plan=bytes([DICOM]))
    synthesised("chunk_after_complete.bin", *small, plan=b"\0", extra=[chunk(0, 0, b"late")])

    # Raw messages: metadata only; a complete upload; a chunk before the metadata; unknown model; invalid job id.
    files = list(zip(("T1", "T2", "FLAIR"), small))
    write("raw_metadata_only.bin", [metadata(files)])
    write("raw_valid.bin", [metadata(files)] + [chunk(i, 0, data) for i, (_, data) in enumerate(files)])
    write("raw_bad_crc.bin", [metadata(files), chunk(0, 0, small[0], crc=zlib.crc32(small[0]) ^ 0x80)])
    write("raw_chunk_first.bin", [chunk(0, 0, small[0]), metadata(files)])
    write("raw_unknown_model.bin", [metadata(files, model="no-such-model@9")])
    write("raw_invalid_job_id.bin", [metadata(files, job_id="../escape")])
    write("raw_unparsed_chunk.bin", [metadata(files), b"\xff\xff not a message"])

    # Raw metadata that each check of Start refuses, and a file whose last chunk is right but its SHA-256 is not.
    def refused(name, *added, base=files, extra=""):
        write("raw_refused_{}.bin".format(name), [metadata(list(base) + list(added), extra=extra)])

    reference, region = upload_file("ref", small[0], role="REFERENCE"), upload_file("reg", small[1], role="REGION")
    refused("two_references", reference, reference)
    refused("region_class_out_of_range", upload_file("reg", small[1], role="REGION", class_index=2))
    refused("region_twice", region, region)
    refused("mask_in_dicom", upload_file("ref", small[0], fmt="DICOM", role="REFERENCE"))
    refused("nifti_and_dicom", upload_file("dicom-0", small[0], fmt="DICOM"))
    refused("format_unspecified", upload_file("PD", small[0], fmt="FORMAT_UNSPECIFIED"))
    refused("name_with_slash", upload_file("../T1", small[0]))
    refused("sha256_not_hex", upload_file("T1", small[0], sha256="z" * 64), base=files[1:])
    refused("sequence_twice", ("T1", small[0]))
    refused("sequence_missing", base=files[:2])
    refused("sequence_unknown", ("PD", small[0]))
    refused("seventeen_files", *[upload_file("dicom-{}".format(n), small[2], fmt="DICOM") for n in range(17)], base=[])
    refused("study_over_limit", upload_file("ref", b"", role="REFERENCE", size=(1 << 20) - 500))
    refused("unknown_composite", extra='options { composite: "no-such-rule" }')
    refused("negative_deadline", extra="deadline_seconds: -1")
    refused("deadline_over_a_week", extra="deadline_seconds: 1e9")
    wrong_sha = [upload_file("T1", small[0], sha256=hashlib.sha256(b"other").hexdigest())] + files[1:]
    write("raw_sha256_mismatch.bin", [metadata(wrong_sha), chunk(0, 0, small[0][:100]), chunk(0, 100, small[0][100:])])


if __name__ == "__main__":
    main()
