"""What the Python server tests share: stubs generated from proto/segrel/v1/segrel.proto with Debian's grpc_tools,
the fixture study as Submit messages, Watch into a folder, the real segrel-server binary as a child process, and
Orthanc as a PACS."""
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

MODEL = "unet-bn-test"
SEQUENCES = ["T1", "T2", "FLAIR"]


def load_stubs(proto_dir, work):
    """Generates the stubs into a fresh folder under WORK and returns the modules (grpc, segrel_pb2,
    segrel_pb2_grpc). The folder is the calling test's own: ctest runs the Python tests side by side in one WORK."""
    out = tempfile.mkdtemp(prefix="python_stubs.", dir=work)
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    from grpc_tools import protoc
    proto = os.path.join(proto_dir, "segrel", "v1", "segrel.proto")
    if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", proto]) != 0:
        raise RuntimeError("protoc failed")
    sys.path.insert(0, out)
    import grpc
    from segrel.v1 import segrel_pb2, segrel_pb2_grpc
    return grpc, segrel_pb2, segrel_pb2_grpc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def study_file(fixtures, name):
    return os.path.join(fixtures, "study", name + ".nii.gz")


def submit_messages(pb, fixtures, job_id, model=MODEL, options=None, corrupt=None, chunk=700, before_chunk=None,
                    files=None):
    """The SubmitRequests of the fixture study, or of FILES ([(sequence, path)]). `before_chunk(n)` is called before
    the n-th chunk is sent (a test stalls an upload there)."""
    metadata = pb.JobMetadata(job_id=job_id, model=model, options=options or pb.AnalysisOptions(no_pictures=True))
    blobs = []
    for name, path in files or [(name, study_file(fixtures, name)) for name in SEQUENCES]:
        with open(path, "rb") as f:
            data = f.read()
        blobs.append(data)
        metadata.files.add(role=pb.SEQUENCE, name=name, format=pb.NIFTI, size_bytes=len(data),
                           sha256=hashlib.sha256(data).hexdigest())
    yield pb.SubmitRequest(metadata=metadata)
    sent = 0
    for index, data in enumerate(blobs):
        for offset in range(0, len(data), chunk):
            piece = data[offset:offset + chunk]
            crc = zlib.crc32(piece)
            if corrupt == "crc" and index == 1 and offset == 0:
                crc ^= 1
            if before_chunk is not None:
                before_chunk(sent)
            sent += 1
            yield pb.SubmitRequest(chunk=pb.Chunk(file_index=index, offset=offset, data=piece, crc32=crc))


def watch(pb, stub, job_id, out_dir, timeout=None):
    """Follows job `job_id` to its end (for at most `timeout` seconds); writes the result files into `out_dir`.
    Returns (states, {name: bytes})."""
    os.makedirs(out_dir, exist_ok=True)
    states, files = [], {}
    for message in stub.Watch(pb.WatchRequest(job_id=job_id), timeout=timeout):
        if message.HasField("status"):
            states.append(message.status)
        else:
            chunk = message.result
            files.setdefault(chunk.name, bytearray())
            assert len(files[chunk.name]) == chunk.offset
            files[chunk.name] += chunk.data
    for name, data in files.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return states, files


def same_outputs(out, reference):
    """How the result folder OUT differs from REFERENCE (`segrel analyze`'s): the list of differences, empty when
    they hold the same files with the same bytes; relevance.json is compared as JSON without its run time and
    LibTorch thread count, which are the machine's, not the result's."""
    names, expected = sorted(os.listdir(out)), sorted(os.listdir(reference))
    if names != expected:
        return [f"files {names} != {expected}"]
    differences = []
    for name in expected:
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(reference, name), "rb") as b:
            data, wanted = a.read(), b.read()
        if name == "relevance.json":
            data, wanted = (json.loads(text) for text in (data, wanted))
            for report in (data, wanted):
                report.pop("seconds")
                report.pop("threads")
        if data != wanted:
            differences.append(f"{name} differs")
    return differences


class ServerProcess:
    """segrel-server on a free loopback port. A thread drains its stderr (a server must never block on a full pipe:
    the audit trail goes there) into `lines` and, when ctest sets SEGREL_TEST_LOG_DIR, into a file there that the
    log privacy test searches for patient data."""

    started = 0  # servers this test process started: each gets its own log file

    def __init__(self, binary, repository, spool, *flags, grpc_module=None, stubs=None, defaults=True,
                 preexec_fn=None):
        default_flags = ["--address=127.0.0.1:0", "--metrics-address=127.0.0.1:0", f"--model-repository={repository}",
                         f"--spool-dir={spool}", "--workers=1", "--queue-capacity=4", "--min-free-mb=0"]
        given = {flag.split("=")[0] for flag in flags}
        chosen = [flag for flag in default_flags if flag.split("=")[0] not in given] if defaults else []
        self.process = subprocess.Popen([binary, *chosen, *flags], stderr=subprocess.PIPE, text=True,
                                        errors="replace", preexec_fn=preexec_fn)
        self.log = self._open_log()
        self.lines = []
        match = None
        while not match:
            line = self.process.stderr.readline()
            if not line:
                break
            self._keep(line)
            match = re.search(r"listening on port (\d+)(?:, metrics on port (\d+))?", line)
        self.start_lines = list(self.lines)
        if not match:
            self.process.kill()
            self.process.wait(timeout=60)
            raise RuntimeError(f"segrel-server did not start: {''.join(self.lines)}{self.process.stderr.read()}")
        self.port = int(match.group(1))
        self.metrics_port = int(match.group(2)) if match.group(2) else 0
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()
        self.channel = grpc_module.insecure_channel(f"127.0.0.1:{self.port}") if grpc_module else None
        self.stub = stubs.SegrelStub(self.channel) if stubs else None

    @staticmethod
    def _open_log():
        log_dir = os.environ.get("SEGREL_TEST_LOG_DIR")
        if not log_dir:
            return None
        os.makedirs(log_dir, exist_ok=True)
        ServerProcess.started += 1
        name = f"{os.path.basename(sys.argv[0])}.{os.getpid()}.{ServerProcess.started}.log"
        return open(os.path.join(log_dir, name), "w")

    def _keep(self, line):
        self.lines.append(line)
        if self.log:
            self.log.write(line)
            self.log.flush()

    def _drain(self):
        for line in self.process.stderr:
            self._keep(line)

    def wait(self, timeout=60):
        """Waits for the process to end; returns its exit code once all of its stderr is read."""
        code = self.process.wait(timeout=timeout)
        self.drain.join(timeout=timeout)
        self.process.stderr.close()
        if self.log:
            self.log.close()
        return code

    def wait_for_line(self, pattern, timeout=30):
        """The first line the server wrote that matches `pattern` (a regular expression), waiting up to `timeout`
        seconds for it; None if none came."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((line for line in list(self.lines) if re.search(pattern, line)), None)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def rest(self):
        """What the server wrote after its start-up lines."""
        return "".join(self.lines[len(self.start_lines):])

    def stop(self):
        """SIGTERM; returns (exit code, what the server wrote after its start-up lines)."""
        if self.channel:
            self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        code = self.wait()
        return code, self.rest()

    def kill(self):
        """SIGKILL, as a crash or an OOM kill would end it."""
        if self.channel:
            self.channel.close()
        self.process.kill()
        self.wait()


def analyze_reference(segrel, fixtures, out):
    """`segrel analyze` on the fixture study with seed 5, maps and no pictures (the options the server tests submit)
    into OUT, once: the reference outputs. Returns OUT."""
    if not os.path.exists(out):
        inputs = [arg for name in SEQUENCES for arg in ("--input", f"{name}={study_file(fixtures, name)}")]
        subprocess.run([segrel, "analyze", "--model", os.path.join(fixtures, "bundle"), *inputs, "--seed", "5",
                        "--maps", "--no-pictures", "--out", out], check=True, capture_output=True)
    return out


NATS_SERVER = "/usr/sbin/nats-server"  # Debian's nats-server


class NatsServer:
    """nats-server with JetStream on 127.0.0.1, its store and log in FOLDER; stopped by its PID and restartable on the
    same port and store."""

    def __init__(self, folder):
        self.folder, self.port, self.process, self.log = folder, free_port(), None, None
        self.url = f"nats://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        self.log = open(os.path.join(self.folder, "nats.log"), "a")
        self.process = subprocess.Popen([NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                                         os.path.join(self.folder, "store")], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        if self.log:
            self.log.close()
            self.log = None


class Orthanc:
    """Orthanc (a real PACS) on free ports, its database in `folder`, knowing segrel's DICOM node on `segrel_port`
    as modality "segrel" (and `modalities`, name -> [AE, host, port]). It binds every interface: talk to it on
    127.0.0.1 only. Stopped by its PID."""

    def __init__(self, binary, folder, segrel_port, modalities=None):
        self.http_port, self.dicom_port = free_port(), free_port()
        config = {"Name": "segrel-pacs-test", "StorageDirectory": os.path.join(folder, "db"),
                  "IndexDirectory": os.path.join(folder, "db"), "HttpPort": self.http_port,
                  "DicomPort": self.dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
                  "AuthenticationEnabled": False, "Plugins": [], "DicomCheckCalledAet": False,
                  "DicomModalities": {"segrel": ["SEGREL", "127.0.0.1", segrel_port], **(modalities or {})}}
        path = os.path.join(folder, "orthanc.json")
        with open(path, "w") as f:
            json.dump(config, f)
        self.log = open(os.path.join(folder, "orthanc.log"), "w")
        self.process = subprocess.Popen([binary, path], stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("Orthanc did not start")

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path):
        return json.loads(self.get_bytes(path))

    def get_bytes(self, path):
        with urllib.request.urlopen(self.url(path), timeout=30) as response:
            return response.read()

    def post(self, path, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url(path), data=data, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
            return json.loads(text) if text else None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def openssl(*arguments):
    subprocess.run(["openssl", *arguments], check=True, capture_output=True)


class Pki:
    """A CA and certificates it signs, in `folder` (made with openssl for each run)."""

    def __init__(self, folder, name):
        self.folder, self.name = folder, name
        self.ca_key, self.ca = self.path("ca.key"), self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} CA",
                "-keyout", self.ca_key, "-out", self.ca)

    def path(self, name):
        return os.path.join(self.folder, f"{self.name}-{name}")

    def issue(self, common_name, server):
        key, request, cert = self.path(f"{common_name}.key"), self.path(f"{common_name}.csr"), \
            self.path(f"{common_name}.pem")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={common_name}", "-keyout", key, "-out", request)
        extensions = self.path(f"{common_name}.ext")
        with open(extensions, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else "extendedKeyUsage=clientAuth\n")
        openssl("x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", self.ca_key, "-CAcreateserial", "-days", "2",
                "-extfile", extensions, "-out", cert)
        return key, cert
