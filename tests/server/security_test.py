#!/usr/bin/python3
"""Security of the real segrel-server: TLS (wrong CA, plaintext to a TLS port), mutual TLS (no client certificate),
the plaintext health port beside an mTLS port (and `segrel-client health` on it), a server that cannot start
answering its probes NOT_SERVING but alive, certificate rotation without a restart, bearer tokens (missing,
wrong, another client's job, a right not granted), requests that do not parse, and half-open connections to
/metrics. CAs and certificates are made with openssl for each run.

Usage (ctest runs it): security_test.py SEGREL_SERVER SEGREL_CLIENT PROTO_DIR FIXTURE_DIR WORK_DIR
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import segrel_harness as harness
from segrel_harness import MODEL, Pki

SERVER, CLIENT, PROTO_DIR, FIXTURES, WORK = sys.argv[1:6]
del sys.argv[1:6]

grpc, pb, pb_grpc = harness.load_stubs(PROTO_DIR, WORK)

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789ab", "ops": "ops-token-0123456789abc",
          "viewer": "viewer-token-0123456789"}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def code_of(call):
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.temp = tempfile.mkdtemp(dir=WORK)
        cls.pki = Pki(cls.temp, "hospital")
        cls.other_pki = Pki(cls.temp, "other")
        cls.server_key, cls.server_cert = cls.pki.issue("segrel", server=True)
        cls.client_key, cls.client_cert = cls.pki.issue("research-client", server=False)
        cls.other_key, cls.other_cert = cls.other_pki.issue("segrel", server=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.temp, ignore_errors=True)

    def setUp(self):
        self.servers = []
        self.spool = tempfile.mkdtemp(dir=self.temp)

    def tearDown(self):
        for server in self.servers:
            if server.process.poll() is None:
                server.process.kill()
                server.process.wait()

    def start(self, *flags):
        server = harness.ServerProcess(SERVER, FIXTURES, self.spool, *flags)
        self.servers.append(server)
        return server

    def channel(self, server, ca=None, cert=None, key=None, port=None):
        target = f"127.0.0.1:{port or server.port}"
        if ca is None and cert is None:
            return grpc.insecure_channel(target)
        credentials = grpc.ssl_channel_credentials(root_certificates=read(ca) if ca else None,
                                                   private_key=read(key) if key else None,
                                                   certificate_chain=read(cert) if cert else None)
        return grpc.secure_channel(target, credentials)

    def list_models(self, channel, token=None, timeout=10):
        metadata = [("authorization", f"Bearer {token}")] if token else None
        return pb_grpc.SegrelStub(channel).ListModels(pb.ListModelsRequest(), metadata=metadata, timeout=timeout)

    def health(self, channel):
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        return check(b"", timeout=10)

    def test_tls_refuses_a_wrong_ca_and_plaintext(self):
        server = self.start(f"--tls-cert={self.server_cert}", f"--tls-key={self.server_key}")
        self.assertIn(", TLS", server.start_lines[-1])
        with self.channel(server, ca=self.pki.ca) as channel:
            self.assertEqual([m.name for m in self.list_models(channel).models], [MODEL])
        with self.channel(server, ca=self.other_pki.ca) as channel:
            self.assertEqual(code_of(lambda: self.list_models(channel, timeout=5)), grpc.StatusCode.UNAVAILABLE)
        with self.channel(server) as channel:
            self.assertEqual(code_of(lambda: self.list_models(channel, timeout=5)), grpc.StatusCode.UNAVAILABLE)
        # segrel-client with --tls-ca: a whole submission over TLS.
        out = os.path.join(self.temp, "tls-out")
        inputs = [a for name in harness.SEQUENCES for a in ("--input", f"{name}={harness.study_file(FIXTURES, name)}")]
        run = subprocess.run([CLIENT, "--server", f"127.0.0.1:{server.port}", f"--tls-ca={self.pki.ca}", "submit",
                              "--model", MODEL, *inputs, "--no-pictures", "--job-id", "over-tls", "--out", out],
                             capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(os.path.exists(os.path.join(out, "relevance.json")))
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_mutual_tls_needs_a_client_certificate_and_probes_use_the_health_port(self):
        server = self.start(f"--tls-cert={self.server_cert}", f"--tls-key={self.server_key}",
                            f"--tls-client-ca={self.pki.ca}", "--health-address=127.0.0.1:0")
        self.assertIn(", mutual TLS", server.start_lines[-1])
        health_port = int(re.search(r"health on port (\d+)", server.start_lines[-1]).group(1))
        with self.channel(server, ca=self.pki.ca) as channel:
            self.assertEqual(code_of(lambda: self.list_models(channel, timeout=5)), grpc.StatusCode.UNAVAILABLE)
        with self.channel(server, ca=self.pki.ca, cert=self.other_cert, key=self.other_key) as channel:
            self.assertEqual(code_of(lambda: self.list_models(channel, timeout=5)), grpc.StatusCode.UNAVAILABLE,
                             "a certificate from another CA")
        with self.channel(server, ca=self.pki.ca, cert=self.client_cert, key=self.client_key) as channel:
            self.assertEqual(len(self.list_models(channel).models), 1)
        with self.channel(server, port=health_port) as channel:
            self.assertEqual(self.health(channel), b"\x08\x01")  # SERVING, in plaintext, without a certificate
            self.assertEqual(code_of(lambda: self.list_models(channel)), grpc.StatusCode.UNIMPLEMENTED,
                             "the health port serves nothing else")
        # segrel-client health: what a container HEALTHCHECK or an exec probe runs.
        for service in ([], ["--service", "liveness"]):
            run = self.client_health(health_port, *service)
            self.assertEqual((run.returncode, run.stdout), (0, "SERVING\n"), run.stderr)
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)
        run = self.client_health(health_port)
        self.assertEqual(run.returncode, 1, "nothing answers")
        self.assertIn("failed to connect", run.stderr)

    def client_health(self, port, *arguments):
        return subprocess.run([CLIENT, "--server", f"127.0.0.1:{port}", "health", *arguments], capture_output=True,
                              text=True, timeout=60)

    def test_a_server_that_cannot_start_answers_its_probes_unready_but_alive(self):
        port = harness.free_port()
        process = subprocess.Popen([SERVER, "--address=127.0.0.1:0", "--metrics-address=", f"--spool-dir={self.spool}",
                                    f"--model-repository={FIXTURES}", f"--health-address=127.0.0.1:{port}",
                                    f"--tls-cert={self.temp}/absent.pem", f"--tls-key={self.server_key}"],
                                   stderr=subprocess.PIPE, text=True)
        try:
            error = process.stderr.readline()
            self.assertIn("error: --tls-cert: cannot read", error)
            self.assertIn("health NOT_SERVING", process.stderr.readline())
            run = self.client_health(port)
            self.assertEqual((run.returncode, run.stdout), (1, "NOT_SERVING\n"), "readiness fails")
            run = self.client_health(port, "--service", "liveness")
            self.assertEqual((run.returncode, run.stdout), (0, "SERVING\n"), "liveness does not restart it")
        finally:
            process.terminate()
            process.communicate(timeout=60)
        self.assertEqual(process.returncode, 1)

    def test_rotated_certificate_files_are_used_without_a_restart(self):
        cert, key = os.path.join(self.temp, "rotating.pem"), os.path.join(self.temp, "rotating.key")
        shutil.copy(self.server_cert, cert)
        shutil.copy(self.server_key, key)
        server = self.start(f"--tls-cert={cert}", f"--tls-key={key}", "--tls-refresh=1s")
        with self.channel(server, ca=self.pki.ca) as channel:
            self.list_models(channel)
        # As Kubernetes updates a mounted secret: new files renamed into place.
        for source, target in ((self.other_cert, cert), (self.other_key, key)):
            shutil.copy(source, target + ".new")
            os.replace(target + ".new", target)
        rotated = False
        for _ in range(60):
            with self.channel(server, ca=self.other_pki.ca) as channel:
                if code_of(lambda: self.list_models(channel, timeout=2)) == grpc.StatusCode.OK:
                    rotated = True
                    break
            time.sleep(0.5)
        self.assertTrue(rotated, "the new certificate was not served within 30 s")
        with self.channel(server, ca=self.pki.ca) as channel:
            self.assertEqual(code_of(lambda: self.list_models(channel, timeout=5)), grpc.StatusCode.UNAVAILABLE)
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_tokens_decide_who_may_do_what(self):
        tokens = os.path.join(self.temp, "tokens")
        with open(tokens, "w") as f:
            f.write("# client rights token\n"
                    f"alice submit,own-jobs {TOKENS['alice']}\n"
                    f"bob   submit,own-jobs {TOKENS['bob']}  # a comment\n"
                    f"ops   all-jobs,list-models {TOKENS['ops']}\n"
                    f"viewer list-models {TOKENS['viewer']}\n")
        server = self.start(f"--tokens-file={tokens}")
        self.assertIn("tokens for 4 clients", server.start_lines[-1])
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = pb_grpc.SegrelStub(channel)

        def auth(name):
            return [("authorization", f"Bearer {TOKENS[name]}")]

        self.assertEqual(code_of(lambda: self.list_models(channel)), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(code_of(lambda: self.list_models(channel, token="not-a-token-at-all")),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(code_of(lambda: self.list_models(channel, token=TOKENS["alice"])),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(len(self.list_models(channel, token=TOKENS["viewer"]).models), 1)
        self.assertEqual(self.health(channel), b"\x08\x01", "probes need no token")

        def submit(name, job_id):
            return stub.Submit(harness.submit_messages(pb, FIXTURES, job_id), metadata=auth(name), timeout=60)

        self.assertEqual(code_of(lambda: stub.Submit(harness.submit_messages(pb, FIXTURES, "anonymous"))),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(code_of(lambda: submit("viewer", "viewer-job")), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(submit("alice", "alice-job").job_id, "alice-job")
        self.assertEqual(code_of(lambda: submit("bob", "alice-job")), grpc.StatusCode.ALREADY_EXISTS,
                         "another client's id is not a resubmission")

        def watch(name):
            return list(stub.Watch(pb.WatchRequest(job_id="alice-job", skip_results=True), metadata=auth(name)))

        self.assertEqual(code_of(lambda: watch("bob")), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(code_of(lambda: stub.Cancel(pb.CancelRequest(job_id="alice-job"), metadata=auth("bob"))),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(code_of(lambda: stub.Delete(pb.DeleteRequest(job_id="alice-job"), metadata=auth("bob"))),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(watch("alice")[-1].status.state, pb.DONE)
        self.assertEqual(watch("ops")[-1].status.state, pb.DONE, "all-jobs sees every client's jobs")
        self.assertEqual(submit("bob", "bob-job").job_id, "bob-job")

        def listed(name):
            return [(entry.status.job_id, entry.owner) for entry in
                    stub.ListJobs(pb.ListJobsRequest(), metadata=auth(name)).jobs]

        self.assertEqual(listed("alice"), [("alice-job", "alice")], "a client lists its own jobs only")
        self.assertEqual(listed("ops"), [("bob-job", "bob"), ("alice-job", "alice")], "all-jobs: every job, newest first")
        self.assertEqual(code_of(lambda: listed("viewer")), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(code_of(lambda: stub.ListJobs(pb.ListJobsRequest())), grpc.StatusCode.UNAUTHENTICATED)

        # segrel-client takes the token from the environment.
        environment = dict(os.environ, SEGREL_TOKEN=TOKENS["viewer"])
        run = subprocess.run([CLIENT, "--server", f"127.0.0.1:{server.port}", "models"], capture_output=True,
                             text=True, env=environment, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn(MODEL, run.stdout)
        stub.Delete(pb.DeleteRequest(job_id="alice-job"), metadata=auth("alice"))
        list(stub.Watch(pb.WatchRequest(job_id="bob-job", skip_results=True), metadata=auth("bob")))
        stub.Delete(pb.DeleteRequest(job_id="bob-job"), metadata=auth("bob"))
        channel.close()
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)
        for token in TOKENS.values():
            self.assertNotIn(token, "".join(server.start_lines) + rest, "a token in the log")

    def test_bad_security_settings_stop_the_start_with_the_option_named(self):
        tokens = os.path.join(self.temp, "bad-tokens")
        with open(tokens, "w") as f:
            f.write(f"alice submit {TOKENS['alice']}\nbob fly {TOKENS['bob']}\n")
        for flags, expected in [([f"--tls-cert={self.server_cert}"], "--tls-cert and --tls-key go together"),
                                ([f"--tls-cert={self.server_cert}", "--tls-key=/nonexistent"], "--tls-key"),
                                ([f"--tls-cert={self.server_key}", f"--tls-key={self.server_key}"],
                                 "holds no PEM CERTIFICATE"),
                                ([f"--tls-client-ca={self.pki.ca}"], "--tls-client-ca needs --tls-cert"),
                                ([f"--tokens-file={tokens}"], "line 2: unknown right 'fly'")]:
            run = subprocess.run([SERVER, "--address=127.0.0.1:0", "--metrics-address=", f"--spool-dir={self.spool}",
                                  f"--model-repository={FIXTURES}", *flags], capture_output=True, text=True,
                                 timeout=60)
            self.assertNotEqual(run.returncode, 0, flags)
            self.assertIn(expected, run.stderr, flags)
            self.assertNotIn(TOKENS["bob"], run.stderr)

    def test_requests_that_do_not_parse_are_invalid_argument_and_the_server_goes_on(self):
        server = self.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        garbage = b"\xff\xff\xff"  # a field tag that no protobuf parser accepts
        calls = {"Watch": lambda call: list(call(garbage)), "Cancel": lambda call: call(garbage),
                 "Delete": lambda call: call(garbage), "ListModels": lambda call: call(garbage),
                 "Submit": lambda call: call(iter([garbage]))}
        kinds = {"Watch": channel.unary_stream, "Submit": channel.stream_unary}
        for method, invoke in calls.items():
            call = kinds.get(method, channel.unary_unary)(f"/segrel.v1.Segrel/{method}",
                                                          request_serializer=bytes, response_deserializer=bytes)
            with self.assertRaises(grpc.RpcError, msg=method) as error:
                invoke(call)
            self.assertEqual(error.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, method)
            self.assertIn(f"not a valid segrel.v1.{method}Request message", error.exception.details(), method)
        self.assertEqual(len(pb_grpc.SegrelStub(channel).ListModels(pb.ListModelsRequest()).models), 1)
        channel.close()
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)

    def test_half_open_connections_do_not_stop_the_metrics_endpoint(self):
        server = self.start()
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"

        def half_open(count):  # a request line and a header, never the blank line that ends the request
            connections = []
            for _ in range(count):
                connection = socket.create_connection(("127.0.0.1", server.metrics_port))
                connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                connections.append(connection)
            return connections

        stalled = half_open(2)  # two were enough to block /metrics for 30 s
        with urllib.request.urlopen(url, timeout=3) as response:
            self.assertIn(b"segrel_queue_length", response.read())
        stalled += half_open(20)  # more than the endpoint's threads: they are freed after the 5 s request timeout
        with urllib.request.urlopen(url, timeout=15) as response:
            self.assertIn(b"segrel_queue_length", response.read())
        for connection in stalled:
            connection.close()
        code, rest = server.stop()
        self.assertEqual(code, 0, rest)


if __name__ == "__main__":
    unittest.main(verbosity=2)
