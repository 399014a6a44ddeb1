#!/usr/bin/python3
"""The DICOM node against a real PACS (issue 11), two parts in one run:

throughput: Orthanc pushes one study (C-STORE, one association) to segrel-server's DICOM node and to DCMTK's own
  storescp, alternately; then DCMTK's dcmsend sends the same files to each; instances/s and MB/s, and the ratio
  (goal >= 0.8 x storescp). Both receivers write every instance to disk; segrel also syncs each one before
  answering (storescp does not), as it promises. storescp runs with TCP_NODELAY=1, as segrel-server sets it.
latency: the bundled study as DICOM (tools/dicom/nifti_to_dicom.py), from the start of Orthanc's push to segrel
  until the structured report is stored in Orthanc, beside `segrel analyze --study` on the same files (goal:
  overhead <= 10 %); the server's study timeout (--study-timeout, default the server's 5 s) is part of it.

Usage (from the repository root, after scripts/build): bench/pacs_bench.py [--parts throughput,latency]
    [--series 3] [--slices 100] [--size 256] [--repeats 5] [--study-timeout 5]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "server"))
import segrel_harness as harness  # noqa: E402

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def write_study(folder, series, slices, size):
    import numpy
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    study = generate_uid()
    rng = numpy.random.default_rng(1)
    for s in range(series):
        series_uid = generate_uid()
        for k in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            path = os.path.join(folder, f"{s}-{k}.dcm")
            ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series_uid
            ds.Modality, ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = "MR", s + 1, f"bench {s}", k + 1
            ds.Rows = ds.Columns = size
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = rng.integers(0, 4096, size * size, dtype=numpy.uint16).tobytes()
            ds.is_little_endian, ds.is_implicit_VR = True, False
            ds.save_as(path, write_like_original=False)


def report(sender, seconds, instances, megabytes, repeats):
    medians = {m: sorted(v)[len(v) // 2] for m, v in seconds.items()}
    print(f"DICOM receive, {sender} -> receiver, {instances} instances, {megabytes:.1f} MB, medians of {repeats} pushes:")
    for modality, median in medians.items():
        print(f"  {modality:9s} {median:6.2f} s  {instances / median:7.1f} instances/s  {megabytes / median:6.1f} MB/s"
              f"  (pushes {min(seconds[modality]):.2f} to {max(seconds[modality]):.2f} s)")
    print(f"  segrel / storescp throughput: {medians['storescp'] / medians['segrel']:.2f}")


def latency(temp, study_timeout):
    """Seconds from Orthanc's push of the bundled study to the SR stored in Orthanc, and of `segrel analyze`."""
    study_dir = os.path.join(temp, "bundled-study")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "dicom", "nifti_to_dicom.py"), "--out", study_dir],
                   check=True, stdout=subprocess.DEVNULL)
    files = sorted(os.path.join(d, f) for d, _, names in os.walk(study_dir) for f in names)
    segrel_port = harness.free_port()
    folder = os.path.join(temp, "latency")
    os.makedirs(folder)
    orthanc = harness.Orthanc(shutil.which("Orthanc"), folder, segrel_port)
    peers = os.path.join(folder, "peers")
    with open(peers, "w") as f:
        f.write(f"ORTHANC 127.0.0.1 {orthanc.dicom_port}\n")
    server = harness.ServerProcess(os.path.join(ROOT, "build", "server", "segrel-server"), os.path.join(ROOT, "models"),
                                   os.path.join(folder, "spool"), f"--dicom-port={segrel_port}",
                                   f"--dicom-peers={peers}", f"--dicom-study-timeout={study_timeout:g}s",
                                   "--audit-log=", "--workers=1")
    try:
        study = None
        for path in files:
            with open(path, "rb") as f:
                study = orthanc.post("/instances", f.read())["ParentStudy"]
        start = time.monotonic()
        orthanc.post("/modalities/segrel/store", {"Resources": [study], "Synchronous": True})
        pushed = time.monotonic() - start
        stored = None
        while time.monotonic() - start < 1800:
            modalities = {s["MainDicomTags"].get("Modality") for s in orthanc.get(f"/studies/{study}/series")}
            if "SR" in modalities:
                stored = time.monotonic() - start
                break
            time.sleep(0.1)
    finally:
        server.stop()
        orthanc.stop()
    if stored is None:
        raise RuntimeError(f"no structured report reached Orthanc: {server.rest()}")
    start = time.monotonic()
    subprocess.run([os.path.join(ROOT, "build", "tools", "segrel"), "analyze", "--model",
                    os.path.join(ROOT, "models", "ms-flair4"), "--study", study_dir, "--out",
                    os.path.join(temp, "analyze")], check=True, stdout=subprocess.DEVNULL)
    analyzed = time.monotonic() - start
    print(f"PACS to PACS, the bundled study ({len(files)} instances), study timeout {study_timeout} s:")
    print(f"  Orthanc push (C-STORE to segrel)      {pushed:7.2f} s")
    print(f"  push start -> SR stored in Orthanc    {stored:7.2f} s")
    print(f"  segrel analyze --study (same files)   {analyzed:7.2f} s")
    print(f"  overhead: {stored / analyzed - 1:+.1%}  (without the study timeout: "
          f"{(stored - study_timeout) / analyzed - 1:+.1%})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="throughput,latency")
    parser.add_argument("--series", type=int, default=3)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--study-timeout", type=float, default=5)
    args = parser.parse_args()
    temp = tempfile.mkdtemp(prefix="pacs_bench.")
    processes = []
    try:
        if "latency" in args.parts.split(","):
            latency(temp, args.study_timeout)
        if "throughput" not in args.parts.split(","):
            return
        study_dir = os.path.join(temp, "study")
        os.makedirs(study_dir)
        write_study(study_dir, args.series, args.slices, args.size)
        files = sorted(os.listdir(study_dir))
        megabytes = sum(os.path.getsize(os.path.join(study_dir, f)) for f in files) / 1e6

        segrel_port, storescp_port = harness.free_port(), harness.free_port()
        orthanc = harness.Orthanc(shutil.which("Orthanc"), temp, segrel_port,
                                  {"storescp": ["STORESCP", "127.0.0.1", storescp_port]})
        peers = os.path.join(temp, "peers")
        with open(peers, "w") as f:
            f.write(f"ORTHANC 127.0.0.1 {orthanc.dicom_port}\n")
        empty_repository = os.path.join(temp, "repository")
        os.makedirs(empty_repository)
        server = harness.ServerProcess(os.path.join(ROOT, "build", "server", "segrel-server"), empty_repository,
                                       os.path.join(temp, "spool"), f"--dicom-port={segrel_port}",
                                       f"--dicom-peers={peers}", "--dicom-study-timeout=1h", "--audit-log=")
        storescp_dir = os.path.join(temp, "storescp")
        os.makedirs(storescp_dir)
        storescp = subprocess.Popen(["storescp", "--aetitle", "STORESCP", "--output-directory", storescp_dir,
                                     str(storescp_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "TCP_NODELAY": "1"})
        processes.append(storescp)
        time.sleep(0.5)

        def clear(modality):  # each push stores the whole study anew: remove what the last one left
            if modality == "segrel":
                shutil.rmtree(os.path.join(temp, "spool", "dicom-incoming"), ignore_errors=True)
                os.makedirs(os.path.join(temp, "spool", "dicom-incoming", ".partial"))
            else:
                shutil.rmtree(storescp_dir, ignore_errors=True)
                os.makedirs(storescp_dir)

        study = None
        for name in files:
            with open(os.path.join(study_dir, name), "rb") as f:
                study = orthanc.post("/instances", f.read())["ParentStudy"]
        seconds = {"segrel": [], "storescp": []}
        for _ in range(args.repeats):
            for modality in ("segrel", "storescp"):
                start = time.monotonic()
                orthanc.post(f"/modalities/{modality}/store", {"Resources": [study], "Synchronous": True})
                seconds[modality].append(time.monotonic() - start)
                clear(modality)
        report("Orthanc", seconds, len(files), megabytes, args.repeats)

        # The same files sent by DCMTK's dcmsend (one association), which sends faster than Orthanc does.
        paths = [os.path.join(study_dir, name) for name in files]
        seconds = {"segrel": [], "storescp": []}
        for _ in range(args.repeats):
            for modality, port, called in (("segrel", segrel_port, "SEGREL"), ("storescp", storescp_port, "STORESCP")):
                start = time.monotonic()
                subprocess.run(["dcmsend", "--aetitle", "ORTHANC", "--call", called, "127.0.0.1", str(port), *paths],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds[modality].append(time.monotonic() - start)
                clear(modality)
        report("dcmsend", seconds, len(files), megabytes, args.repeats)
        server.stop()
        orthanc.stop()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
