#!/usr/bin/python3
"""Fault tests: the real segrel-server as a child process, killed with SIGKILL while a job runs, jobs wait in the
queue and an upload is half-way; restarted on the same spool, every accepted job completes, Watch returns its
results, the interrupted upload is gone and can be submitted again, nothing is duplicated. Also SIGTERM with an
upload in flight, a spool on a small tmpfs that an upload fills, and a gRPC port that stopped accepting
connections after the server ran out of file descriptors.

Usage (ctest runs it): fault_test.py SEGREL_SERVER PROTO_DIR FIXTURE_DIR WORK_DIR
"""
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import segrel_harness as harness

SERVER, PROTO_DIR, FIXTURES, WORK = sys.argv[1:5]
del sys.argv[1:5]

grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)

# Ablation and per-lesion analysis make the job take seconds, so it is still running when the test kills the server.
SLOW = pb.AnalysisOptions(seed=5, maps=True, lesions=True, ablation=True, no_pictures=True)


class StalledUpload:
    """A Submit that sends the metadata and a few chunks, then waits until released (or the server goes)."""

    def __init__(self, stub, job_id, stall_at=3):
        self.reached, self.release = threading.Event(), threading.Event()
        self.error = None

        def before_chunk(n):
            if n == stall_at:
                self.reached.set()
                self.release.wait(timeout=60)

        def run():
            try:
                stub.Submit(harness.submit_messages(pb, FIXTURES, job_id, options=SLOW, before_chunk=before_chunk))
            except grpc.RpcError as error:
                self.error = error

        self.thread = threading.Thread(target=run)
        self.thread.start()
        if not self.reached.wait(timeout=60):
            raise RuntimeError("the upload did not start")

    def end(self):
        self.release.set()
        self.thread.join(timeout=60)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def report_of(files):
    report = json.loads(bytes(files["relevance.json"]))
    report.pop("seconds")
    report.pop("threads")
    return report


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.temp = tempfile.mkdtemp(dir=WORK)
        self.spool = os.path.join(self.temp, "spool")
        self.servers = []
        self.mounts = []

    def tearDown(self):
        for server in self.servers:
            if server.process.poll() is None:
                server.kill()
        for mount in self.mounts:
            subprocess.run(["umount", mount], check=False)
        shutil.rmtree(self.temp, ignore_errors=True)

    def start(self, *flags, preexec_fn=None):
        server = harness.ServerProcess(SERVER, FIXTURES, self.spool, *flags, grpc_module=grpc, stubs=pb_grpc,
                                       preexec_fn=preexec_fn)
        self.servers.append(server)
        return server

    def wait_until_running(self, stub, job_id):
        for message in stub.Watch(pb.WatchRequest(job_id=job_id)):
            if message.HasField("status") and message.status.state == pb.RUNNING:
                return
        self.fail(f"{job_id} ended before it was seen running")

    def test_kill_9_loses_no_accepted_job(self):
        server = self.start()
        server.stub.Submit(harness.submit_messages(pb, FIXTURES, "running", options=SLOW))
        for job_id in ("queued-1", "queued-2"):
            server.stub.Submit(harness.submit_messages(pb, FIXTURES, job_id, options=SLOW))
        self.wait_until_running(server.stub, "running")
        upload = StalledUpload(server.stub, "interrupted")
        for _ in range(200):  # until the server has read the metadata and made the upload's folder
            if len(os.listdir(self.spool)) == 4:
                break
            time.sleep(0.05)
        self.assertEqual(len(os.listdir(self.spool)), 4)
        server.kill()
        upload.end()
        self.assertIsNotNone(upload.error, "the upload cannot have succeeded")

        server = self.start()
        start = "".join(server.start_lines)
        self.assertIn("recovered the spool: 3 jobs queued again, 0 ended jobs kept", start)
        # The interrupted upload leaves nothing: its folder is removed (the start line says so when the upload had
        # reached its folder before the kill).
        self.assertEqual(len(os.listdir(self.spool)), 3, start)
        with self.assertRaises(grpc.RpcError) as error:
            list(server.stub.Watch(pb.WatchRequest(job_id="interrupted")))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        again = server.stub.Submit(harness.submit_messages(pb, FIXTURES, "queued-1", options=SLOW))
        self.assertTrue(again.already_submitted, "the recovered job answers its resubmission")
        self.assertFalse(server.stub.Submit(
            harness.submit_messages(pb, FIXTURES, "interrupted", options=SLOW)).already_submitted)

        reports = {}
        for job_id in ("running", "queued-1", "queued-2", "interrupted"):
            states, files = harness.watch(pb, server.stub, job_id, os.path.join(self.temp, job_id))
            self.assertEqual(states[-1].state, pb.DONE, f"{job_id}: {states[-1].message}")
            self.assertEqual(sorted(files), sorted(states[-1].results))
            reports[job_id] = report_of(files)
        for job_id, report in reports.items():  # the re-run job's results are whole and the same as the others'
            self.assertEqual(report, reports["interrupted"], job_id)
        self.assertEqual(len(os.listdir(self.spool)), 4, "one folder per job, none twice")

        for job_id in reports:
            server.stub.Delete(pb.DeleteRequest(job_id=job_id))
        self.assertEqual(os.listdir(self.spool), [], "Delete leaves nothing of the jobs")
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_sigterm_with_an_upload_in_flight_stops_and_leaves_no_upload(self):
        server = self.start("--shutdown-grace=2s")
        upload = StalledUpload(server.stub, "in-flight")
        server.process.send_signal(signal.SIGTERM)
        code = server.wait()
        upload.end()
        self.assertEqual(code, 0, server.rest())
        self.assertIsNotNone(upload.error)
        self.assertIn(upload.error.code(), (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED))
        self.assertEqual(os.listdir(self.spool), [], "the unfinished upload's files are gone")

        server = self.start()
        self.assertNotIn("recovered", "".join(server.start_lines))
        with self.assertRaises(grpc.RpcError) as error:
            list(server.stub.Watch(pb.WatchRequest(job_id="in-flight")))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_a_port_that_stopped_accepting_stops_the_server_and_the_restart_runs_its_jobs(self):
        # 64 descriptors in all (hard limit: the server cannot raise it); a flood of idle connections uses them up,
        # gRPC's listener fails accept4 with EMFILE and never accepts again, even once the flood has gone.
        server = self.start("--listener-watchdog=2s",
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
        jobs = ["accepted-1", "accepted-2", "accepted-3"]  # queued, running or done when the server stops
        for job_id in jobs:
            server.stub.Submit(harness.submit_messages(pb, FIXTURES, job_id, options=SLOW))
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(100)]
        time.sleep(1)
        for connection in flood:
            connection.close()
        code = server.wait(timeout=60)
        self.assertEqual(code, 3, server.rest())
        self.assertIn(f"the gRPC port {server.port} stopped accepting connections", server.rest())

        # Restarted by its supervisor (here: the test) on the same spool, the server runs the accepted job.
        server = self.start()
        recovered = re.search(r"recovered the spool: (\d+) jobs queued again, (\d+) ended", "".join(server.start_lines))
        self.assertIsNotNone(recovered, server.start_lines)
        self.assertEqual(int(recovered.group(1)) + int(recovered.group(2)), len(jobs), server.start_lines)
        for job_id in jobs:
            states, _ = harness.watch(pb, server.stub, job_id, os.path.join(self.temp, job_id))
            self.assertEqual(states[-1].state, pb.DONE, f"{job_id}: {states[-1].message}")
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_a_spool_on_a_full_tmpfs_refuses_the_upload_whole_and_keeps_serving(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root (CI runs as root)")
        spool = os.path.join(self.temp, "tmpfs")
        os.makedirs(spool)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", spool],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        self.mounts.append(spool)
        # No watermark: the upload itself runs into the full disk, half-way through its 6 MiB.
        self.spool = spool
        server = self.start("--min-free-mb=0")
        big = os.urandom(6 << 20)
        metadata = pb.JobMetadata(job_id="too-big", model=harness.MODEL, options=pb.AnalysisOptions(no_pictures=True))
        blobs = [big] + [read(harness.study_file(FIXTURES, name)) for name in harness.SEQUENCES[1:]]
        for name, data in zip(harness.SEQUENCES, blobs):
            metadata.files.add(role=pb.SEQUENCE, name=name, format=pb.NIFTI, size_bytes=len(data),
                               sha256=hashlib.sha256(data).hexdigest())

        def messages():
            yield pb.SubmitRequest(metadata=metadata)
            for index, data in enumerate(blobs):
                for offset in range(0, len(data), 1 << 20):
                    piece = data[offset:offset + (1 << 20)]
                    yield pb.SubmitRequest(chunk=pb.Chunk(file_index=index, offset=offset, data=piece,
                                                          crc32=zlib.crc32(piece)))

        with self.assertRaises(grpc.RpcError) as error:
            server.stub.Submit(messages())
        self.assertEqual(error.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, error.exception.details())
        self.assertIn("storage", error.exception.details())
        trailers = dict(error.exception.trailing_metadata() or ())
        self.assertIn("segrel-retry-after-ms", trailers, "space comes back: the client may retry")
        self.assertEqual(os.listdir(spool), [], "the partial upload is removed whole")

        # The server goes on: the small study fits and runs.
        server.stub.ListModels(pb.ListModelsRequest())
        server.stub.Submit(harness.submit_messages(pb, FIXTURES, "fits"))
        states, _ = harness.watch(pb, server.stub, "fits", os.path.join(self.temp, "fits"))
        self.assertEqual(states[-1].state, pb.DONE, states[-1].message)
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)


if __name__ == "__main__":
    unittest.main(verbosity=2)
