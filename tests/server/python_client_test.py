#!/usr/bin/python3
"""An independent client: Python stubs generated from proto/segrel/v1/segrel.proto with Debian's grpc_tools at test
time, talking to the real segrel-server binary. Checks a full round trip against `segrel analyze` run on the same
files, the error codes, SIGTERM, and (when Debian's prometheus is installed) that Prometheus scrapes segrel's series.

It also runs the segrel-client program against the same server and checks its outputs the same way.

Usage (ctest runs it): python_client_test.py SEGREL_SERVER SEGREL SEGREL_CLIENT PROTO_DIR FIXTURE_DIR WORK_DIR
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import segrel_harness as harness
from segrel_harness import MODEL, SEQUENCES, free_port

SERVER, SEGREL, CLIENT, PROTO_DIR, FIXTURES, WORK = sys.argv[1:7]
del sys.argv[1:7]

grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)


def study_file(name):
    return harness.study_file(FIXTURES, name)


def submit_messages(job_id, **options):
    return harness.submit_messages(pb, FIXTURES, job_id, **options)


def watch(stub, job_id, out_dir):
    return harness.watch(pb, stub, job_id, out_dir)


def ServerProcess(repository, spool):
    return harness.ServerProcess(SERVER, repository, spool, grpc_module=grpc, stubs=pb_grpc)


class ServerFlagsTest(unittest.TestCase):
    """segrel-server's options: --help lists every one, mistakes are errors that name the option, a flag file works."""

    FLAGS = ["--model-repository", "--address", "--metrics-address", "--spool-dir", "--workers", "--cuda-workers",
             "--threads", "--queue-capacity", "--max-study-mb", "--max-files", "--job-deadline", "--shutdown-grace"]

    def run_server(self, *arguments):
        return subprocess.run([SERVER, *arguments], capture_output=True, text=True, timeout=60)

    def test_help_lists_every_option(self):
        result = self.run_server("--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        for flag in self.FLAGS + ["--flagfile"]:
            self.assertIn(flag, result.stdout)

    def test_mistakes_name_the_option_and_exit_2(self):
        for arguments, expected in [(["--model_repository=models"], "unknown option --model_repository"),
                                    (["--workers=-3"], "--workers"), (["--job-deadline=soon"], "--job-deadline"),
                                    (["--queue-capacity=0"], "--queue-capacity"), (["extra"], "unexpected argument")]:
            result = self.run_server(*arguments)
            self.assertEqual(result.returncode, 2, arguments)
            self.assertIn(expected, result.stderr, arguments)

    def test_a_flag_file_configures_the_server(self):
        temp = tempfile.mkdtemp(dir=WORK)
        try:
            flags = os.path.join(temp, "server.flags")
            with open(flags, "w") as file:
                file.write(f"# as a ConfigMap would hold them\n--address=127.0.0.1:0\n--metrics-address=\n"
                           f"--model-repository={FIXTURES}\n--spool-dir={os.path.join(temp, 'spool')}\n"
                           "--queue-capacity 2\n--shutdown-grace=5s\n")
            server = harness.ServerProcess(SERVER, FIXTURES, "", "--flagfile", flags, defaults=False)
            self.assertRegex(server.start_lines[-1], r"1 models, 1 CPU workers, 0 CUDA workers, listening on port \d+$")
            code, rest = server.stop()
            self.assertEqual(code, 0, rest)
            self.assertIn("running jobs get 5s", rest)
        finally:
            shutil.rmtree(temp, ignore_errors=True)


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(dir=WORK)
        cls.server = ServerProcess(FIXTURES, os.path.join(cls.temp, "spool"))

    @classmethod
    def tearDownClass(cls):
        if cls.server.process.poll() is None:
            cls.server.process.kill()
            cls.server.process.wait()
        shutil.rmtree(cls.temp, ignore_errors=True)

    def test_1_list_models(self):
        models = self.server.stub.ListModels(pb.ListModelsRequest()).models
        self.assertEqual([m.name for m in models], [MODEL])
        self.assertEqual([s.name for s in models[0].sequences], SEQUENCES)

    def test_1b_health_and_reflection(self):
        # Raw bytes, so the test needs no other generated stubs: HealthCheckRequest{} → HealthCheckResponse{status:
        # SERVING (1)}; ServerReflectionRequest{list_services: ""} (field 7) lists segrel.v1.Segrel.
        identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
        check = self.server.channel.unary_unary("/grpc.health.v1.Health/Check", **identity)
        self.assertEqual(check(b""), b"\x08\x01")
        reflect = self.server.channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", **identity)
        answers = list(reflect(iter([b"\x3a\x00"])))
        self.assertEqual(len(answers), 1)
        self.assertIn(b"segrel.v1.Segrel", answers[0])

    def test_2_round_trip_equals_segrel_analyze(self):
        options = pb.AnalysisOptions(seed=5, maps=True, no_pictures=True)
        response = self.server.stub.Submit(submit_messages("py-round-trip", options=options))
        self.assertEqual(response.job_id, "py-round-trip")
        self.assertIn(response.status.state, (pb.QUEUED, pb.RUNNING, pb.DONE))
        out = os.path.join(self.temp, "served")
        states, files = watch(self.server.stub, "py-round-trip", out)
        self.assertEqual(states[-1].state, pb.DONE, states[-1].message)
        self.assertEqual(sorted(files), sorted(states[-1].results))

        self.assertSameOutputs(out, self.analyze())

    def test_2b_segrel_client_writes_what_segrel_analyze_writes(self):
        out = os.path.join(self.temp, "client")
        inputs = [arg for name in SEQUENCES for arg in ("--input", f"{name}={study_file(name)}")]
        run = subprocess.run([CLIENT, "--server", f"127.0.0.1:{self.server.port}", "submit", "--model", MODEL, *inputs,
                              "--seed", "5", "--maps", "--no-pictures", "--job-id", "cli", "--out", out],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("job cli: done", run.stderr)
        self.assertSameOutputs(out, self.analyze())
        run = subprocess.run([CLIENT, "--server", f"127.0.0.1:{self.server.port}", "cancel", "no-such-job"],
                             capture_output=True, text=True)
        self.assertEqual(run.returncode, 1)
        self.assertIn("segrel-client: error: unknown job 'no-such-job'", run.stderr)

    def analyze(self):
        """`segrel analyze` on the fixture study with seed 5 and maps: the reference outputs."""
        return harness.analyze_reference(SEGREL, FIXTURES, os.path.join(self.temp, "analyze"))

    def assertSameOutputs(self, out, reference):
        self.assertEqual(harness.same_outputs(out, reference), [])

    def test_3_errors_have_their_codes(self):
        stub = self.server.stub
        with self.assertRaises(grpc.RpcError) as error:
            stub.Submit(submit_messages("py-bad-crc", corrupt="crc"))
        self.assertEqual(error.exception.code(), grpc.StatusCode.DATA_LOSS)
        with self.assertRaises(grpc.RpcError) as error:
            stub.Submit(submit_messages("py-bad-model", model="nope"))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as error:
            list(stub.Watch(pb.WatchRequest(job_id="py-unknown")))
        self.assertEqual(error.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(len(stub.ListModels(pb.ListModelsRequest()).models), 1)

    def test_4_prometheus_scrapes_segrel(self):
        exposition = urllib.request.urlopen(f"http://127.0.0.1:{self.server.metrics_port}/metrics").read().decode()
        self.assertRegex(exposition, r"(?m)^segrel_jobs_received_total 2$")  # py-round-trip and cli
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            self.skipTest("Debian's prometheus is not installed")
        config = os.path.join(self.temp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: segrel\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.server.metrics_port}']\n")
        port = free_port()
        process = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={self.temp}/tsdb",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            query = urllib.parse.urlencode({"query": "segrel_jobs_received_total"})
            value = None
            for _ in range(120):
                time.sleep(0.5)
                try:
                    answer = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}"))
                except OSError:
                    continue
                if answer["status"] == "success" and answer["data"]["result"]:
                    value = answer["data"]["result"][0]["value"][1]
                    break
            self.assertEqual(value, "2")
            query = urllib.parse.urlencode({"query": 'segrel_sequence_relevance_share_count{sequence="FLAIR"}'})
            answer = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/query?{query}"))
            self.assertEqual(answer["data"]["result"][0]["metric"]["model"], MODEL)
        finally:
            process.terminate()
            process.wait(timeout=30)

    def test_5_sigterm_stops_gracefully(self):
        code, rest = self.server.stop()
        self.assertEqual(code, 0, rest)
        self.assertIn("stopped", rest)


if __name__ == "__main__":
    unittest.main(verbosity=2)
