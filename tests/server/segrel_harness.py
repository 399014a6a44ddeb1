"""What the Python server tests share: stubs generated from proto/segrel/v1/segrel.proto with Debian's grpc_tools,
the fixture study as Submit messages, Watch into a folder, and the real segrel-server binary as a child process."""
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import zlib

MODEL = "unet-bn-test"
SEQUENCES = ["T1", "T2", "FLAIR"]


def load_stubs(proto_dir, work):
    """Generates the stubs into WORK/python_stubs and returns the modules (grpc, segrel_pb2, segrel_pb2_grpc)."""
    out = os.path.join(work, "python_stubs")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
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


def submit_messages(pb, fixtures, job_id, model=MODEL, options=None, corrupt=None, chunk=700, before_chunk=None):
    """The SubmitRequests of the fixture study. `before_chunk(n)` is called before the n-th chunk is sent (a test
    stalls an upload there)."""
    metadata = pb.JobMetadata(job_id=job_id, model=model, options=options or pb.AnalysisOptions(no_pictures=True))
    blobs = []
    for name in SEQUENCES:
        with open(study_file(fixtures, name), "rb") as f:
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


def watch(pb, stub, job_id, out_dir):
    """Follows job `job_id` to its end; writes the result files into `out_dir`. Returns (states, {name: bytes})."""
    os.makedirs(out_dir, exist_ok=True)
    states, files = [], {}
    for message in stub.Watch(pb.WatchRequest(job_id=job_id)):
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


class ServerProcess:
    """segrel-server on a free loopback port, its stderr read line by line."""

    def __init__(self, binary, repository, spool, *flags, grpc_module=None, stubs=None):
        defaults = ["--address=127.0.0.1:0", "--metrics-address=127.0.0.1:0", f"--model-repository={repository}",
                    f"--spool-dir={spool}", "--workers=1", "--queue-capacity=4", "--min-free-mb=0"]
        given = {flag.split("=")[0] for flag in flags}
        self.process = subprocess.Popen(
            [binary, *[flag for flag in defaults if flag.split("=")[0] not in given], *flags],
            stderr=subprocess.PIPE, text=True)
        self.start_lines = []
        while True:
            line = self.process.stderr.readline()
            self.start_lines.append(line)
            match = re.search(r"listening on port (\d+), metrics on port (\d+)", line)
            if match or not line:
                break
        if not match:
            self.process.kill()
            raise RuntimeError(f"segrel-server did not start: {''.join(self.start_lines)}{self.process.stderr.read()}")
        self.port, self.metrics_port = int(match.group(1)), int(match.group(2))
        self.channel = grpc_module.insecure_channel(f"127.0.0.1:{self.port}") if grpc_module else None
        self.stub = stubs.SegrelStub(self.channel) if stubs else None

    def stop(self):
        """SIGTERM; returns (exit code, the rest of stderr)."""
        if self.channel:
            self.channel.close()
        self.process.send_signal(signal.SIGTERM)
        rest = self.process.stderr.read()
        self.process.stderr.close()
        return self.process.wait(timeout=60), rest

    def kill(self):
        """SIGKILL, as a crash or an OOM kill would end it."""
        if self.channel:
            self.channel.close()
        self.process.kill()
        self.process.wait(timeout=60)
        self.process.stderr.close()
